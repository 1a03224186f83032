"""Easy Diffusion: one PNG text chunk per key (snake_case or display names), a UserComment
JSON in JPEG/WebP, or a ``.txt``/``.json`` side file next to the image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dreamdepot.ingest.metadata.containers import Container
from dreamdepot.ingest.metadata.model import Generation, Resource, to_float, to_int, to_str
from dreamdepot.ingest.metadata.readers._json import loads_object

_DISPLAY = {
    "Prompt": "prompt", "Negative Prompt": "negative_prompt", "Seed": "seed",
    "Stable Diffusion model": "use_stable_diffusion_model", "Sampler": "sampler_name",
    "Steps": "num_inference_steps", "Guidance Scale": "guidance_scale", "Width": "width",
    "Height": "height", "VAE model": "use_vae_model", "LoRA model": "use_lora_model",
    "Clip Skip": "clip_skip", "Prompt Strength": "prompt_strength",
}  # fmt: skip
_MAX_SIDECAR = 1024 * 1024


def _normalise(d: dict[str, Any]) -> dict[str, Any]:
    return {_DISPLAY.get(k, k): v for k, v in d.items()}


def _sidecar(path: Path | None) -> tuple[str, dict[str, Any]] | None:
    if path is None:
        return None
    for ext in (".json", ".txt"):
        side = path.with_suffix(ext)
        try:
            if not side.is_file() or side.stat().st_size > _MAX_SIDECAR:
                continue
            text = side.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if ext == ".json":
            data = loads_object(text)
        else:
            data = {}
            for line in text.splitlines():
                key, sep, value = line.partition(":")
                if sep:
                    data[key.strip()] = value.strip()
        if data:
            data = _normalise(data)
            if "use_stable_diffusion_model" in data:
                return f"sidecar:{side.name}", data
    return None


def read(c: Container, path: Path | None = None) -> Generation | None:
    data = _normalise(c.texts) if c.texts else {}
    label = "png:chunks"
    if "use_stable_diffusion_model" not in data:
        uc = loads_object(c.exif.get("UserComment"))
        if uc and "use_stable_diffusion_model" in _normalise(uc):
            data, label = _normalise(uc), f"{c.format}:exif:UserComment"
        else:
            found = _sidecar(path)
            if found is None:
                return None
            label, data = found
    g = Generation(generator="easydiffusion", raw=json.dumps(data, ensure_ascii=False, default=str))
    g.source.append(label)
    g.prompt = to_str(data.get("prompt")) or None
    g.negative_prompt = to_str(data.get("negative_prompt")) or None
    g.seed = to_int(data.get("seed"))
    g.steps = to_int(data.get("num_inference_steps"))
    g.cfg_scale = to_float(data.get("guidance_scale"))
    g.sampler = to_str(data.get("sampler_name"))
    g.width, g.height = to_int(data.get("width")), to_int(data.get("height"))
    model = to_str(data.get("use_stable_diffusion_model"))
    g.model = Path(model.replace("\\", "/")).name if model else None
    g.vae = to_str(data.get("use_vae_model")) or None
    g.clip_skip = to_int(data.get("clip_skip"))
    strength = to_float(data.get("prompt_strength"))
    g.denoise = strength if data.get("init_image") else None
    lora = to_str(data.get("use_lora_model"))
    if lora and lora != "None":
        g.loras.append(
            Resource(Path(lora.replace("\\", "/")).name, to_float(data.get("lora_alpha")))
        )
    known = {
        "prompt",
        "negative_prompt",
        "seed",
        "num_inference_steps",
        "guidance_scale",
        "sampler_name",
        "width",
        "height",
        "use_stable_diffusion_model",
        "use_vae_model",
        "clip_skip",
        "use_lora_model",
        "lora_alpha",
    }
    g.params = {k: v for k, v in data.items() if k not in known}
    return g
