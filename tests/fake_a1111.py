"""A stand-in for an AUTOMATIC1111 server started with --api (one cannot run here), following
modules/api/models.py: request fields, and responses whose ``info`` is a JSON *string* with
``all_seeds``. It "generates" a flat image whose colour comes from the prompt, one step at a
time so that progress and interrupt behave like the real thing.

Behaviour follows modules/api/api.py as well: an unknown ``sampler_name`` is a 404 with
``{"detail": "Sampler not found"}``, an img2img without ``init_images`` a 404 "Init image not
found", a failing generation a 500 ``{"error", "detail", "body", "errors"}`` (mode
``"error"``), and after ``/interrupt`` the images decoded so far are still returned."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from PIL import Image

STEP_SECONDS = 0.01
SAMPLERS = ["Euler a", "Euler", "DPM++ 2M", "DPM++ SDE", "DDIM"]


def make_app(auth: str | None = None, mode: str = "ok") -> FastAPI:
    app = FastAPI()
    state: dict[str, Any] = {"progress": 0.0, "interrupt": threading.Event(), "calls": []}
    app.state.fake = state

    @app.middleware("http")
    async def basic_auth(request: Request, call_next: Any) -> Any:
        if auth:
            header = request.headers.get("authorization", "")
            expected = "Basic " + base64.b64encode(auth.encode()).decode()
            if header != expected:
                return JSONResponse({"detail": "Incorrect username or password"}, status_code=401)
        return await call_next(request)

    def picture(prompt: str, w: int, h: int, seed: int) -> str:
        digest = hashlib.sha256(f"{prompt}|{seed}".encode()).digest()
        im = Image.new("RGB", (w, h), tuple(digest[:3]))
        im.putpixel((seed % w, 0), (255, 255, 255))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return base64.b64encode(buf.getvalue()).decode()

    def run(payload: dict[str, Any], kind: str) -> Any:
        state["calls"].append((kind, payload))
        sampler = payload.get("sampler_name")
        if sampler and sampler not in SAMPLERS:
            return JSONResponse({"detail": "Sampler not found"}, status_code=404)
        if mode == "error":
            return JSONResponse(
                {"error": "RuntimeError", "detail": "", "body": "",
                 "errors": "Sizes of tensors must match except in dimension 1"},
                status_code=500,
            )  # fmt: skip
        state["interrupt"].clear()
        steps = int(payload.get("steps") or 20)
        n = int(payload.get("batch_size") or 1) * int(payload.get("n_iter") or 1)
        interrupted = False
        for i in range(steps):
            if state["interrupt"].is_set():  # A1111 decodes the current latents and returns them
                interrupted = True
                break
            state["progress"] = i / steps
            time.sleep(STEP_SECONDS)
        state["progress"] = 0.0
        seed = int(payload.get("seed", -1))
        seed = random.randrange(2**32) if seed == -1 else seed  # as A1111: -1 is random
        seeds = [seed + i for i in range(n)]
        w, h = int(payload.get("width") or 512), int(payload.get("height") or 512)
        prompt = payload.get("prompt", "") + (" (interrupted)" if interrupted else "")
        images = [picture(prompt, w, h, s) for s in seeds]
        if mode == "malformed":
            images = ["this is not an image"]
        info = {
            "prompt": payload.get("prompt"),
            "all_prompts": [payload.get("prompt")] * n,
            "seed": seeds[0],
            "all_seeds": seeds,
            "infotexts": [f"seed {s}" for s in seeds],
            "sd_model_name": (payload.get("override_settings") or {}).get(
                "sd_model_checkpoint", "v1-5-pruned-emaonly"
            ),
        }
        return {"images": images, "parameters": payload, "info": json.dumps(info)}

    @app.post("/sdapi/v1/txt2img")
    def txt2img(payload: dict[str, Any]) -> Any:
        return run(payload, "txt2img")

    @app.post("/sdapi/v1/img2img")
    def img2img(payload: dict[str, Any]) -> Any:
        if not payload.get("init_images"):
            return JSONResponse({"detail": "Init image not found"}, status_code=404)
        return run(payload, "img2img")

    @app.post("/sdapi/v1/extra-single-image")
    def extra(payload: dict[str, Any]) -> dict[str, Any]:
        state["calls"].append(("extra", payload))
        im = Image.open(io.BytesIO(base64.b64decode(payload["image"])))
        scale = float(payload.get("upscaling_resize", 2))
        im = im.resize((int(im.width * scale), int(im.height * scale)))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return {"image": base64.b64encode(buf.getvalue()).decode(), "html_info": "<p>upscaled</p>"}

    @app.get("/sdapi/v1/progress")
    def progress() -> dict[str, Any]:
        return {
            "progress": state["progress"],
            "eta_relative": 1.0,
            "state": {"job": "", "job_count": 1, "sampling_step": 0, "sampling_steps": 20},
            "current_image": None,
            "textinfo": None,
        }

    @app.post("/sdapi/v1/interrupt")
    def interrupt() -> dict[str, Any]:
        state["interrupt"].set()
        return {}

    @app.get("/sdapi/v1/sd-models")
    def models() -> list[dict[str, Any]]:
        return [
            {
                "title": "v1-5-pruned-emaonly.safetensors [6ce0161689]",
                "model_name": "v1-5-pruned-emaonly",
                "hash": "6ce0161689",
                "sha256": None,
                "filename": "/models/v1-5-pruned-emaonly.safetensors",
                "config": None,
            }
        ]

    @app.get("/sdapi/v1/samplers")
    def samplers() -> list[dict[str, Any]]:
        return [{"name": n, "aliases": [], "options": {}} for n in SAMPLERS]

    @app.get("/sdapi/v1/upscalers")
    def upscalers() -> list[dict[str, Any]]:
        return [
            {
                "name": "R-ESRGAN 4x+",
                "model_name": None,
                "model_path": None,
                "model_url": None,
                "scale": 4,
            }
        ]

    return app
