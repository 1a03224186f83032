"""ComfyUI and its custom save nodes: ``prompt``/``workflow`` PNG chunks, WebP EXIF
Model/Make (``prompt:{...}``/``workflow:{...}``), SaveImagePlus's UserComment JSON and
Save Image Extended's ``Prompt:``/``Workflow:`` tags."""

from __future__ import annotations

import json
from pathlib import Path

from dreamdepot.ingest.metadata.comfyui import generation_from_graph, load_graph, workflow_summary
from dreamdepot.ingest.metadata.containers import Container
from dreamdepot.ingest.metadata.model import Generation
from dreamdepot.ingest.metadata.readers._json import loads_object


def find_graph(c: Container) -> tuple[str, str, str | None, str | None] | None:
    """(source label, prompt JSON, workflow label, workflow JSON) when a graph is present."""
    if "prompt" in c.texts and c.texts["prompt"].lstrip().startswith("{"):
        wf = c.texts.get("workflow")
        kind = "png" if c.format == "png" else f"{c.format}:tag"  # a video's container tags
        return f"{kind}:prompt", c.texts["prompt"], f"{kind}:workflow" if wf else None, wf
    fmt = c.format
    for key, value in c.exif.items():
        base = key.removeprefix("IFD0:")
        if value.startswith("prompt:") and base in ("Model", "Make", "ImageDescription"):
            wf_key, wf = next(
                ((k, v[9:]) for k, v in c.exif.items() if v.startswith("workflow:")), (None, None)
            )
            return f"{fmt}:exif:{base}", value[7:], f"{fmt}:exif:{wf_key}" if wf_key else None, wf
        if value.startswith("Prompt:") and base in ("Make", "Model", "ImageDescription"):
            wf_key, wf = next(
                ((k, v[9:]) for k, v in c.exif.items() if v.startswith("Workflow:")), (None, None)
            )
            return f"{fmt}:exif:{base}", value[7:], f"{fmt}:exif:{wf_key}" if wf_key else None, wf
    for key in ("IFD0:UserComment", "UserComment"):
        data = loads_object(c.exif.get(key))
        if data and isinstance(data.get("prompt"), dict | str):
            prompt = data["prompt"]
            text = prompt if isinstance(prompt, str) else json.dumps(prompt)
            wf = data.get("workflow")
            wf_text = wf if isinstance(wf, str) or wf is None else json.dumps(wf)
            return f"{fmt}:exif:{key}", text, None, wf_text
    return None


def read(c: Container, path: Path | None = None) -> Generation | None:
    found = find_graph(c)
    if found is None:
        return None
    source, text, wf_source, wf_text = found
    g = generation_from_graph(load_graph(text), raw=text)
    g.source.append(source)
    if wf_source and wf_text:
        g.source.append(wf_source)
        g.params["workflow"] = workflow_summary(wf_text)
    return g
