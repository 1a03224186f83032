"""The Tagger protocol and what a tagger sees of an image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from dreamdepot.errors import DreamDepotError


class TaggerUnavailable(DreamDepotError):
    """A tagger's optional package or model is missing; the message says what to do."""


@dataclass
class Subject:
    """One image as taggers see it: catalog fields, and pixels only if a tagger needs them."""

    image_id: int
    width: int | None
    height: int | None
    prompt: str | None
    model: str | None
    loras: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    pixels: Image.Image | None = None
    # tagger name -> what it could not do here ("no face found"); kept in tagger_runs.note
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    tag: str
    confidence: float = 1.0


class Tagger(Protocol):
    name: str
    version: str
    needs_pixels: bool

    def tag(self, subject: Subject) -> list[Proposal]: ...
