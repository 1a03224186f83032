"""The reader registry: which reader gets a file first, and ``read_generation``.

Order follows the most specific marker first (FORMATS.md §11): a NovelAI ``Software``
chunk or a SwarmUI JSON is unambiguous, bare infotext is not. Third-party readers register
under the ``dreamdepot.readers`` entry-point group and are tried before the built-ins.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from dreamdepot.errors import DreamDepotError, MetadataError
from dreamdepot.ingest.metadata.containers import Container, read_container
from dreamdepot.ingest.metadata.model import Generation
from dreamdepot.ingest.metadata.readers import (
    a1111,
    apps,
    comfyui,
    drawthings,
    easydiffusion,
    fooocus,
    invokeai,
    novelai,
    provenance,
    stealth,
    swarmui,
)

ReaderFn = Callable[[Container, Path | None], Generation | None]


@dataclass(frozen=True)
class Reader:
    name: str
    read: ReaderFn


BUILTIN_READERS: tuple[Reader, ...] = (
    Reader("novelai", novelai.read),
    Reader("swarmui", swarmui.read),
    Reader("invokeai", invokeai.read),
    Reader("tensorart", apps.read_tensorart),
    Reader("stability-matrix", apps.read_stability_matrix),
    Reader("civitai", apps.read_civitai),
    Reader("fooocus", fooocus.read),
    Reader("easydiffusion", easydiffusion.read),
    Reader("drawthings", drawthings.read),
    Reader("comfyui", comfyui.read),
    Reader("a1111", a1111.read),
    Reader("gradio", apps.read_gradio_json),
    Reader("midjourney", provenance.read_midjourney),
    Reader("openai", provenance.read_openai),
)

_plugins: tuple[Reader, ...] | None = None


def plugin_readers() -> tuple[Reader, ...]:
    """Readers other packages register under the ``dreamdepot.readers`` entry points."""
    global _plugins
    if _plugins is None:
        found = []
        for ep in entry_points(group="dreamdepot.readers"):
            try:
                found.append(Reader(ep.name, ep.load()))
            except Exception:  # a broken plugin must not stop indexing
                continue
        _plugins = tuple(found)
    return _plugins


def _stealth_candidate(c: Container) -> bool:
    return (c.format == "png" or (c.format == "webp" and c.lossless)) and c.mode in ("RGBA", "RGB")


def generation_from_container(
    c: Container, path: Path | None = None, stealth_check: bool = True
) -> Generation | None:
    """Run the readers over a container; first match wins, with merges where both exist.

    Raises MetadataError only when a reader recognised its format but the data is broken
    and no other reader produced a record.
    """
    error: MetadataError | None = None
    result: Generation | None = None
    for reader in plugin_readers() + BUILTIN_READERS:
        try:
            result = reader.read(c, path)
        except MetadataError as exc:
            error = error or exc
            continue
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
            # A reader bug must not cost the user the file: report it as broken metadata.
            error = error or MetadataError(f"{reader.name} reader failed: {type(exc).__name__}")
            continue
        if result is not None:
            break
    if result is not None and result.generator == "comfyui":
        _merge_infotext(c, path, result)
    if result is None and stealth_check and path is not None and _stealth_candidate(c):
        try:
            result = stealth.read(c, path)
        except MetadataError as exc:
            error = error or exc
    if result is None and c.video and path is not None:
        result = _first_frame_png(path)
    if result is None and error is not None:
        raise error
    if result is not None:
        result.width = result.width or c.width
        result.height = result.height or c.height
        result.params.setdefault("warnings", c.warnings) if c.warnings else None
    return result


PLACEHOLDER_PROMPTS = frozenset({"", "unknown", "none", "null", "undefined", "n/a"})


def degenerate_infotext(info: Generation, graph: Generation) -> str | None:
    """Why an infotext written beside a graph says nothing the graph does not (a save node
    that was not wired: prompt "unknown", ``Seed: 0``), or None when it is a real summary."""
    prompt = (info.prompt or "").strip().lower()
    if prompt in PLACEHOLDER_PROMPTS and (graph.prompt or "").strip():
        return f"its prompt is {info.prompt!r} while the graph has one"
    if not info.seed and graph.seed:
        return f"its seed is {info.seed!r} while the graph has {graph.seed}"
    return None


def _merge_infotext(c: Container, path: Path | None, g: Generation) -> None:
    """A ComfyUI save node that also wrote infotext: the infotext is the author's summary,
    unless it is degenerate; then the graph's values stand and the text is noted."""
    try:
        info = a1111.read(c, path)
    except MetadataError:
        return
    if info is None:
        return
    why = degenerate_infotext(info, g)
    if why is not None:
        g.params["ignored_infotext"] = why
        g.source += [s for s in info.source if s not in g.source]
        return
    graph, sources = g.graph, g.source
    g.__dict__.update(info.__dict__)
    g.generator = "comfyui"
    g.graph = graph
    g.source = sources + [s for s in info.source if s not in sources]


def _first_frame_png(video: Path) -> Generation | None:
    """The generation of a video that carries none, from the PNG its tool saved beside it:
    VideoHelperSuite writes ``NAME_00001.png`` (first frame, full metadata) next to
    ``NAME_00001.mp4`` and ``NAME_00001-audio.mp4``."""
    stem = video.stem.removesuffix("-audio")
    png = video.with_name(stem + ".png")
    try:
        with open(png, "rb") as f:
            c = read_container(f, os.fstat(f.fileno()).st_size)
        if c.format != "png":
            return None
        g = generation_from_container(c, png, stealth_check=False)
    except (OSError, ValueError, IndexError, DreamDepotError):
        return None
    if g is not None:
        g.source = [f"sidecar:{png.name}:{s}" for s in g.source]
        g.width = g.height = None  # the video's own size stands
    return g


def read_file(
    path: str | os.PathLike[str], stealth_check: bool = True
) -> tuple[Container, Generation | None]:
    """The container facts (size, duration of a video) and the generation of one file."""
    p = Path(path)
    with open(p, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        c = read_container(f, size)
    return c, generation_from_container(c, p, stealth_check=stealth_check)


def read_generation(path: str | os.PathLike[str], stealth_check: bool = True) -> Generation | None:
    """Read how an image was generated, from its header chunks alone where possible.

    Returns None for an image without generation metadata; raises UnsupportedImageError
    or CorruptImageError for files that are not readable images, MetadataError for broken
    metadata.
    """
    p = Path(path)
    with open(p, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        c = read_container(f, size)
    return generation_from_container(c, p, stealth_check=stealth_check)
