"""The ComfyUI API (server.py): API-format workflow templates with ``{{placeholders}}``,
``POST /prompt``, ``/upload/image``, the ``/ws`` progress stream (opened before queueing;
``execution_success``, ``execution_cached``, ``execution_error``, ``execution_interrupted``,
``executing`` with a null node, ``status`` with ``queue_remaining``) beside polling
``/history/{id}``, which decides when a prompt is finished; outputs fetched with ``/view``,
models from ``/models/checkpoints``, ``POST /interrupt`` to cancel. A 400 from ``/prompt``
is shown per node from its ``node_errors``."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import time
import uuid
from pathlib import Path
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
    "15": {"class_type": "ImageScale",  # the model's own factor (often 4x) down to the asked one
           "inputs": {"image": ["14", 0], "upscale_method": "lanczos", "width": "{{width}}",
                      "height": "{{height}}", "crop": "disabled"}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "dreamdepot-upscale",
                                                "images": ["15", 0]}},
}  # fmt: skip
POLL_SECONDS = 0.25  # /history is polled this often beside the socket: no completion is missed


def placeholders(template: dict[str, Any]) -> set[str]:
    """The ``{{names}}`` a template uses: only these values are resolved (no checkpoint is
    looked up for a template without ``{{model}}``).

    >>> sorted(placeholders({"1": {"inputs": {"a": "{{scale}}", "b": "x {{image}} y"}}}))
    ['image', 'scale']
    """
    return set(_PLACEHOLDER.findall(json.dumps(template)))


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
            raise BackendError(
                f"ComfyUI answered {r.status_code} to {path}: {error_text(r, 300)}",
                retryable=r.status_code in RETRY_STATUSES,
            )
        return r

    def models(self) -> list[str]:
        r = self._request("GET", "/models/checkpoints")
        return [str(m) for m in r.json()]

    def device_info(self) -> tuple[str | None, int | None]:
        """The server's first device and its memory, from ComfyUI's ``/system_stats``."""
        devices = self._request("GET", "/system_stats").json().get("devices") or [{}]
        vram = devices[0].get("vram_total")
        return devices[0].get("name"), int(vram) if isinstance(vram, int | float) else None

    def progress(self) -> float:
        return self._progress

    def cancel(self) -> None:
        self._request("POST", "/interrupt")

    def _values(self, req: GenerateRequest, needed: set[str]) -> dict[str, Any]:
        """The values of the placeholders ``needed``, and nothing else: a template without
        ``{{model}}`` (upscale-only, FLUX/GGUF loaders) never asks for a checkpoint."""
        seed = req.seed if req.seed >= 0 else int.from_bytes(uuid.uuid4().bytes[:4], "little")
        values: dict[str, Any] = {
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
            "denoise": req.denoise,
            "scale": req.scale,
            "upscaler": req.upscaler or "4x-UltraSharp.pth",
        }
        if "model" in needed:
            values["model"] = self._model_for(req)
        return values

    def _model_for(self, req: GenerateRequest) -> str:
        if req.model:
            try:
                return resolve_model(req.model, self.models(), "ComfyUI")
            except BackendError:
                if not req.model_from_source:  # typed by the user: it must exist
                    raise
        return self._default_model()

    def _default_model(self) -> str:
        available = self.models()
        if not available:
            raise BackendError(
                "ComfyUI has no checkpoints in models/checkpoints (the template uses {{model}})"
            )
        return available[0]

    def _upload(self, image: bytes) -> str:
        name = f"dreamdepot-{uuid.uuid4().hex[:12]}.png"
        r = self._request(
            "POST",
            "/upload/image",
            files={"image": (name, image, "image/png")},
            data={"overwrite": "true"},
        )
        return str(r.json().get("name", name))

    def _queue(self, graph: dict[str, Any]) -> str:
        """POST /prompt. ComfyUI answers an invalid workflow with 400 ``{"error",
        "node_errors"}``; a 200 with ``node_errors`` means some outputs were invalid but the
        valid ones are queued, so the run goes on."""
        r = request(
            self.client, "ComfyUI", "POST", "/prompt", self.retries,
            json={"prompt": graph, "client_id": self.client_id},
        )  # fmt: skip
        if r.status_code == 400:
            raise BackendError(f"ComfyUI rejected the workflow: {_rejection(r)}")
        if r.status_code >= 400:
            raise BackendError(
                f"ComfyUI answered {r.status_code} to /prompt: {error_text(r, 300)}",
                retryable=r.status_code in RETRY_STATUSES,
            )
        prompt_id = r.json().get("prompt_id")
        if not prompt_id:
            raise BackendError(f"ComfyUI gave no prompt_id: {r.text[:300]}")
        return str(prompt_id)

    def _run(self, graph: dict[str, Any], seed: int | None, on_progress: Any) -> BackendResult:
        started = time.perf_counter()
        self._progress = 0.0
        # ComfyUI sends a prompt's messages only to the sockets connected at that moment:
        # the socket must be open *before* queueing, or a fast or cached run finishes unseen.
        with contextlib.ExitStack() as sockets:
            ws = self._connect(sockets)
            prompt_id = self._queue(graph)
            history = self._wait(sockets, ws, prompt_id, on_progress)
        status = history.get("status", {})
        if status.get("status_str") == "error":
            raise BackendError(f"ComfyUI failed the prompt: {_history_error(status)}")
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

    def _connect(self, sockets: contextlib.ExitStack) -> Any:
        """The progress socket (closed with ``sockets``), or None when it cannot be opened:
        history polling then carries the run alone."""
        ws_url = self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"
        try:
            from websockets.sync.client import connect

            return sockets.enter_context(
                connect(ws_url, open_timeout=5, close_timeout=1, max_size=None)
            )
        except Exception:  # the socket is optional
            return None

    def _history(self, prompt_id: str) -> dict[str, Any] | None:
        entry = self._request("GET", f"/history/{prompt_id}").json().get(prompt_id)
        return entry if isinstance(entry, dict) else None

    def _wait(
        self, sockets: contextlib.ExitStack, ws: Any, prompt_id: str, on_progress: Any
    ) -> dict[str, Any]:
        """Follow the socket and poll ``/history/{id}`` until the prompt is finished; the
        history entry is the result. A dropped socket is reopened once, then polling goes
        on alone. Socket signals only shorten the wait: the history entry decides."""
        deadline = time.monotonic() + self.timeout
        next_poll = time.monotonic()
        reconnected = False
        finished = False
        while time.monotonic() < deadline:
            if finished or time.monotonic() >= next_poll:
                entry = self._history(prompt_id)
                if entry is not None and _finished(entry):
                    return entry
                finished = False
                next_poll = time.monotonic() + POLL_SECONDS
            if ws is None:
                time.sleep(max(0.0, min(next_poll, deadline) - time.monotonic()))
                continue
            try:
                raw = ws.recv(timeout=max(0.01, min(next_poll, deadline) - time.monotonic()))
            except TimeoutError:
                continue
            except Exception:  # the socket dropped: reopen it once, else poll alone
                ws = None if reconnected else self._connect(sockets)
                reconnected = True
                continue
            if not isinstance(raw, str):
                continue  # binary preview frames
            finished = self._on_message(raw, prompt_id, on_progress) or finished
        raise BackendError(f"ComfyUI did not finish within {self.timeout:.0f} s", retryable=True)

    def _on_message(self, raw: str, prompt_id: str, on_progress: Any) -> bool:
        """Handle one socket message; True when it says this prompt has ended."""
        try:
            msg = json.loads(raw)
        except ValueError:
            return False
        data = msg.get("data") or {}
        kind = msg.get("type")
        if kind == "status":  # broadcast, no prompt id: an empty queue may mean we are done
            info = (data.get("status") or {}).get("exec_info") or {}
            return info.get("queue_remaining") == 0
        if data.get("prompt_id") != prompt_id:
            return False
        if kind == "progress" and data.get("max"):
            self._progress = float(data["value"]) / float(data["max"])
            if on_progress is not None:
                on_progress(self._progress)
        elif kind == "execution_error":
            raise BackendError(
                f"ComfyUI error in node {data.get('node_id')} ({data.get('node_type')}): "
                f"{data.get('exception_message')}"
            )
        elif kind == "execution_interrupted":
            raise BackendError("interrupted")
        return kind == "execution_success" or (kind == "executing" and data.get("node") is None)

    def txt2img(self, req: GenerateRequest, on_progress: Any = None) -> BackendResult:
        template = self.templates["txt2img"]
        values = self._values(req, placeholders(template))
        return self._run(fill(template, values), values["seed"], on_progress)

    def img2img(
        self, req: GenerateRequest, init_image: bytes, on_progress: Any = None
    ) -> BackendResult:
        template = self.templates["img2img"]
        values = self._values(req, placeholders(template))
        values["image"] = self._upload(init_image)
        return self._run(fill(template, values), values["seed"], on_progress)

    def upscale(self, req: GenerateRequest, image: bytes) -> BackendResult:
        """``{{width}}``/``{{height}}`` are the target size (source × ``{{scale}}``)."""
        template = self.templates["upscale"]
        values = self._values(req, placeholders(template))
        width, height = _size(image)
        values.update(
            image=self._upload(image),
            width=round(width * req.scale),
            height=round(height * req.scale),
        )
        result = self._run(fill(template, values), None, None)
        result.info["upscaler"] = values["upscaler"]
        return result


def _finished(entry: dict[str, Any]) -> bool:
    """A history entry is final once it has a status (ComfyUI adds it when the prompt ends,
    successfully, with an error or interrupted), or outputs without one (older servers)."""
    status = entry.get("status")
    if isinstance(status, dict):
        return bool(status.get("completed")) or status.get("status_str") in ("success", "error")
    return bool(entry.get("outputs"))


def _history_error(status: dict[str, Any]) -> str:
    """The error message ComfyUI kept in the history's ``messages``."""
    for item in status.get("messages") or []:
        if isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict):
            event, data = item
            if event == "execution_error":
                return f"node {data.get('node_id')}: {data.get('exception_message')}"
            if event == "execution_interrupted":
                return "interrupted"
    return "no reason given"


