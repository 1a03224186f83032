"""AUTOMATIC1111 and its family (Forge, Forge Neo, reForge, SD.Next, Civitai, ComfyUI save
nodes that write infotext): the ``parameters`` text chunk, EXIF UserComment, GIF comment."""

from __future__ import annotations

from pathlib import Path

from dreamdepot.ingest.metadata.containers import Container
from dreamdepot.ingest.metadata.infotext import looks_like_infotext, parse_infotext
from dreamdepot.ingest.metadata.model import Generation


def _flavour(g: Generation) -> str:
    version = g.generator_version or ""
    if g.params.get("App") == "SD.Next":
        return "sdnext"
    if version == "neo":
        return "forge-neo"
    if version.startswith("f") and version[1:2].isdigit():
        return "forge"
    if version.startswith("dreamdepot"):
        return "dreamdepot"
    if version.startswith("Fooocus"):
        return "fooocus"
    if version.startswith("ComfyUI"):
        return "comfyui"
    if "Civitai resources" in g.params or "Civitai metadata" in g.params:
        return "civitai"
    return "a1111"


def infotext_sources(c: Container) -> list[tuple[str, str]]:
    """Every place infotext may sit, with a label for ``source``."""
    out = []
    if "parameters" in c.texts:
        out.append(("png:parameters", c.texts["parameters"]))
    if "UserComment" in c.exif:
        out.append((f"{c.format}:exif:UserComment", c.exif["UserComment"]))
    elif "IFD0:UserComment" in c.exif:
        out.append((f"{c.format}:exif:IFD0:UserComment", c.exif["IFD0:UserComment"]))
    if "comment" in c.texts:
        out.append((f"{c.format}:comment", c.texts["comment"]))
    return out


def read(c: Container, path: Path | None = None) -> Generation | None:
    for source, text in infotext_sources(c):
        if text.lstrip().startswith("{"):
            continue
        if not looks_like_infotext(text):
            continue
        g = parse_infotext(text)
        g.generator = _flavour(g)
        g.source.append(source)
        if "postprocessing" in c.texts:
            g.params["postprocessing"] = c.texts["postprocessing"]
            g.source.append("png:postprocessing")
        return g
    if "postprocessing" in c.texts:
        g = parse_infotext("\n" + c.texts["postprocessing"].replace("\n", ", "))
        g.generator = "a1111"
        g.params["postprocessing"] = c.texts["postprocessing"]
        g.source.append("png:postprocessing")
        return g
    return None
