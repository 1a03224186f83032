"""Read generation metadata out of image files: ``read_generation(path)``."""

from dreamdepot.ingest.metadata.containers import Container, read_container, sniff_format
from dreamdepot.ingest.metadata.model import Generation, Pass, Resource
from dreamdepot.ingest.metadata.registry import (
    BUILTIN_READERS,
    Reader,
    generation_from_container,
    read_file,
    read_generation,
)

__all__ = [
    "BUILTIN_READERS",
    "Container",
    "Generation",
    "Pass",
    "Reader",
    "Resource",
    "generation_from_container",
    "read_container",
    "read_file",
    "read_generation",
    "sniff_format",
]
