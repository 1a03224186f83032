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
    settings: Settings,
    name: str | None = None,
    url: str | None = None,
    auth: str | None = None,
    model: str | None = None,
) -> Backend:
    """The back end to use. ``model`` is what a user types as ``--model``: for A1111 and
    ComfyUI it travels with each request (checked against what the server has); for
    diffusers it chooses the pipeline to load (:func:`diffusers_model_path`)."""
    chosen = name or settings.backend
    if not chosen:
        raise NoBackend(
            'no generation back end is configured: set backend = "a1111" (and a1111_url) in '
            "dreamdepot.toml, or pass --backend a1111|comfyui|diffusers (--backend-url URL)"
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
        path = diffusers_model_path(settings, model or url)
        key = (str(path), settings.diffusers_config, settings.diffusers_upscaler, settings.device)
        if key not in _warm:  # the loaded pipeline stays warm between jobs
            from dreamdepot.generate.base import BackendError
            from dreamdepot.generate.diffusers_local import DiffusersBackend

            def optional(p: str | None) -> Path | None:
                return Path(p).expanduser() if p else None

            try:
                _warm[key] = DiffusersBackend(
                    path,
                    optional(settings.diffusers_config),
                    optional(settings.diffusers_upscaler),
                    settings.device,
                )
            except BackendError as exc:
                raise NoBackend(str(exc)) from exc
        return _warm[key]
    raise NoBackend(f"unknown back end {chosen!r}; known: {', '.join(BACKENDS)}")


MODEL_FILES = (".safetensors", ".ckpt")


def local_models(models_dir: str | None) -> dict[str, Path]:
    """Name → path of every diffusers folder (with ``model_index.json``) and single-file
    checkpoint directly under ``models_dir``."""
    if not models_dir or not Path(models_dir).is_dir():
        return {}
    found: dict[str, Path] = {}
    for entry in sorted(Path(models_dir).iterdir()):
        if entry.is_dir() and (entry / "model_index.json").is_file():
            found[entry.name] = entry
        elif entry.is_file() and entry.suffix.lower() in MODEL_FILES:
            found[entry.stem] = entry
    return found


def diffusers_model_path(settings: Settings, model: str | None) -> Path:
    """The pipeline to load for ``--model``: a path to a diffusers folder or a single
    checkpoint file, or a name found under ``models_dir``; else ``diffusers_model``."""
    chosen = model or settings.diffusers_model
    if not chosen:
        raise NoBackend(
            "the diffusers back end needs a model: --model PATH_OR_NAME, or diffusers_model "
            "(or models_dir) in dreamdepot.toml"
        )
    path = Path(chosen).expanduser()
    if path.exists():
        return path
    available = local_models(settings.models_dir)
    if chosen in available:
        return available[chosen]
    names = ", ".join(available) or "none"
    where = settings.models_dir or "models_dir (not set)"
    raise NoBackend(f"no model {chosen!r}: not a path, and not in {where}; available: {names}")
