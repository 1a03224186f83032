"""The ComfyUI API (server.py): API-format workflow templates with ``{{placeholders}}``,
``POST /prompt``, ``/upload/image``, the ``/ws`` progress stream (done on
``execution_success``, ``execution_error``, or ``executing`` with a null node), polling
``/history/{id}`` as a fallback, outputs fetched with ``/view``, models from
``/object_info`` or ``/models/{folder}``, ``POST /interrupt`` to cancel."""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from dreamdepot.generate.base import BackendError, BackendResult, GeneratedImage, GenerateRequest
from dreamdepot.generate.http import request

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

TXT2IMG: dict[str, Any] = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "{{model}}"}},
    "5": {"class_type": "EmptyLatentImage",
          "inputs": {"width": "{{width}}", "height": "{{height}}", "batch_size": "{{n}}"}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{prompt}}", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "{{negative}}", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {
        "seed": "{{seed}}", "steps": "{{steps}}", "cfg": "{{cfg}}",
        "sampler_name": "{{sampler}}", "scheduler": "{{scheduler}}", "denoise": 1.0,
        "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
        "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "dreamdepot",
                                                "images": ["8", 0]}},
}  # fmt: skip
IMG2IMG: dict[str, Any] = {
    **{k: v for k, v in TXT2IMG.items() if k != "5"},
    "10": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
    "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}},
    "12": {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["11", 0],
                                                         "amount": "{{n}}"}},
}  # fmt: skip
IMG2IMG["3"] = copy.deepcopy(TXT2IMG["3"])
IMG2IMG["3"]["inputs"].update({"latent_image": ["12", 0], "denoise": "{{denoise}}"})
UPSCALE: dict[str, Any] = {
    "10": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
    "13": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "{{upscaler}}"}},
    "14": {"class_type": "ImageUpscaleWithModel",
           "inputs": {"upscale_model": ["13", 0], "image": ["10", 0]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "dreamdepot-upscale",
                                                "images": ["14", 0]}},
}  # fmt: skip


