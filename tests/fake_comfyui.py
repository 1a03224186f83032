"""A stand-in for a ComfyUI server (which cannot run here), following its server.py:
``POST /prompt`` -> ``{"prompt_id", "number", "node_errors"}``, ``/ws?clientId=`` messages
(``status``, ``execution_start``, ``executing``, ``progress``, ``execution_success``),
``/history/{id}``, ``/view``, ``/upload/image``, ``/models/{folder}``, ``/interrupt``."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, UploadFile, WebSocket
from fastapi.responses import Response
from PIL import Image


def make_app(fail: bool = False, steps_delay: float = 0.01) -> FastAPI:
    app = FastAPI()
    st: dict[str, Any] = {
        "history": {},
        "files": {},
        "uploads": {},
        "sockets": {},
        "prompts": [],
        "interrupt": False,
    }
    app.state.fake = st

    async def send(client_id: str, msg: dict[str, Any]) -> None:
        ws = st["sockets"].get(client_id)
        if ws is not None:
            await ws.send_text(json.dumps(msg))

    async def execute(prompt_id: str, graph: dict[str, Any], client_id: str) -> None:
        await asyncio.sleep(0.05)
        await send(client_id, {"type": "execution_start", "data": {"prompt_id": prompt_id}})
        sampler = next((n for n in graph.values() if n["class_type"] == "KSampler"), None)
        steps = int(sampler["inputs"]["steps"]) if sampler else 1
        for i in range(1, steps + 1):
            if st["interrupt"]:
                st["interrupt"] = False
                await send(
                    client_id, {"type": "execution_interrupted", "data": {"prompt_id": prompt_id}}
                )
                st["history"][prompt_id] = {"outputs": {}, "status": {"status_str": "error"}}
                return
            await send(
                client_id,
                {
                    "type": "progress",
                    "data": {"value": i, "max": steps, "prompt_id": prompt_id, "node": "3"},
                },
            )
            await asyncio.sleep(steps_delay)
        if fail:
            await send(
                client_id,
                {
                    "type": "execution_error",
                    "data": {
                        "prompt_id": prompt_id,
                        "node_id": "3",
                        "exception_message": "CUDA out of memory",
                    },
                },
            )
            st["history"][prompt_id] = {"outputs": {}, "status": {"status_str": "error"}}
            return
        outputs: dict[str, Any] = {}
        for nid, node in graph.items():
            if node["class_type"] != "SaveImage":
                continue
            refs = []
            latent = next(
                (n for n in graph.values() if n["class_type"] == "EmptyLatentImage"), None
            )
            if latent:
                n = int(latent["inputs"]["batch_size"])
                size = (int(latent["inputs"]["width"]), int(latent["inputs"]["height"]))
            elif any(n["class_type"] == "ImageUpscaleWithModel" for n in graph.values()):
                src = next(n for n in graph.values() if n["class_type"] == "LoadImage")
                with Image.open(io.BytesIO(st["uploads"][src["inputs"]["image"]])) as im:
                    size, n = (im.width * 2, im.height * 2), 1
            else:
                n, size = (
                    int(
                        next(x for x in graph.values() if x["class_type"] == "RepeatLatentBatch")[
                            "inputs"
                        ]["amount"]
                    ),
                    (64, 64),
                )
            for i in range(n):
                colour = hashlib.sha256(f"{prompt_id}{i}".encode()).digest()[:3]
                buf = io.BytesIO()
                Image.new("RGB", size, tuple(colour)).save(buf, "PNG")
                name = f"ComfyUI_{len(st['files']):05d}_.png"
                st["files"][name] = buf.getvalue()
                refs.append({"filename": name, "subfolder": "", "type": "output"})
            outputs[nid] = {"images": refs}
        st["history"][prompt_id] = {
            "prompt": [0, prompt_id, graph, {}, [nid]],
            "outputs": outputs,
            "status": {"status_str": "success", "completed": True},
        }
        await send(client_id, {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}})
        await send(client_id, {"type": "execution_success", "data": {"prompt_id": prompt_id}})

    @app.post("/prompt")
    async def prompt(body: dict[str, Any]) -> dict[str, Any]:
        graph = body.get("prompt")
        if not isinstance(graph, dict) or not graph:
            raise HTTPException(400, {"error": "no prompt", "node_errors": {}})
        prompt_id = str(uuid.uuid4())
        st["prompts"].append(graph)
        asyncio.get_running_loop().create_task(execute(prompt_id, graph, body.get("client_id", "")))
        return {"prompt_id": prompt_id, "number": len(st["prompts"]), "node_errors": {}}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        client_id = websocket.query_params.get("clientId", "")
        await websocket.accept()
        st["sockets"][client_id] = websocket
        await websocket.send_text(
            json.dumps(
                {
                    "type": "status",
                    "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id},
                }
            )
        )
        try:
            while True:
                await websocket.receive_text()
        except Exception:
            st["sockets"].pop(client_id, None)

    @app.get("/history/{prompt_id}")
    def history(prompt_id: str) -> dict[str, Any]:
        entry = st["history"].get(prompt_id)
        return {prompt_id: entry} if entry else {}

    @app.get("/view")
    def view(filename: str, subfolder: str = "", type: str = "output") -> Response:
        if filename not in st["files"]:
            raise HTTPException(404)
        return Response(st["files"][filename], media_type="image/png")

    @app.post("/upload/image")
    async def upload(
        image: Annotated[UploadFile, File()], overwrite: Annotated[str, Form()] = "false"
    ) -> dict[str, Any]:
        st["uploads"][image.filename] = await image.read()
        return {"name": image.filename, "subfolder": "", "type": "input"}

    @app.get("/models/{folder}")
    def models(folder: str) -> list[str]:
        return ["v1-5-pruned-emaonly.safetensors"] if folder == "checkpoints" else []

    @app.post("/interrupt")
    def interrupt() -> dict[str, Any]:
        st["interrupt"] = True
        return {}

    return app