def _rejection(r: httpx.Response) -> str:
    """A 400 from /prompt as one line per node: ``node 3 (KSampler): Value not in list:
    sampler_name 'x'``, after the overall message."""
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    if not isinstance(body, dict):
        return str(body)[:300]
    lines = []
    err = body.get("error")
    if isinstance(err, dict):
        lines.append(str(err.get("message") or err.get("type") or "invalid workflow"))
    elif err:
        lines.append(str(err))
    node_errors = body.get("node_errors")
    for node_id, info in (node_errors if isinstance(node_errors, dict) else {}).items():
        if not isinstance(info, dict):
            continue
        for e in info.get("errors") or []:
            if isinstance(e, dict):
                detail = f": {e['details']}" if e.get("details") else ""
                lines.append(
                    f"node {node_id} ({info.get('class_type', '?')}): {e.get('message')}{detail}"
                )
    return "; ".join(lines) or "invalid workflow"


def _size(data: bytes) -> tuple[int, int]:
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as im:
            return im.width, im.height
    except Exception as exc:  # Pillow raises many kinds on garbage
        raise BackendError(f"the source image cannot be read: {exc}") from exc


def _check_image(data: bytes) -> None:
    from io import BytesIO

    from PIL import Image

    try:
        with Image.open(BytesIO(data)) as im:
            im.verify()
    except Exception as exc:  # Pillow raises many kinds on garbage
        raise BackendError(f"ComfyUI sent a malformed image: {exc}") from exc
