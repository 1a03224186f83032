"""NovelAI: the Title/Description/Software/Source/Comment chunks (or their WebP EXIF copy)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dreamdepot.ingest.metadata.containers import Container
from dreamdepot.ingest.metadata.model import Generation, to_float, to_int, to_str
from dreamdepot.ingest.metadata.readers._json import loads, loads_object

_SOURCE = re.compile(r"^(.*?)\s+([0-9A-Fa-f]{8})$")


def split_source(source: str) -> tuple[str, str | None]:
    """'Stable Diffusion XL C1E1DE52' -> ('Stable Diffusion XL', 'C1E1DE52')."""
    m = _SOURCE.match(source.strip())
    return (m.group(1), m.group(2)) if m else (source.strip(), None)


def read(c: Container, path: Path | None = None) -> Generation | None:
    texts = dict(c.texts)
    source_label = "png"
    if c.texts.get("Software") != "NovelAI":
        # WebP: Software=Source, DocumentName=Title, UserComment={"Comment": ...}
        if c.exif.get("IFD0:Software", c.exif.get("Software", "")).startswith("NovelAI") or (
            "NovelAI" in c.exif.get("IFD0:DocumentName", "")
        ):
            wrapper = loads_object(c.exif.get("UserComment") or c.exif.get("IFD0:UserComment"))
            comment = wrapper.get("Comment") if wrapper else None
            texts = {
                "Source": c.exif.get("IFD0:Software", ""),
                "Description": c.exif.get("IFD0:ImageDescription", "").lstrip("\x00"),
            }
            if isinstance(comment, str):
                texts["Comment"] = comment
            source_label = f"{c.format}:exif"
        else:
            return None
    comment_text = texts.get("Comment")
    data: dict[str, Any] = {}
    if isinstance(comment_text, str):
        parsed = loads(comment_text)
        data = parsed if isinstance(parsed, dict) else {}
    g = Generation(generator="novelai", raw=comment_text or texts.get("Description"))
    g.source.extend(f"{source_label}:{k}" for k in texts if texts.get(k))
    v4 = data.get("v4_prompt")
    base = None
    if isinstance(v4, dict) and isinstance(v4.get("caption"), dict):
        base = to_str(v4["caption"].get("base_caption"))
        chars = v4["caption"].get("char_captions") or []
        captions = [ch.get("char_caption") for ch in chars if isinstance(ch, dict)]
        if any(captions):
            g.params["character_prompts"] = [c_ for c_ in captions if c_]
    g.prompt = to_str(data.get("prompt")) or base or texts.get("Description") or None
    neg = data.get("uc")
    v4n = data.get("v4_negative_prompt")
    if not neg and isinstance(v4n, dict) and isinstance(v4n.get("caption"), dict):
        neg = v4n["caption"].get("base_caption")
    g.negative_prompt = to_str(neg) or None
    g.seed, g.steps = to_int(data.get("seed")), to_int(data.get("steps"))
    g.cfg_scale = to_float(data.get("scale"))
    g.sampler = to_str(data.get("sampler"))
    g.scheduler = to_str(data.get("noise_schedule"))
    g.width, g.height = to_int(data.get("width")), to_int(data.get("height"))
    g.denoise = (
        to_float(data.get("strength")) if data.get("request_type") == "Img2ImgRequest" else None
    )
    source = texts.get("Source")
    if source:
        g.model, g.model_hash = split_source(source)
    known = {
        "prompt",
        "uc",
        "seed",
        "steps",
        "scale",
        "sampler",
        "noise_schedule",
        "width",
        "height",
    }
    g.params.update({k: v for k, v in data.items() if k not in known and not k.startswith("v4_")})
    if texts.get("Generation time"):
        g.params["generation_time"] = texts["Generation time"]
    return g