def fill(template: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Replace ``{{name}}`` placeholders; a value that is exactly one placeholder keeps the
    value's type (ints stay ints), inside longer strings it is formatted as text.

    >>> fill({"a": {"inputs": {"seed": "{{seed}}", "t": "x {{seed}}"}}}, {"seed": 5})
    {'a': {'inputs': {'seed': 5, 't': 'x 5'}}}
    """

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str):
            whole = _PLACEHOLDER.fullmatch(node)
            if whole:
                if whole.group(1) not in values:
                    raise BackendError(f"workflow template needs a value for {node}")
                return values[whole.group(1)]
            return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), node)
        return node

    filled: dict[str, Any] = walk(template)
    return filled


class ComfyUIBackend:
    name = "comfyui"

    def __init__(
        self, url: str, templates: Path | None = None, timeout: float = 600.0, retries: int = 2
    ) -> None:
        self.url = url.rstrip("/")
        self.client = httpx.Client(base_url=self.url, timeout=30.0)
        self.timeout, self.retries = timeout, retries
        self.client_id = uuid.uuid4().hex
        self.templates = {"txt2img": TXT2IMG, "img2img": IMG2IMG, "upscale": UPSCALE}
        if templates is not None:  # user templates: <dir>/txt2img.json, img2img.json, upscale.json
            for kind in self.templates:
                path = templates / f"{kind}.json"
                if path.is_file():
                    self.templates[kind] = json.loads(path.read_text(encoding="utf-8"))
        self._progress = 0.0

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        r = request(self.client, "ComfyUI", method, path, self.retries, **kwargs)
        if r.status_code >= 400:
            raise BackendError(f"ComfyUI answered {r.status_code} to {path}: {r.text[:300]}")
        return r

    def models(self) -> list[str]:
        r = self._request("GET", "/models/checkpoints")
        return [str(m) for m in r.json()]

    def progress(self) -> float:
        return self._progress

    def cancel(self) -> None:
        self._request("POST", "/interrupt")

    def _values(self, req: GenerateRequest) -> dict[str, Any]:
        seed = req.seed if req.seed >= 0 else int.from_bytes(uuid.uuid4().bytes[:4], "little")
        model = req.model
        if not model:
            available = self.models()
            if not available:
                raise BackendError("ComfyUI has no checkpoints in models/checkpoints")
            model = available[0]
        return {
            "prompt": req.prompt,
            "negative": req.negative_prompt,
            "seed": seed,
            "steps": req.steps,
            "cfg": req.cfg_scale,
            "width": req.width,
            "height": req.height,
            "n": req.n,
            "sampler": req.sampler or "euler",
            "scheduler": req.scheduler or "normal",
            "model": model,
            "denoise": req.denoise,
            "upscaler": req.upscaler or "4x-UltraSharp.pth",
        }

    def _upload(self, image: bytes) -> str:
        name = f"dreamdepot-{uuid.uuid4().hex[:12]}.png"
        r = self._request(
            "POST",
            "/upload/image",
            files={"image": (name, image, "image/png")},
            data={"overwrite": "true"},
        )
        return str(r.json().get("name", name))

    def _run(self, graph: dict[str, Any], seed: int | None, on_progress: Any) -> BackendResult:
        started = time.perf_counter()
        r = self._request("POST", "/prompt", json={"prompt": graph, "client_id": self.client_id})
        body = r.json()
        if body.get("node_errors"):
            raise BackendError(f"ComfyUI rejected the workflow: {body['node_errors']}")
        prompt_id = body.get("prompt_id")
        if not prompt_id:
            raise BackendError(f"ComfyUI gave no prompt_id: {body}")
        self._wait(prompt_id, on_progress)
        history = self._request("GET", f"/history/{prompt_id}").json().get(prompt_id, {})
        status = history.get("status", {})
        if status.get("status_str") == "error":
            raise BackendError(f"ComfyUI failed the prompt: {status.get('messages')}")
        images = []
        for output in history.get("outputs", {}).values():
            for ref in output.get("images", []):
                if ref.get("type", "output") != "output":
                    continue
                data = self._request(
                    "GET",
                    "/view",
                    params={
                        "filename": ref["filename"],
                        "subfolder": ref.get("subfolder", ""),
                        "type": ref.get("type", "output"),
                    },
                ).content
                _check_image(data)
                images.append(GeneratedImage(data, seed))
        if not images:
            raise BackendError("ComfyUI produced no saved images (interrupted?)")
        return BackendResult(images, time.perf_counter() - started, {"prompt_id": prompt_id})

    def _wait(self, prompt_id: str, on_progress: Any) -> None:
        """Follow /ws until this prompt finishes; poll /history if the socket fails."""
        deadline = time.monotonic() + self.timeout
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        try:
            from websockets.sync.client import connect

            with connect(ws_url, open_timeout=5, close_timeout=1) as ws:
                while time.monotonic() < deadline:
                    raw = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                    if not isinstance(raw, str):
                        continue  # binary preview frames
                    msg = json.loads(raw)
                    data = msg.get("data") or {}
                    if data.get("prompt_id") not in (None, prompt_id):
                        continue
                    kind = msg.get("type")
                    if kind == "progress" and data.get("max"):
                        self._progress = float(data["value"]) / float(data["max"])
                        if on_progress is not None:
                            on_progress(self._progress)
                    elif kind == "execution_error":
                        raise BackendError(
                            f"ComfyUI error in node {data.get('node_id')}: "
                            f"{data.get('exception_message')}"
                        )
                    elif kind == "execution_interrupted":
                        raise BackendError("interrupted")
                    elif kind == "execution_success" or (
                        kind == "executing"
                        and data.get("node") is None
                        and data.get("prompt_id") == prompt_id
                    ):
                        return
        except BackendError:
            raise
        except Exception:  # the socket is optional: fall back to polling
            pass
        while time.monotonic() < deadline:
            history = self._request("GET", f"/history/{prompt_id}").json()
            if prompt_id in history:
                return
            time.sleep(0.5)
        raise BackendError(f"ComfyUI did not finish within {self.timeout:.0f} s", retryable=True)

    def txt2img(self, req: GenerateRequest, on_progress: Any = None) -> BackendResult:
        values = self._values(req)
        return self._run(fill(self.templates["txt2img"], values), values["seed"], on_progress)

    def img2img(
        self, req: GenerateRequest, init_image: bytes, on_progress: Any = None
    ) -> BackendResult:
        values = self._values(req)
        values["image"] = self._upload(init_image)
        return self._run(fill(self.templates["img2img"], values), values["seed"], on_progress)

    def upscale(self, req: GenerateRequest, image: bytes) -> BackendResult:
        values = {"image": self._upload(image), "upscaler": req.upscaler or "4x-UltraSharp.pth"}
        return self._run(fill(self.templates["upscale"], values), None, None)


def _check_image(data: bytes) -> None:
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as im:
            im.verify()
    except Exception as exc:  # Pillow raises many kinds on garbage
        raise BackendError(f"ComfyUI sent a malformed image: {exc}") from exc
