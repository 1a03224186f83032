"""The AUTOMATIC1111 / Forge / reForge HTTP API (`--api`), per modules/api/models.py:
``/sdapi/v1/txt2img``, ``img2img``, ``extra-single-image``, ``progress``, ``interrupt``,
``sd-models``, ``samplers``, ``upscalers``, ``options``. ``info`` in responses is a JSON
*string*; the seeds actually used are in its ``all_seeds``."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import threading
import time
from typing import Any

import httpx

from dreamdepot.generate.base import (
    BackendError,
    BackendResult,
    GeneratedImage,
    GenerateRequest,
    resolve_model,
)
from dreamdepot.generate.http import RETRY_STATUSES, error_text, request

POLL_SECONDS = 0.5


class A1111Backend:
    name = "a1111"

    def __init__(
        self,
        url: str,
        auth: str | None = None,
        timeout: float = 600.0,
        retries: int = 2,
        backoff: float = 1.0,
    ) -> None:
        self.url = url.rstrip("/")
        basic = None
        if auth:
            user, _, password = auth.partition(":")
            basic = httpx.BasicAuth(user, password)
        self.client = httpx.Client(base_url=self.url, auth=basic, timeout=timeout)
        self.retries, self.backoff = retries, backoff
        self._progress = 0.0

    # -- transport with bounded retries -------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        r = request(self.client, "A1111", method, path, self.retries, self.backoff, **kwargs)
        if r.status_code == 401:
            raise BackendError("A1111 refused the credentials (HTTP 401): check --api-auth")
        if r.status_code == 404:
            detail = error_text(r)
            if detail in ("", "Not Found"):  # FastAPI's answer for a route that does not exist
                raise BackendError(f"A1111 has no {path}: is it started with --api?")
            raise BackendError(f"A1111 refused the request: {detail}")  # unknown sampler, ...
        if r.status_code >= 400:
            raise BackendError(
                f"A1111 answered {r.status_code} to {path}: {error_text(r)}",
                retryable=r.status_code in RETRY_STATUSES,
            )
        try:
            return r.json()
        except ValueError as exc:
            raise BackendError(f"A1111 sent something that is not JSON from {path}") from exc

    # -- Backend protocol -------------------------------------------------------------------

    def models(self) -> list[str]:
        items = self._call("GET", "/sdapi/v1/sd-models")
        return [str(m.get("model_name") or m.get("title")) for m in items if isinstance(m, dict)]

    def samplers(self) -> list[str]:
        return [str(s.get("name")) for s in self._call("GET", "/sdapi/v1/samplers")]

    def upscalers(self) -> list[str]:
        return [str(u.get("name")) for u in self._call("GET", "/sdapi/v1/upscalers")]

    def progress(self) -> float:
        data = self._call("GET", "/sdapi/v1/progress", params={"skip_current_image": True})
        self._progress = float(data.get("progress") or 0.0)
        return self._progress

    def cancel(self) -> None:
        self._call("POST", "/sdapi/v1/interrupt")

    def _checkpoint(self, wanted: str) -> str:
        """The sd-models title for ``wanted`` (a title, a model_name or a file name)."""
        items = [m for m in self._call("GET", "/sdapi/v1/sd-models") if isinstance(m, dict)]
        names = [str(m.get("title") or m.get("model_name")) for m in items]
        by_short = {str(m.get("model_name")): str(m.get("title")) for m in items}
        if wanted in by_short:
            return by_short[wanted]
        return resolve_model(wanted, names, "A1111")

    def _model_for(self, req: GenerateRequest) -> str | None:
        if not req.model:
            return None
        try:
            return self._checkpoint(req.model)
        except BackendError:
            if req.model_from_source:  # the source image's model is not here: use the current
                return None
            raise

    def _payload(self, req: GenerateRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "prompt": req.prompt, "negative_prompt": req.negative_prompt, "seed": req.seed,
            "steps": req.steps, "cfg_scale": req.cfg_scale, "width": req.width,
            "height": req.height, "batch_size": req.n, "n_iter": 1, "send_images": True,
            "save_images": False,
        }  # fmt: skip
        if req.sampler:
            payload["sampler_name"] = req.sampler
        if req.scheduler:
            payload["scheduler"] = req.scheduler
        checkpoint = self._model_for(req)
        if checkpoint:
            payload["override_settings"] = {"sd_model_checkpoint": checkpoint}
            payload["override_settings_restore_afterwards"] = True
        return payload

    def _run(self, path: str, payload: dict[str, Any], on_progress: Any) -> BackendResult:
        done = threading.Event()
        if on_progress is not None:

            def poll() -> None:
                while not done.wait(POLL_SECONDS):
                    with contextlib.suppress(BackendError):
                        on_progress(self.progress())

            threading.Thread(target=poll, daemon=True).start()
        started = time.perf_counter()
        try:
            data = self._call("POST", path, json=payload)
        finally:
            done.set()
        seconds = time.perf_counter() - started
        info = _parse_info(data.get("info"))
        images = data.get("images") or []
        if not images:
            raise BackendError("A1111 returned no images (interrupted, or a script failed)")
        seeds = info.get("all_seeds") or []
        out = []
        for i, b64 in enumerate(images[: payload.get("batch_size", 1)]):
            out.append(
                GeneratedImage(
                    _decode_image(b64),
                    seeds[i] if i < len(seeds) else None,
                    {
                        "infotext": (info.get("infotexts") or [None] * (i + 1))[i]
                        if i < len(info.get("infotexts") or [])
                        else None
                    },
                )
            )
        return BackendResult(out, seconds, info)

    def txt2img(self, req: GenerateRequest, on_progress: Any = None) -> BackendResult:
        return self._run("/sdapi/v1/txt2img", self._payload(req), on_progress)

    def img2img(
        self, req: GenerateRequest, init_image: bytes, on_progress: Any = None
    ) -> BackendResult:
        payload = self._payload(req)
        payload["init_images"] = [base64.b64encode(init_image).decode()]
        payload["denoising_strength"] = req.denoise
        return self._run("/sdapi/v1/img2img", payload, on_progress)

    def upscale(self, req: GenerateRequest, image: bytes) -> BackendResult:
        started = time.perf_counter()
        data = self._call(
            "POST",
            "/sdapi/v1/extra-single-image",
            json={
                "image": base64.b64encode(image).decode(),
                "resize_mode": 0,
                "upscaling_resize": req.scale,
                "upscaler_1": req.upscaler or "R-ESRGAN 4x+",
            },
        )
        if not data.get("image"):
            raise BackendError("A1111 returned no upscaled image")
        return BackendResult(
            [GeneratedImage(_decode_image(data["image"]))],
            time.perf_counter() - started,
            {"html_info": data.get("html_info")},
        )


def _parse_info(info: Any) -> dict[str, Any]:
    if isinstance(info, dict):
        return info
    if isinstance(info, str) and info:
        try:
            parsed = json.loads(info)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _decode_image(b64: Any) -> bytes:
    if not isinstance(b64, str):
        raise BackendError("A1111 sent an image that is not a base64 string")
    if b64.startswith("data:"):
        b64 = b64.partition(",")[2]
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BackendError("A1111 sent an image that is not valid base64") from exc
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as im:
            im.verify()
    except Exception as exc:  # Pillow raises many kinds on garbage
        raise BackendError(f"A1111 sent a malformed image: {exc}") from exc
    return data
