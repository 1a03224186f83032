"""The AUTOMATIC1111 "infotext" grammar, shared by A1111, Forge, SD.Next, Civitai, Fooocus
(a1111 scheme), ComfyUI save nodes and our own generated files.

Layout (modules/infotext_utils.py in A1111)::

    <prompt lines>
    Negative prompt: <negative lines>
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model: x

Values containing ``,``, ``:`` or newlines are JSON-quoted; Civitai appends bracketed JSON
(``Civitai resources: [...]``) whose commas must not split the line.
"""

from __future__ import annotations

import json
import re
from typing import Any

from dreamdepot.ingest.metadata.model import (
    Generation,
    Pass,
    Resource,
    parse_size,
    to_float,
    to_int,
)

# A1111's own test for "is this the parameters line": at least 3 key: value pairs.
_PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_LORA_RE = re.compile(r"<(lora|lyco|hypernet):([^:>]+)(?::([^:>]+))?(?::[^>]*)?>", re.IGNORECASE)
_MAX_KEYS = 1000

_KNOWN = {
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Seed",
    "Size",
    "Model hash",
    "Model",
    "VAE",
    "VAE hash",
    "Denoising strength",
    "Clip skip",
    "Version",
    "Lora hashes",
    "TI hashes",
}


def split_infotext(text: str) -> tuple[str, str, str]:
    """Split infotext into (prompt, negative prompt, parameters line).

    Lines are stripped, as A1111 does.

    >>> split_infotext("a cat\\nNegative prompt: dog\\nSteps: 1, Seed: 2, Size: 8x8")
    ('a cat', 'dog', 'Steps: 1, Seed: 2, Size: 8x8')
    >>> split_infotext("just a prompt")
    ('just a prompt', '', '')
    """
    lines = text.strip().replace("\r\n", "\n").replace("\r", "\n").split("\n")
    last = lines[-1] if lines else ""
    params = ""
    if len(_PARAM_RE.findall(last)) >= 3:
        params = last
        lines = lines[:-1]
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:") :].strip()
        (negative if in_negative else prompt).append(line)
    return "\n".join(prompt).strip(), "\n".join(negative).strip(), params


def parse_params_line(line: str) -> dict[str, str]:
    """Parse ``Key: value, Key: "quoted, value", Key: [json, list]`` into a dict.

    >>> parse_params_line('Steps: 20, Lora hashes: "a: 1, b: 2", Civitai resources: [{"x": 1}]')
    {'Steps': '20', 'Lora hashes': 'a: 1, b: 2', 'Civitai resources': '[{"x": 1}]'}
    """
    out: dict[str, str] = {}
    i, n = 0, len(line)
    while i < n and len(out) < _MAX_KEYS:
        while i < n and line[i] in " ,":
            i += 1
        colon = line.find(":", i)
        if colon < 0:
            break
        key = line[i:colon].strip()
        j = colon + 1
        while j < n and line[j] == " ":
            j += 1
        if j < n and line[j] == '"':
            end = _end_of_string(line, j)
            raw = line[j:end]
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw.strip('"')
            if not isinstance(value, str):
                value = raw
            i = end
        elif j < n and line[j] in "[{":
            end = _end_of_brackets(line, j)
            value = line[j:end]
            i = end
        else:
            end = line.find(",", j)
            end = n if end < 0 else end
            value = line[j:end].strip()
            i = end
        if key:
            out[key] = value
        i += 1
    return out


def _end_of_string(s: str, start: int) -> int:
    i = start + 1
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == '"':
            return i + 1
        i += 1
    return len(s)


def _end_of_brackets(s: str, start: int) -> int:
    depth = 0
    i = start
    while i < len(s):
        ch = s[i]
        if ch == '"':
            i = _end_of_string(s, i)
            continue
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(s)


def looks_like_infotext(text: str) -> bool:
    """True when the last line holds at least three A1111 parameters."""
    last = text.strip().rsplit("\n", 1)[-1]
    return len(_PARAM_RE.findall(last)) >= 3 and ("Steps:" in last or "Seed:" in last)


