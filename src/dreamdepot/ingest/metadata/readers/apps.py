"""Apps with their own JSON next to (or instead of) a ComfyUI graph: Stability Matrix
(``parameters-json``/``smproj``), TensorArt (``generation_data``), Civitai
(``extraMetadata``) and Gradio/Hugging Face Space apps (``parameters`` JSON)."""

from __future__ import annotations

from pathlib import Path

from dreamdepot.errors import MetadataError
from dreamdepot.ingest.metadata.comfyui import generation_from_graph, load_graph
from dreamdepot.ingest.metadata.containers import Container
from dreamdepot.ingest.metadata.model import Generation, parse_size, to_float, to_int, to_str
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
        g.model = g.model or to_str(base.get("modelFileName"))
        g.model_hash = g.model_hash or to_str(base.get("hash"))
    g.params["generation_data"] = data
    return g


def read_civitai(c: Container, path: Path | None = None) -> Generation | None:
    text = c.texts.get("workflow")
    if text is None or "extraMetadata" not in text:  # cheap test before parsing it all
        return None
    wf = loads_object(text)
    extra = None
    if wf is not None:
        extra = wf.get("extraMetadata") or (wf.get("extra") or {}).get("extraMetadata")
    if extra is None:
        return None
    data = loads_object(extra) if isinstance(extra, str) else extra
    if not isinstance(data, dict):
        return None
    g = _graph_generation(c, "civitai") or Generation(generator="civitai")
    g.source.append("png:workflow:extraMetadata")
    g.prompt = to_str(data.get("prompt")) or g.prompt
    g.negative_prompt = to_str(data.get("negativePrompt")) or g.negative_prompt
    g.seed = to_int(data.get("seed")) if data.get("seed") is not None else g.seed
    g.steps = to_int(data.get("steps")) or g.steps
    g.cfg_scale = to_float(data.get("cfgScale")) or g.cfg_scale
    g.sampler = to_str(data.get("sampler")) or g.sampler
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
