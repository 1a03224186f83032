"""SwarmUI: ``sui_image_params`` JSON in the ``parameters`` chunk or EXIF UserComment
(older releases: EXIF Model). A ComfyUI ``prompt`` chunk beside it is kept as the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dreamdepot.errors import MetadataError
from dreamdepot.ingest.metadata.comfyui import load_graph
from dreamdepot.ingest.metadata.containers import Container
from dreamdepot.ingest.metadata.model import Generation, Resource, to_float, to_int, to_str
from dreamdepot.ingest.metadata.readers._json import loads_object


def _find(c: Container) -> tuple[str, str, dict[str, Any]] | None:
    places = [("png:parameters", c.texts.get("parameters"))]
    places += [
        (f"{c.format}:exif:{k}", v)
        for k, v in c.exif.items()
        if k.removeprefix("IFD0:") in ("UserComment", "Model")
    ]
    for label, text in places:
        if text and "sui_image_params" in text:
            data = loads_object(text)
            if data and isinstance(data.get("sui_image_params"), dict):
                return label, text, data
    return None


def read(c: Container, path: Path | None = None) -> Generation | None:
    found = _find(c)
    if found is None:
        return None
    label, raw, data = found
    p = data["sui_image_params"]
    g = Generation(generator="swarmui", raw=raw)
    g.source.append(label)
    g.generator_version = to_str(p.get("swarm_version"))
    g.prompt = to_str(p.get("prompt")) or None
    g.negative_prompt = to_str(p.get("negativeprompt")) or None
    g.seed, g.steps = to_int(p.get("seed")), to_int(p.get("steps"))
    g.cfg_scale = to_float(p.get("cfgscale"))
    g.sampler, g.scheduler = to_str(p.get("sampler")), to_str(p.get("scheduler"))
    g.width, g.height = to_int(p.get("width")), to_int(p.get("height"))
    g.model = to_str(p.get("model"))
    g.vae = to_str(p.get("vae"))
    g.clip_skip = to_int(p.get("clipstopatlayer"))
    g.denoise = to_float(p.get("initimagecreativity"))
    models = data.get("sui_models")
    if isinstance(models, list):
        for m in models:
            if isinstance(m, dict) and m.get("param") == "model":
                g.model_hash = to_str(m.get("hash"))
    loras, weights = p.get("loras"), p.get("loraweights")
    if isinstance(loras, list):
        ws = weights if isinstance(weights, list) else []
        for i, name in enumerate(loras):
            g.loras.append(Resource(str(name), to_float(ws[i]) if i < len(ws) else None))
    known = {
        "prompt",
        "negativeprompt",
        "seed",
        "steps",
        "cfgscale",
        "sampler",
        "scheduler",
        "width",
        "height",
        "model",
        "vae",
        "swarm_version",
        "loras",
        "loraweights",
    }
    g.params = {k: v for k, v in p.items() if k not in known}
    if isinstance(data.get("sui_extra_data"), dict):
        g.params["extra"] = data["sui_extra_data"]
    if "prompt" in c.texts:
        try:
            g.graph = load_graph(c.texts["prompt"])
            g.source.append("png:prompt")
        except MetadataError:
            pass
    return g
