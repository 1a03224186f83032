"""Fooocus (JSON scheme; the a1111 scheme goes through the infotext reader), Fooocus-MRE's
``Comment`` JSON and RuinedFooocus's ``parameters`` JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dreamdepot.ingest.metadata.containers import Container
from dreamdepot.ingest.metadata.model import (
    Generation,
    Resource,
    parse_size,
    to_float,
    to_int,
    to_str,
)
from dreamdepot.ingest.metadata.readers._json import loads_object


def _candidates(c: Container) -> list[tuple[str, str]]:
    out = []
    if "parameters" in c.texts:
        out.append(("png:parameters", c.texts["parameters"]))
    for key in ("UserComment", "IFD0:UserComment"):
        if key in c.exif:
            out.append((f"{c.format}:exif:{key}", c.exif[key]))
    if "Comment" in c.texts and c.texts.get("Software") != "NovelAI":
        out.append(("png:Comment", c.texts["Comment"]))
    return out


def read(c: Container, path: Path | None = None) -> Generation | None:
    for source, text in _candidates(c):
        data = loads_object(text)
        if not data:
            continue
        if data.get("software") == "RuinedFooocus":
            return _ruined(data, text, source)
        if "full_prompt" in data or "base_model" in data or data.get("metadata_scheme"):
            return _fooocus(data, text, source, c)
    return None


def _fooocus(data: dict[str, Any], raw: str, source: str, c: Container) -> Generation:
    is_mre = source == "png:Comment"
    g = Generation(generator="fooocus-mre" if is_mre else "fooocus", raw=raw)
    g.source.append(source)
    if "fooocus_scheme" in c.texts:
        g.source.append("png:fooocus_scheme")
    g.generator_version = to_str(data.get("version"))
    g.prompt = to_str(data.get("prompt")) or None
    g.negative_prompt = to_str(data.get("negative_prompt")) or None
    g.seed = to_int(data.get("seed"))
    g.steps = to_int(data.get("steps"))
    g.cfg_scale = to_float(data.get("guidance_scale", data.get("cfg")))
    g.sampler, g.scheduler = to_str(data.get("sampler")), to_str(data.get("scheduler"))
    g.width, g.height = parse_size(data.get("resolution"))
    if g.width is None:
        g.width, g.height = to_int(data.get("width")), to_int(data.get("height"))
    g.model, g.model_hash = to_str(data.get("base_model")), to_str(data.get("base_model_hash"))
    g.vae = to_str(data.get("vae"))
    g.clip_skip = to_int(data.get("clip_skip"))
    for lora in data.get("loras") or []:
        if isinstance(lora, list | tuple) and lora:
            g.loras.append(
                Resource(
                    str(lora[0]),
                    to_float(lora[1]) if len(lora) > 1 else None,
                    to_str(lora[2]) if len(lora) > 2 else None,
                )
            )
    known = {
        "prompt", "negative_prompt", "seed", "steps", "guidance_scale", "cfg", "sampler",
        "scheduler", "resolution", "width", "height", "base_model", "base_model_hash", "vae",
        "clip_skip", "loras", "version",
    }  # fmt: skip
    g.params = {k: v for k, v in data.items() if k not in known}
    refiner = to_str(data.get("refiner_model"))
    if refiner and refiner != "None":
        from dreamdepot.ingest.metadata.model import Pass

        g.passes.append(
            Pass("refiner", model=refiner, extra={"switch": data.get("refiner_switch")})
        )
    return g


def _ruined(data: dict[str, Any], raw: str, source: str) -> Generation:
    g = Generation(generator="ruinedfooocus", raw=raw)
    g.source.append(source)
    g.prompt = to_str(data.get("Prompt")) or None
    g.negative_prompt = to_str(data.get("Negative")) or None
    g.seed, g.steps = to_int(data.get("seed")), to_int(data.get("steps"))
    g.cfg_scale = to_float(data.get("cfg"))
    g.sampler, g.scheduler = to_str(data.get("sampler_name")), to_str(data.get("scheduler"))
    g.width, g.height = to_int(data.get("width")), to_int(data.get("height"))
    g.model = to_str(data.get("base_model_name"))
    g.model_hash = to_str(data.get("base_model_hash"))
    g.denoise = to_float(data.get("denoise"))
    g.clip_skip = to_int(data.get("clip_skip"))
    for lora in data.get("loras") or []:
        if isinstance(lora, dict) and lora.get("name"):
            g.loras.append(Resource(str(lora["name"]), to_float(lora.get("weight"))))
    known = {
        "Prompt",
        "Negative",
        "seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "width",
        "height",
        "base_model_name",
        "base_model_hash",
        "denoise",
        "clip_skip",
        "loras",
    }
    g.params = {k: v for k, v in data.items() if k not in known}
    return g
