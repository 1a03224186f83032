"""Choosing the back end from settings (or per call), with one clear message when none is."""

from __future__ import annotations

from pathlib import Path

from dreamdepot.config import Settings
from dreamdepot.errors import DreamDepotError
from dreamdepot.generate.a1111 import A1111Backend
from dreamdepot.generate.base import Backend

BACKENDS = ("a1111", "comfyui", "diffusers")
_warm: dict[tuple[str, str | None, str | None, str | None], Backend] = {}


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
            url or settings.a1111_url,
            auth or settings.a1111_auth,
            timeout=settings.backend_timeout,
            retries=settings.backend_retries,
        )
    if chosen == "comfyui":
        from dreamdepot.generate.comfyui import ComfyUIBackend

        templates = Path(settings.comfyui_templates) if settings.comfyui_templates else None
        return ComfyUIBackend(
            url or settings.comfyui_url,
            templates,
            timeout=settings.backend_timeout,
            retries=settings.backend_retries,
        )
    if chosen == "diffusers":
        model = url or settings.diffusers_model
        if not model:
            raise NoBackend(
                "the diffusers back end needs diffusers_model in dreamdepot.toml "
                "(or --backend-url PATH)"
            )
        key = (model, settings.diffusers_config, settings.diffusers_upscaler, settings.device)
        if key not in _warm:  # the loaded pipeline stays warm between jobs
            from dreamdepot.generate.base import BackendError
            from dreamdepot.generate.diffusers_local import DiffusersBackend

            def path(p: str | None) -> Path | None:
                return Path(p).expanduser() if p else None

            try:
                _warm[key] = DiffusersBackend(
                    Path(model).expanduser(),
                    path(settings.diffusers_config),
                    path(settings.diffusers_upscaler),
                    settings.device,
                )
            except BackendError as exc:
                raise NoBackend(str(exc)) from exc
        return _warm[key]
    raise NoBackend(f"unknown back end {chosen!r}; known: {', '.join(BACKENDS)}")
