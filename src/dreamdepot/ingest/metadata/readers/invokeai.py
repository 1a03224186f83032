"""InvokeAI: ``invokeai_metadata`` (3.x and 4+), ``sd-metadata`` (2.x) and ``Dream`` (1.x)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from dreamdepot.ingest.metadata.containers import Container
from dreamdepot.ingest.metadata.model import Generation, Resource, to_float, to_int, to_str
from dreamdepot.ingest.metadata.readers._json import loads_object

_BRACKETED_NEGATIVE = re.compile(r"\[([^\[\]]*)\]\s*$")


def split_bracket_negative(prompt: str) -> tuple[str, str | None]:
    """'a cat [blurry, dog]' -> ('a cat', 'blurry, dog'): InvokeAI's legacy negative syntax.

    >>> split_bracket_negative("a cat [blurry, dog]")
    ('a cat', 'blurry, dog')
    """
    m = _BRACKETED_NEGATIVE.search(prompt)
    if not m:
        return prompt.strip(), None
    return prompt[: m.start()].strip(), m.group(1).strip() or None


def _model(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, dict):
        name = to_str(value.get("name") or value.get("model_name"))
        return name, to_str(value.get("hash"))
    return to_str(value), None


def read(c: Container, path: Path | None = None) -> Generation | None:
    meta = loads_object(c.texts.get("invokeai_metadata"))
    if meta is not None:
        return _from_v3(meta, c)
    sd = loads_object(c.texts.get("sd-metadata"))
    if sd is not None:
        return _from_v2(sd, c)
    dream = c.texts.get("Dream")
    if dream:
        return _from_dream(dream)
    return None


def _from_v3(meta: dict[str, Any], c: Container) -> Generation:
    g = Generation(generator="invokeai", raw=c.texts["invokeai_metadata"])
    g.source.append("png:invokeai_metadata")
    for extra in ("invokeai_graph", "invokeai_workflow"):
        if extra in c.texts:
            g.source.append(f"png:{extra}")
    g.generator_version = to_str(meta.get("app_version"))
    g.prompt = (to_str(meta.get("positive_prompt")) or "").strip() or None
    g.negative_prompt = (to_str(meta.get("negative_prompt")) or "").strip() or None
    g.seed = to_int(meta.get("seed"))
    g.steps = to_int(meta.get("steps"))
    g.cfg_scale = to_float(meta.get("cfg_scale"))
    g.sampler = to_str(meta.get("scheduler"))  # InvokeAI calls its sampler "scheduler"
    g.width, g.height = to_int(meta.get("width")), to_int(meta.get("height"))
    g.model, g.model_hash = _model(meta.get("model"))
    g.vae = _model(meta.get("vae"))[0]
    g.denoise = to_float(meta.get("denoising_strength") or meta.get("strength"))
    g.clip_skip = to_int(meta.get("clip_skip"))
    for lora in meta.get("loras") or []:
        if isinstance(lora, dict):
            name, h = _model(lora.get("model") or lora.get("lora"))
            if name:
                g.loras.append(Resource(name, to_float(lora.get("weight")), h))
    known = {
        "positive_prompt", "negative_prompt", "seed", "steps", "cfg_scale", "scheduler",
        "width", "height", "model", "vae", "loras", "app_version", "clip_skip",
    }  # fmt: skip
    g.params = {k: v for k, v in meta.items() if k not in known}
    return g


def _from_v2(sd: dict[str, Any], c: Container) -> Generation:
    g = Generation(generator="invokeai", raw=c.texts["sd-metadata"])
    g.source.append("png:sd-metadata")
    g.generator_version = to_str(sd.get("app_version"))
    raw_image = sd.get("image")
    image: dict[str, Any] = raw_image if isinstance(raw_image, dict) else {}
    prompt = image.get("prompt")
    if isinstance(prompt, list):
        prompt = " ".join(str(p.get("prompt", "")) for p in prompt if isinstance(p, dict))
    g.prompt, g.negative_prompt = split_bracket_negative(to_str(prompt) or "")
    g.prompt = g.prompt or None
    g.seed, g.steps = to_int(image.get("seed")), to_int(image.get("steps"))
    g.cfg_scale = to_float(image.get("cfg_scale"))
    g.sampler = to_str(image.get("sampler"))
    g.width, g.height = to_int(image.get("width")), to_int(image.get("height"))
    g.model, g.model_hash = to_str(sd.get("model_weights")), to_str(sd.get("model_hash"))
    g.denoise = to_float(image.get("strength")) if image.get("type") == "img2img" else None
    g.params = {k: v for k, v in image.items() if k not in ("prompt", "seed", "steps")}
    return g


_DREAM_FLAGS = {
    "-s": "steps", "--steps": "steps", "-S": "seed", "--seed": "seed",
    "-W": "width", "--width": "width", "-H": "height", "--height": "height",
    "-C": "cfg_scale", "--cfg_scale": "cfg_scale", "-A": "sampler", "--sampler": "sampler",
    "-f": "strength", "--strength": "strength",
}  # fmt: skip


def _from_dream(text: str) -> Generation:
    g = Generation(generator="invokeai", raw=text)
    g.source.append("png:Dream")
    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.split()
    prompt = tokens[0] if tokens else ""
    g.prompt, g.negative_prompt = split_bracket_negative(prompt)
    g.prompt = g.prompt or None
    values: dict[str, Any] = {}
    i = 1
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("-") and i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
            values[_DREAM_FLAGS.get(tok, tok.lstrip("-"))] = tokens[i + 1]
            i += 2
        else:
            values[tok.lstrip("-")] = True
            i += 1
    g.steps, g.seed = to_int(values.pop("steps", None)), to_int(values.pop("seed", None))
    g.width, g.height = to_int(values.pop("width", None)), to_int(values.pop("height", None))
    g.cfg_scale = to_float(values.pop("cfg_scale", None))
    g.sampler = to_str(values.pop("sampler", None))
    g.denoise = to_float(values.pop("strength", None))
    g.params = values
    return g
