"""What the ingest pipeline hands the catalog's writer for one file: a plain, picklable
record (probes run in worker processes). It lives with the catalog, which defines what a
file becomes, so the catalog depends on nothing above it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Probe:
    """What ingest learned about one file; ``error`` set means it could not be indexed."""

    rel_path: str
    size: int = 0
    mtime_ns: int = 0
    error: str | None = None
    vanished: bool = False
    incomplete: bool = False
    content_hash: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    fields: dict[str, Any] | None = None
    metadata_error: str | None = None
    full_hash: str | None = None  # only when identity had to be confirmed (ingest pipeline)
    duration: float | None = None  # seconds: videos and animated GIF/WebP
    frames: int | None = None
    fps: float | None = None
