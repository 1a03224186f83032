"""Apps with their own JSON next to (or instead of) a ComfyUI graph: Stability Matrix
(``parameters-json``/``smproj``), TensorArt (``generation_data``), Civitai
(``extraMetadata`` in a PNG ``workflow`` chunk, or — from its on-site generator — a JPEG whose
EXIF UserComment holds the ComfyUI graph itself beside ``extra``/``extraMetadata``, with
resources named by ``urn:air:…`` ids) and Gradio/Hugging Face Space apps (``parameters``
JSON)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from dreamdepot.errors import MetadataError
from dreamdepot.ingest.metadata.comfyui import generation_from_graph, load_graph
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


def _graph_generation(c: Container, generator: str) -> Generation | None:
    text = c.texts.get("prompt")
    if not text:
        return None
    try:
        g = generation_from_graph(load_graph(text), raw=text, generator=generator)
    except MetadataError:
        return None
    g.source.append("png:prompt")
    return g


def read_stability_matrix(c: Container, path: Path | None = None) -> Generation | None:
    if "smproj" not in c.texts and "parameters-json" not in c.texts:
        return None
    data = loads_object(c.texts.get("parameters-json")) or {}
    g = _graph_generation(c, "stability-matrix") or Generation(generator="stability-matrix")
    g.source += [f"png:{k}" for k in ("parameters-json", "smproj") if k in c.texts]
    g.prompt = g.prompt or to_str(data.get("PositivePrompt"))
    g.negative_prompt = g.negative_prompt or to_str(data.get("NegativePrompt"))
    g.seed = g.seed if g.seed is not None else to_int(data.get("Seed"))
    g.steps = g.steps or to_int(data.get("Steps"))
    g.cfg_scale = g.cfg_scale if g.cfg_scale is not None else to_float(data.get("CfgScale"))
    g.sampler = g.sampler or to_str(data.get("Sampler"))
    g.model = g.model or to_str(data.get("ModelName"))
    g.model_hash = g.model_hash or to_str(data.get("ModelHash"))
    g.width = g.width or to_int(data.get("Width"))
    g.height = g.height or to_int(data.get("Height"))
    if data:
        g.params["parameters_json"] = data
    return g


def read_tensorart(c: Container, path: Path | None = None) -> Generation | None:
    data = loads_object(c.texts.get("generation_data"))
    if data is None:
        return None
    g = _graph_generation(c, "tensorart") or Generation(generator="tensorart")
    g.source.append("png:generation_data")
    g.prompt = g.prompt or to_str(data.get("prompt"))
    g.negative_prompt = g.negative_prompt or to_str(data.get("negativePrompt"))
    seed = to_int(data.get("seed"))
    if g.seed is None and seed is not None and seed >= 0:
        g.seed = seed
    g.steps = g.steps or to_int(data.get("steps"))
    g.cfg_scale = g.cfg_scale if g.cfg_scale is not None else to_float(data.get("cfgScale"))
    g.sampler = g.sampler or to_str(data.get("samplerName"))
    base = data.get("baseModel")
    if isinstance(base, dict):
        human = to_str(base.get("modelFileName"))
        if human and g.model and human != g.model:  # the graph holds TensorArt's id
            g.params["model_id"] = g.model
        g.model = human or g.model
        g.model_hash = g.model_hash or to_str(base.get("hash"))
    g.params["generation_data"] = data
    return g


_AIR = re.compile(
    r"^urn:air:(?P<ecosystem>[\w.-]+):(?P<type>[\w.-]+):(?P<source>[\w.-]+):"
    r"(?P<id>[^@\s]+)(?:@(?P<version>[^\s]+))?$"
)


def parse_air(urn: str) -> dict[str, str] | None:
    """Civitai's resource ids: ``urn:air:{ecosystem}:{type}:{source}:{id}@{version}``.

    >>> parse_air("urn:air:sdxl:lora:civitai:328553@368189")["type"]
    'lora'
    >>> parse_air("my_model.safetensors") is None
    True
    """
    m = _AIR.match(urn.strip())
    return {k: v for k, v in m.groupdict().items() if v} if m else None


def read_civitai(c: Container, path: Path | None = None) -> Generation | None:
    text = c.texts.get("workflow")
    if text is not None and "extraMetadata" in text:  # cheap test before parsing it all
        wf = loads_object(text)
        extra = None
        if wf is not None:
            extra = wf.get("extraMetadata") or (wf.get("extra") or {}).get("extraMetadata")
        data = loads_object(extra) if isinstance(extra, str) else extra
        if isinstance(data, dict):
            g = _graph_generation(c, "civitai") or Generation(generator="civitai")
            g.source.append("png:workflow:extraMetadata")
            return _civitai_values(g, data, [])
    for key in ("UserComment", "IFD0:UserComment"):  # the on-site generator's JPEGs
        comment = c.exif.get(key)
        if not comment or "extraMetadata" not in comment:
            continue
        obj = loads_object(comment)
        if obj is None:
            continue
        extra = obj.get("extraMetadata")
        data = loads_object(extra) if isinstance(extra, str) else extra
        nodes = {k: v for k, v in obj.items() if isinstance(v, dict) and "class_type" in v}
        g = Generation(generator="civitai", raw=comment)
        if nodes:
            with contextlib.suppress(MetadataError):  # an upscale-only graph: values below
                g = generation_from_graph(nodes, raw=comment, generator="civitai")
        g.source.append(f"{c.format}:exif:{key}")
        airs = (obj.get("extra") or {}).get("airs") if isinstance(obj.get("extra"), dict) else []
        return _civitai_values(g, data if isinstance(data, dict) else {}, airs or [])
    return None


def _civitai_values(g: Generation, data: dict[str, object], airs: list[object]) -> Generation:
    """Civitai's own summary over the graph's values; resources from their AIR ids."""
    g.prompt = to_str(data.get("prompt")) or g.prompt
    g.negative_prompt = to_str(data.get("negativePrompt")) or g.negative_prompt
    g.seed = to_int(data.get("seed")) if data.get("seed") is not None else g.seed
    g.steps = to_int(data.get("steps")) or g.steps
    g.cfg_scale = to_float(data.get("cfgScale")) or g.cfg_scale
    g.sampler = to_str(data.get("sampler")) or g.sampler
    resources: list[dict[str, str]] = []
    for urn in [a for a in airs if isinstance(a, str)] + ([g.model] if g.model else []):
        air = parse_air(urn)
        if air is None or urn in [r["urn"] for r in resources]:
            continue
        resources.append({"urn": urn, **air})
        if air["type"] == "checkpoint":
            g.model = g.model or urn
            g.params.setdefault("base_model", air["ecosystem"])
        elif air["type"] in ("lora", "lycoris", "locon") and urn not in [x.name for x in g.loras]:
            g.loras.append(Resource(urn))
        elif air["type"] in ("embedding", "textualinversion"):
            g.embeddings.append(Resource(urn))
    if resources:
        g.params["civitai_resources"] = resources
    if data:
        g.params["civitai"] = data
    return g


def read_gradio_json(c: Container, path: Path | None = None) -> Generation | None:
    """Gradio apps (e.g. Animagine-style Hugging Face Spaces) write a flat JSON."""
    data = loads_object(c.texts.get("parameters"))
    if data is None or "prompt" not in data:
        return None
    if not any(k in data for k in ("num_inference_steps", "guidance_scale", "resolution")):
        return None
    g = Generation(generator="gradio", raw=c.texts["parameters"])
    g.source.append("png:parameters")
    g.prompt = to_str(data.get("prompt")) or None
    g.negative_prompt = (to_str(data.get("negative_prompt")) or "").strip() or None
    g.seed = to_int(data.get("seed"))
    g.steps = to_int(data.get("num_inference_steps"))
    g.cfg_scale = to_float(data.get("guidance_scale"))
    g.sampler = to_str(data.get("sampler"))
    g.width, g.height = parse_size((to_str(data.get("resolution")) or "").replace(" ", ""))
    g.model = to_str(data.get("Model") or data.get("model"))
    g.model_hash = to_str(data.get("Model hash"))
    known = {
        "prompt",
        "negative_prompt",
        "seed",
        "num_inference_steps",
        "guidance_scale",
        "sampler",
        "resolution",
        "Model",
        "model",
        "Model hash",
    }
    g.params = {k: v for k, v in data.items() if k not in known}
    return g