def parse_infotext(text: str, generator: str = "a1111") -> Generation:
    """Turn infotext into a :class:`Generation`; the caller decides ``generator``."""
    prompt, negative, line = split_infotext(text)
    params: dict[str, Any] = dict(parse_params_line(line)) if line else {}
    g = Generation(generator=generator, raw=text)
    g.prompt = prompt or None
    g.negative_prompt = negative or None
    g.steps = to_int(params.get("Steps"))
    g.sampler = params.get("Sampler") or None
    g.scheduler = params.get("Schedule type") or None
    g.cfg_scale = to_float(params.get("CFG scale"))
    g.seed = to_int(params.get("Seed"))
    g.width, g.height = parse_size(params.get("Size"))
    g.model = params.get("Model") or None
    g.model_hash = params.get("Model hash") or None
    g.vae = params.get("VAE") or None
    g.denoise = to_float(params.get("Denoising strength"))
    g.clip_skip = to_int(params.get("Clip skip"))
    g.generator_version = params.get("Version") or None
    g.loras = _loras(prompt, params.get("Lora hashes"))
    g.embeddings = [Resource(name, None, h) for name, h in _hash_list(params.get("TI hashes"))]
    hires = {k: v for k, v in params.items() if k.startswith("Hires ")}
    if hires:
        g.passes.append(
            Pass(
                kind="hires",
                steps=to_int(hires.get("Hires steps")),
                sampler=hires.get("Hires sampler"),
                denoise=g.denoise,
                prompt=hires.get("Hires prompt"),
                negative_prompt=hires.get("Hires negative prompt"),
                extra={k: v for k, v in hires.items()},
            )
        )
    if "Refiner" in params:
        g.passes.append(
            Pass(
                kind="refiner",
                model=params.get("Refiner"),
                extra={"switch_at": params.get("Refiner switch at")},
            )
        )
    g.params = {k: _decode_json_value(v) for k, v in params.items() if k not in _KNOWN}
    return g


def _decode_json_value(value: str) -> Any:
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _hash_list(value: str | None) -> list[tuple[str, str | None]]:
    """'name: abc123, other: def456' -> [('name', 'abc123'), ('other', 'def456')]."""
    if not value:
        return []
    out = []
    for part in value.split(","):
        name, _, h = part.partition(":")
        if name.strip():
            out.append((name.strip(), h.strip() or None))
    return out


def _loras(prompt: str, hashes: str | None) -> list[Resource]:
    by_name: dict[str, Resource] = {}
    for _kind, name, weight, *_ in _LORA_RE.findall(prompt):
        name = name.strip()
        by_name.setdefault(name, Resource(name, to_float(weight) if weight else 1.0))
    for name, h in _hash_list(hashes):
        if name in by_name:
            by_name[name].hash = h
        else:
            by_name[name] = Resource(name, None, h)
    return list(by_name.values())


def format_infotext(g: Generation) -> str:
    """Write a Generation back as A1111 infotext (used for generated files and 'copy').

    >>> g = Generation("dreamdepot", prompt="a cat", negative_prompt="dog", steps=4, seed=9,
    ...                sampler="Euler", cfg_scale=7.0, width=64, height=64)
    >>> format_infotext(g)
    'a cat\\nNegative prompt: dog\\nSteps: 4, Sampler: Euler, CFG scale: 7.0, Seed: 9, Size: 64x64'
    """
    parts: list[tuple[str, Any]] = [
        ("Steps", g.steps),
        ("Sampler", g.sampler),
        ("Schedule type", g.scheduler),
        ("CFG scale", g.cfg_scale),
        ("Seed", g.seed),
        ("Size", f"{g.width}x{g.height}" if g.width and g.height else None),
        ("Model hash", g.model_hash),
        ("Model", g.model),
        ("Denoising strength", g.denoise),
        ("Clip skip", g.clip_skip),
    ]
    for k, v in g.params.items():
        parts.append((k, v if isinstance(v, str | int | float) else json.dumps(v)))
    if g.generator_version:
        parts.append(("Version", g.generator_version))
    line = ", ".join(f"{k}: {_quote(v)}" for k, v in parts if v is not None)
    text = g.prompt or ""
    if g.negative_prompt:
        text += f"\nNegative prompt: {g.negative_prompt}"
    return f"{text}\n{line}" if line else text


def _quote(value: Any) -> str:
    s = str(value)
    if "," in s or "\n" in s or ":" in s:
        return json.dumps(s, ensure_ascii=False)
    return s
