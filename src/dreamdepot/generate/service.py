"""Choosing the back end from settings (or per call), with one clear message when none is."""

from __future__ import annotations

from dreamdepot.config import Settings
from dreamdepot.errors import DreamDepotError
from dreamdepot.generate.a1111 import A1111Backend
from dreamdepot.generate.base import Backend

BACKENDS = ("a1111",)


class NoBackend(DreamDepotError):
    """No generation back end is configured."""


def make_backend(
    settings: Settings, name: str | None = None, url: str | None = None, auth: str | None = None
) -> Backend:
    chosen = name or settings.backend
    if not chosen:
        raise NoBackend(
            'no generation back end is configured: set backend = "a1111" (and a1111_url) in '
            "dreamdepot.toml, or pass --backend a1111 --backend-url URL"
        )
    if chosen == "a1111":
        return A1111Backend(
            url or settings.a1111_url, auth or settings.a1111_auth, retries=settings.backend_retries
        )
    raise NoBackend(
        f"unknown back end {chosen!r}; known: {', '.join(BACKENDS)} (ComfyUI and "
        "local diffusers are not implemented yet)"
    )
