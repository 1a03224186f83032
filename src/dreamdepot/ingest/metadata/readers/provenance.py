"""Generators that embed no parameters: DALL·E / OpenAI (file name, the Labs EXIF marker,
C2PA manifests) and Midjourney (web-download chunks, Discord file names)."""

from __future__ import annotations

import re
from pathlib import Path

from dreamdepot.ingest.metadata.c2pa import summarise
from dreamdepot.ingest.metadata.containers import Container
from dreamdepot.ingest.metadata.model import Generation, to_int

_DALLE_NAME = re.compile(
    r"^DALL[·.\-_ ]?E (\d{4}-\d{2}-\d{2}) (\d{2})\.(\d{2})\.(\d{2})(?: - (.*))?$"
)
_JOB_ID = re.compile(r"\s*Job ID:\s*([0-9a-fA-F-]{36})\s*$")
_MJ_FLAG = re.compile(r"(?:^|\s)--([a-zA-Z]+)(?:\s+((?!--)[^\s]+(?:\s+(?!--)[0-9:.]+)*))?")
_MJ_LINK = re.compile(r"^(?:<?https?://\S+>?\s+)+")
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_MJ_NAME = re.compile(rf"^([A-Za-z0-9_.]+?)_(.+)_({_UUID})(?:_(\d))?$")


def split_midjourney(command: str) -> tuple[str, dict[str, str | bool]]:
    """'a cat --ar 2:1 --v 6 --raw' -> ('a cat', {'ar': '2:1', 'v': '6', 'raw': True}).

    >>> split_midjourney("https://s.mj.run/x a red fox --ar 16:9 --seed 42 --tile")
    ('a red fox', {'ar': '16:9', 'seed': '42', 'tile': True})
    """
    text = _MJ_LINK.sub("", command.strip())
    first = re.search(r"(?:^|\s)--[a-zA-Z]", text)
    prompt = text[: first.start()].strip() if first else text.strip()
    flags: dict[str, str | bool] = {}
    if first:
        for name, value in _MJ_FLAG.findall(text[first.start() :]):
            flags[name.lower()] = value.strip() if value else True
    return prompt.rstrip(" ,"), flags


def _midjourney(prompt: str, flags: dict[str, str | bool], raw: str, source: str) -> Generation:
    g = Generation(generator="midjourney", raw=raw)
    g.source.append(source)
    g.prompt = prompt or None
    seed = flags.get("seed")
    g.seed = to_int(seed) if isinstance(seed, str) else None
    version = flags.get("v") or flags.get("version") or flags.get("niji")
    g.generator_version = version if isinstance(version, str) else None
    no = flags.get("no")
    g.negative_prompt = no if isinstance(no, str) else None
    g.params = {k: v for k, v in flags.items() if k not in ("seed",)}
    return g


def read_midjourney(c: Container, path: Path | None = None) -> Generation | None:
    desc = c.texts.get("Description")
    if desc and _JOB_ID.search(desc):
        m = _JOB_ID.search(desc)
        assert m is not None
        prompt, flags = split_midjourney(desc[: m.start()])
        g = _midjourney(prompt, flags, desc, "png:Description")
        g.params["job_id"] = m.group(1)
        if c.texts.get("Author"):
            g.params["author"] = c.texts["Author"]
        if c.texts.get("Creation Time"):
            g.params["created"] = c.texts["Creation Time"]
        return g
    if path is None:
        return None
    m = _MJ_NAME.match(path.stem)
    if not m:
        return None
    user, slug, job, index = m.groups()
    words = slug.split("_")
    if "--" in slug:
        cut = next(i for i, w in enumerate(words) if w.startswith("--"))
        prompt_words, flag_words = words[:cut], words[cut:]
    else:
        prompt_words, flag_words = words, []
    _, flags = split_midjourney(" ".join(flag_words))
    g = _midjourney(" ".join(prompt_words), flags, path.name, "filename:midjourney")
    g.params.update({"user": user, "job_id": job, "truncated_prompt": True})
    if index is not None:
        g.params["grid_index"] = int(index)
    return g


def read_openai(c: Container, path: Path | None = None) -> Generation | None:
    g: Generation | None = None
    if c.c2pa:
        summary = summarise(c.c2pa)
        claim = summary.claim_generator or ""
        agents = " ".join(summary.software_agents)
        if summary.ai_generated or claim or agents:
            vendor_openai = any(s in claim + agents for s in ("OpenAI", "ChatGPT", "DALL", "gpt-"))
            g = Generation(generator="openai" if vendor_openai else "c2pa")
            g.source.append(f"{c.format}:c2pa")
            g.ai_generated = summary.ai_generated or vendor_openai
            g.model = summary.software_agents[0] if summary.software_agents else None
            g.params = {
                "claim_generator": summary.claim_generator,
                "software_agents": summary.software_agents,
                "actions": summary.actions,
                "digital_source_type": summary.digital_source_type,
            }
    maker = c.exif.get("IFD0:MakerNote") or c.exif.get("MakerNote")
    comment = c.exif.get("UserComment") or c.exif.get("IFD0:UserComment") or ""
    if g is None and (maker == "OpenAI" or "Made with OpenAI" in comment):
        g = Generation(generator="openai", model="DALL·E 2")
        g.source.append(f"{c.format}:exif:MakerNote")
        g.params["exif_comment"] = comment or None
    if path is not None:
        m = _DALLE_NAME.match(path.stem)
        if m:
            g = g or Generation(generator="openai")
            date, hh, mm, ss, prompt = m.groups()
            g.params["created"] = f"{date}T{hh}:{mm}:{ss}"
            if prompt:
                g.prompt = prompt.strip()
                g.params["truncated_prompt"] = True
            g.source.append("filename:dalle")
    return g
