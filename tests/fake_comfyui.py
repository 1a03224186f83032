"""A stand-in for a ComfyUI server (which cannot run here), following its server.py,
execution.py and main.py in behaviour as well as schema:

- ``POST /prompt`` validates the graph first: an unknown node type or a value not in a
  node's list answers 400 ``{"error": {...}, "node_errors": {id: {"errors", "class_type",
  "dependent_outputs"}}}``; a graph with some valid outputs is queued (200) and its invalid
  outputs listed in ``node_errors``.
- Messages go only to the socket of the prompt's ``client_id`` that is connected *at the
  moment they are sent* (``status`` is broadcast to every socket): a client that connects
  after queueing misses what was already sent.
- Execution can be instant (``start_delay=0``, ``steps_delay=0``), and a graph seen before is
  answered from the cache: ``execution_cached`` with every node, no progress, the same
  outputs, "Prompt executed in 0.01 seconds".
- Order of events as in main.py's prompt worker: ``execution_start``, ``execution_cached``,
  ``progress``…, ``execution_success``, then the history entry is stored, then ``executing``
  with a null node, then a ``status`` broadcast with the queue size.
- ``/interrupt`` stops only the prompt running at that moment; the history keeps
  ``status_str: "error"`` with an ``execution_interrupted`` message.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
import uuid
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, UploadFile, WebSocket
from fastapi.responses import JSONResponse, Response
from PIL import Image

CHECKPOINTS = ["v1-5-pruned-emaonly.safetensors"]
UPSCALE_MODELS = ["4x-UltraSharp.pth", "RealESRGAN_x4plus.pth"]
SAMPLERS = ["euler", "euler_ancestral", "dpmpp_2m", "dpmpp_sde", "ddim"]
# node type -> {input name: allowed values} (None: any value)
NODES: dict[str, dict[str, list[str] | None]] = {
    "CheckpointLoaderSimple": {"ckpt_name": CHECKPOINTS},
    "EmptyLatentImage": {},
    "EmptyImage": {},
    "CLIPTextEncode": {},
    "KSampler": {"sampler_name": SAMPLERS},
    "VAEDecode": {},
    "VAEEncode": {},
    "RepeatLatentBatch": {},
    "LoadImage": {},
    "UpscaleModelLoader": {"model_name": UPSCALE_MODELS},
    "ImageUpscaleWithModel": {},
    "ImageScale": {},
    "ImageScaleBy": {},
    "SaveImage": {},
}
# node type -> required inputs (execution.validate_inputs: "required_input_missing")
REQUIRED: dict[str, tuple[str, ...]] = {
    "CheckpointLoaderSimple": ("ckpt_name",),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptyImage": ("width", "height", "batch_size"),
    "CLIPTextEncode": ("text", "clip"),
    "KSampler": ("model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive",
                 "negative", "latent_image", "denoise"),
    "VAEDecode": ("samples", "vae"),
    "VAEEncode": ("pixels", "vae"),
    "RepeatLatentBatch": ("samples", "amount"),
    "LoadImage": ("image",),
    "UpscaleModelLoader": ("model_name",),
    "ImageUpscaleWithModel": ("upscale_model", "image"),
    "ImageScale": ("image", "upscale_method", "width", "height", "crop"),
    "ImageScaleBy": ("image", "upscale_method", "scale_by"),
    "SaveImage": ("images", "filename_prefix"),
}  # fmt: skip
OUTPUT_NODES = {"SaveImage"}


def make_app(
    fail: bool = False,
    steps_delay: float = 0.01,
    start_delay: float = 0.0,
    checkpoints: list[str] | None = None,
    drop_socket_at_step: int | None = None,
) -> FastAPI:
    """``checkpoints``: what models/checkpoints holds (default one SD 1.5 file);
    ``drop_socket_at_step``: the server closes the client's socket at that sampling step."""
    ckpts = CHECKPOINTS if checkpoints is None else checkpoints
    app = FastAPI()
    st: dict[str, Any] = {
        "history": {},
        "files": {},
        "uploads": {},
        "sockets": {},
        "prompts": [],
        "cache": {},
        "running": None,
        "interrupt": False,
        "queue": 0,
        "sent": [],  # (client_id, type) of every message delivered
    }
    app.state.fake = st

    async def send(client_id: str | None, msg: dict[str, Any]) -> None:
        """To one client's socket if it is connected now; ``None`` broadcasts."""
        targets = (
            list(st["sockets"].items())
            if client_id is None
            else [(client_id, st["sockets"].get(client_id))]
        )
        for cid, ws in targets:
            if ws is None:
                continue
            try:
                await ws.send_text(json.dumps(msg))
                st["sent"].append((cid, msg["type"]))
            except Exception:
                st["sockets"].pop(cid, None)

    async def status() -> None:
        await send(
            None,
            {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": st["queue"]}}}},
        )

    def validate(graph: dict[str, Any]) -> tuple[dict[str, Any], list[str], dict[str, Any] | None]:
        """(node_errors, valid output ids, fatal error) as execution.validate_prompt gives."""
        for nid, node in graph.items():
            if not isinstance(node, dict) or node.get("class_type") not in NODES:
                kind = node.get("class_type") if isinstance(node, dict) else None
                return (
                    {},
                    [],
                    {
                        "type": "invalid_prompt",
                        "message": f"Cannot execute because node {kind} does not exist.",
                        "details": f"Node ID '#{nid}'",
                        "extra_info": {},
                    },
                )
        bad: dict[str, Any] = {}
        for nid, node in graph.items():
            for name in REQUIRED[node["class_type"]]:
                if name not in node.get("inputs", {}):
                    bad.setdefault(nid, {"errors": [], "dependent_outputs": [],
                                         "class_type": node["class_type"]})  # fmt: skip
                    bad[nid]["errors"].append({
                        "type": "required_input_missing", "message": "Required input is missing",
                        "details": name, "extra_info": {"input_name": name},
                    })  # fmt: skip
            for name, allowed in NODES[node["class_type"]].items():
                if name == "ckpt_name":
                    allowed = ckpts
                value = node.get("inputs", {}).get(name)
                if allowed is not None and value is not None and value not in allowed:
                    bad.setdefault(nid, {"errors": [], "dependent_outputs": [],
                                         "class_type": node["class_type"]})  # fmt: skip
                    bad[nid]["errors"].append({
                        "type": "value_not_in_list", "message": "Value not in list",
                        "details": f"{name}: '{value}' not in {allowed}",
                        "extra_info": {"input_name": name},
                    })  # fmt: skip
        outputs = [nid for nid, n in graph.items() if n["class_type"] in OUTPUT_NODES]
        if not outputs:
            return {}, [], {"type": "prompt_no_outputs", "message": "Prompt has no outputs",
                            "details": "", "extra_info": {}}  # fmt: skip

        def upstream(nid: str, seen: set[str]) -> set[str]:
            if nid in seen or nid not in graph:
                return seen
            seen.add(nid)
            for v in graph[nid].get("inputs", {}).values():
                if isinstance(v, list) and len(v) == 2:
                    upstream(str(v[0]), seen)
            return seen

        good, node_errors = [], {}
        for out in outputs:
            failing = upstream(out, set()) & bad.keys()
            if failing:
                for nid in failing:
                    node_errors[nid] = bad[nid]
                    node_errors[nid]["dependent_outputs"].append(out)
            else:
                good.append(out)
        if not good:
            return node_errors, [], {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
                "details": "", "extra_info": {},
            }  # fmt: skip
        return node_errors, good, None

    def size_of(graph: dict[str, Any], nid: str) -> tuple[int, int, int]:
        """(width, height, batch) of the image a node makes, following its inputs."""
        node = graph[nid]
        kind, inputs = node["class_type"], node.get("inputs", {})

        def src(name: str) -> tuple[int, int, int]:
            return size_of(graph, str(inputs[name][0]))

        if kind in ("EmptyLatentImage", "EmptyImage"):
            return int(inputs["width"]), int(inputs["height"]), int(inputs.get("batch_size", 1))
        if kind == "LoadImage":
            with Image.open(io.BytesIO(st["uploads"][inputs["image"]])) as im:
                return im.width, im.height, 1
        if kind == "VAEDecode":
            return src("samples")
        if kind == "VAEEncode":
            return src("pixels")
        if kind == "KSampler":
            return src("latent_image")
        if kind == "RepeatLatentBatch":
            w, h, _ = src("samples")
            return w, h, int(inputs["amount"])
        if kind == "ImageUpscaleWithModel":
            w, h, n = src("image")
            return w * 4, h * 4, n
        if kind == "ImageScale":
            _, _, n = src("image")
            return int(inputs["width"]), int(inputs["height"]), n
        if kind == "ImageScaleBy":
            w, h, n = src("image")
            return round(w * float(inputs["scale_by"])), round(h * float(inputs["scale_by"])), n
        raise KeyError(kind)

    async def finish(prompt_id: str, client_id: str, entry: dict[str, Any]) -> None:
        st["history"][prompt_id] = entry
        st["running"] = None
        st["queue"] -= 1
        await send(client_id, {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}})
        await status()

    async def execute(
        prompt_id: str, graph: dict[str, Any], client_id: str, good: list[str]
    ) -> None:
        try:
            await run(prompt_id, graph, client_id, good)
        except Exception as exc:  # a node raised: ComfyUI reports it and goes on
            await send(client_id, {"type": "execution_error", "data": {
                "prompt_id": prompt_id, "node_id": "?", "node_type": "?",
                "exception_message": repr(exc)}})  # fmt: skip
            await finish(prompt_id, client_id, {"prompt": [0, prompt_id, graph, {}, good],
                                                "outputs": {}, "status": {
                "status_str": "error", "completed": False, "messages": [["execution_error", {
                    "node_id": "?", "exception_message": repr(exc)}]]}})  # fmt: skip

    async def run(prompt_id: str, graph: dict[str, Any], client_id: str, good: list[str]) -> None:
        await asyncio.sleep(start_delay)
        st["running"], st["interrupt"] = prompt_id, False  # an old interrupt is forgotten
        messages: list[Any] = []
        started = time.time()

        async def event(kind: str, data: dict[str, Any]) -> None:
            data = {**data, "prompt_id": prompt_id}
            messages.append([kind, {**data, "timestamp": int(time.time() * 1000)}])
            await send(client_id, {"type": kind, "data": data})

        await event("execution_start", {})
        key = json.dumps(graph, sort_keys=True)
        if key in st["cache"]:  # every node cached: nothing runs, the same outputs
            await event("execution_cached", {"nodes": list(graph)})
            await event("execution_success", {})
            outputs = st["cache"][key]
            await finish(prompt_id, client_id, {
                "prompt": [0, prompt_id, graph, {}, good], "outputs": outputs,
                "status": {"status_str": "success", "completed": True, "messages": messages},
                "meta": {}, "execution_time": 0.01,
            })  # fmt: skip
            return
        await event("execution_cached", {"nodes": []})
        sampler = next((n for n in graph.values() if n["class_type"] == "KSampler"), None)
        steps = int(sampler["inputs"].get("steps", 1)) if sampler else 1
        for i in range(1, steps + 1):
            if st["interrupt"]:
                await event("execution_interrupted", {"node_id": "3", "node_type": "KSampler",
                                                      "executed": []})  # fmt: skip
                await finish(prompt_id, client_id, {
                    "prompt": [0, prompt_id, graph, {}, good], "outputs": {},
                    "status": {"status_str": "error", "completed": False, "messages": messages},
                })  # fmt: skip
                return
            if i == drop_socket_at_step and client_id in st["sockets"]:
                await st["sockets"].pop(client_id).close()
            await send(
                client_id,
                {"type": "progress",
                 "data": {"value": i, "max": steps, "prompt_id": prompt_id, "node": "3"}},
            )  # fmt: skip
            if steps_delay:
                await asyncio.sleep(steps_delay)
        if fail:
            await event("execution_error", {
                "node_id": "3", "node_type": "KSampler", "executed": [],
                "exception_message": "CUDA out of memory", "exception_type": "RuntimeError",
                "traceback": [], "current_inputs": {}, "current_outputs": {},
            })  # fmt: skip
            await finish(prompt_id, client_id, {
                "prompt": [0, prompt_id, graph, {}, good], "outputs": {},
                "status": {"status_str": "error", "completed": False, "messages": messages},
            })  # fmt: skip
            return
        outputs: dict[str, Any] = {}
        for nid in good:
            w, h, n = size_of(graph, str(graph[nid]["inputs"]["images"][0]))
            refs = []
            for i in range(n):
                colour = hashlib.sha256(f"{prompt_id}{i}".encode()).digest()[:3]
                buf = io.BytesIO()
                Image.new("RGB", (w, h), tuple(colour)).save(buf, "PNG")
                name = f"ComfyUI_{len(st['files']):05d}_.png"
                st["files"][name] = buf.getvalue()
                refs.append({"filename": name, "subfolder": "", "type": "output"})
            outputs[nid] = {"images": refs}
            await send(
                client_id,
                {
                    "type": "executed",
                    "data": {
                        "node": nid,
                        "display_node": nid,
                        "output": outputs[nid],
                        "prompt_id": prompt_id,
                    },
                },
            )
        st["cache"][key] = outputs
        await event("execution_success", {})
        await finish(prompt_id, client_id, {
            "prompt": [0, prompt_id, graph, {}, good], "outputs": outputs,
            "status": {"status_str": "success", "completed": True, "messages": messages},
            "meta": {}, "execution_time": time.time() - started,
        })  # fmt: skip

    @app.post("/prompt")
    async def prompt(body: dict[str, Any]) -> Any:
        graph = body.get("prompt")
        if not isinstance(graph, dict) or not graph:
            return JSONResponse(
                {"error": {"type": "no_prompt", "message": "No prompt provided", "details": "",
                           "extra_info": {}}, "node_errors": {}},
                status_code=400,
            )  # fmt: skip
        node_errors, good, fatal = validate(graph)
        if fatal is not None:
            return JSONResponse({"error": fatal, "node_errors": node_errors}, status_code=400)
        prompt_id = str(uuid.uuid4())
        st["prompts"].append(graph)
        st["queue"] += 1
        await status()
        asyncio.get_running_loop().create_task(
            execute(prompt_id, graph, body.get("client_id", ""), good)
        )
        return {"prompt_id": prompt_id, "number": len(st["prompts"]), "node_errors": node_errors}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        client_id = websocket.query_params.get("clientId") or uuid.uuid4().hex
        await websocket.accept()
        st["sockets"][client_id] = websocket
        await websocket.send_text(
            json.dumps(
                {
                    "type": "status",
                    "data": {
                        "status": {"exec_info": {"queue_remaining": st["queue"]}},
                        "sid": client_id,
                    },
                }
            )
        )
        try:
            while True:
                await websocket.receive_text()
        except Exception:
            if st["sockets"].get(client_id) is websocket:
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
        return {"checkpoints": ckpts, "upscale_models": UPSCALE_MODELS}.get(folder, [])

    @app.get("/system_stats")
    def system_stats() -> dict[str, Any]:  # the shape ComfyUI's server.py answers
        return {
            "system": {"os": "posix", "python_version": "3.11", "comfyui_version": "0.3.40"},
            "devices": [
                {
                    "name": "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync",
                    "type": "cuda",
                    "index": 0,
                    "vram_total": 25_393_692_672,
                    "vram_free": 23_000_000_000,
                    "torch_vram_total": 0,
                    "torch_vram_free": 0,
                }
            ],
        }

    @app.post("/interrupt")
    def interrupt() -> dict[str, Any]:
        if st["running"] is not None:  # only the prompt running now
            st["interrupt"] = True
        return {}

    return app
