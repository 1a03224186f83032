"""What every back end speaks: typed requests and results, the Backend protocol, errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from dreamdepot.errors import DreamDepotError

MAX_SIDE = 4096


class BackendError(DreamDepotError):
    """The back end failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class GenerateRequest:
    """One generation request, independent of back end."""

    kind: str = "txt2img"  # txt2img | img2img | upscale
    prompt: str = ""
    negative_prompt: str = ""
    n: int = 1
    steps: int = 20
    cfg_scale: float = 7.0
    seed: int = -1
    width: int = 512
    height: int = 512
    model: str | None = None
    sampler: str | None = None
    scheduler: str | None = None
    denoise: float = 0.5
    scale: float = 2.0
    upscaler: str | None = None
    parent_id: int | None = None
    cache_key: str | None = None
    # True when ``model`` was taken from the source image (variations, upscales) rather than
    # typed: a server without that checkpoint then uses its own instead of failing
    model_from_source: bool = False

    def validate(self, max_batch: int) -> None:
        """Reject bad parameters before anything is queued (names the field)."""
        if self.kind not in ("txt2img", "img2img", "upscale"):
            raise ValueError("kind: must be txt2img, img2img or upscale")
        if self.kind == "txt2img" and not self.prompt.strip():
            raise ValueError("prompt: must not be empty")
        if not 1 <= self.n <= max_batch:
            raise ValueError(f"n: between 1 and {max_batch} images per request")
        if not 1 <= self.steps <= 500:
            raise ValueError("steps: between 1 and 500")
        if not 0 <= self.cfg_scale <= 100:
            raise ValueError("cfg_scale: between 0 and 100")
        for name in ("width", "height"):
            v = getattr(self, name)
            if not 64 <= v <= MAX_SIDE or v % 8:
                raise ValueError(f"{name}: a multiple of 8 between 64 and {MAX_SIDE}")
        if not 0 < self.denoise <= 1:
            raise ValueError("denoise: between 0 and 1")
        if not 1 <= self.scale <= 8:
            raise ValueError("scale: between 1 and 8")
        if self.kind != "txt2img" and self.parent_id is None:
            raise ValueError("parent_id: img2img and upscale need a source image")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def request_for_image(detail: dict[str, Any], kind: str, **overrides: Any) -> GenerateRequest:
    """A request that starts from an image in the library (variations, upscale): its prompt,
    parameters and size (snapped to a multiple of 8), with ``overrides`` on top."""

    def snap(v: Any) -> int:
        return 8 * max(8, min(MAX_SIDE, int(v or 512)) // 8)

    req = GenerateRequest(
        kind=kind, prompt=detail.get("prompt") or "",
        negative_prompt=detail.get("negative_prompt") or "", steps=detail.get("steps") or 20,
        cfg_scale=detail.get("cfg_scale") or 7.0, width=snap(detail.get("width")),
        height=snap(detail.get("height")), model=detail.get("model"),
        sampler=detail.get("sampler"), parent_id=detail.get("id"),
        model_from_source=bool(detail.get("model")),
    )  # fmt: skip
    for key, value in overrides.items():
        setattr(req, key, value)
    return req


def resolve_model(wanted: str, available: list[str], service: str) -> str:
    """The server's own name for ``wanted``: an exact name, or one whose normalised form
    (folder, extension and A1111's ``[hash]`` suffix stripped) matches; otherwise an error
    listing what the server has.

    >>> resolve_model("sd_xl_base_1.0", ["SDXL/sd_xl_base_1.0.safetensors"], "ComfyUI")
    'SDXL/sd_xl_base_1.0.safetensors'
    """
    from dreamdepot.ingest.metadata.model import model_name

    if wanted in available:
        return wanted

    def norm(name: str) -> str:
        return (model_name(name.split(" [")[0]) or name).lower()

    matches = [a for a in available if norm(a) == norm(wanted)]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(available[:30]) or "none"
    raise BackendError(f"{service} has no checkpoint {wanted!r}; available: {listed}")


@dataclass
class GeneratedImage:
    data: bytes
    seed: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class BackendResult:
    """``info["model"]``, when a back end sets it, is the model it really used: a job
    records that rather than the request's ``model`` (a local pipeline runs what it loaded)."""

    images: list[GeneratedImage]
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def txt2img(self, req: GenerateRequest, on_progress: Any = None) -> BackendResult: ...

    def img2img(
        self, req: GenerateRequest, init_image: bytes, on_progress: Any = None
    ) -> BackendResult: ...

    def upscale(self, req: GenerateRequest, image: bytes) -> BackendResult: ...

    def models(self) -> list[str]: ...

    def progress(self) -> float: ...

    def cancel(self) -> None: ...
