"""Generation over HTTP: submit jobs, follow them (also as ``job`` server-sent events),
cancel them, and ask what the back end offers."""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from dreamdepot.accounts import Principal
from dreamdepot.catalog.visibility import can_see
from dreamdepot.generate.base import BackendError, GenerateRequest
from dreamdepot.generate.jobs import JobQueue, job_row
from dreamdepot.generate.observe import queue_summary
from dreamdepot.generate.scheduling import QueueFull
from dreamdepot.generate.service import NoBackend, make_backend
from dreamdepot.server.accounts import principal
from dreamdepot.server.app import AppState, state

router = APIRouter(prefix="/api", tags=["generate"])
log = logging.getLogger("dreamdepot.jobs")
_queues: dict[int, tuple[JobQueue, threading.Event]] = {}
_queues_lock = threading.Lock()


def queue_for(st: AppState) -> tuple[JobQueue, threading.Event]:
    """One queue and one worker thread per server: one job at a time on the back end. With
    ``job_runner = "workers"`` the server only queues: `dreamdepot worker` processes run."""
    with _queues_lock:
        key = id(st)
        if key not in _queues and st.settings.job_runner == "workers":
            from dreamdepot.generate.dispatch import Workers

            queue = JobQueue(
                st.library_path,
                Workers(),
                st.settings.max_batch,
                notify=st.events.publish,
                catalog_where=st.catalog_where,
            )
            _queues[key] = (queue, threading.Event())  # nothing here waits on it
        if key not in _queues:
            try:
                backend = make_backend(st.settings)
            except NoBackend as exc:
                raise HTTPException(503, str(exc)) from exc
            queue = JobQueue(
                st.library_path,
                backend,
                st.settings.max_batch,
                notify=st.events.publish,
                catalog_where=st.catalog_where,
            )
            queue.recover()
            wake = threading.Event()

            def work() -> None:
                while not st.stop.is_set():
                    try:
                        queue.run_pending(st.stop)
                    except Exception:  # the worker must outlive any one failure
                        log.exception("job worker: a run failed; carrying on")
                    wake.wait(1.0)
                    wake.clear()

            st.start(work, "dreamdepot-jobs")
            _queues[key] = (queue, wake)
        return _queues[key]


def forget_queue(st: AppState) -> None:
    """Close the server's job queue (its connections) when the server stops."""
    with _queues_lock:
        entry = _queues.pop(id(st), None)
    if entry is not None:
        entry[0].close()


NAME_MAX = 500  # model, sampler, scheduler and upscaler names


class GenerateBody(BaseModel):
    kind: str = Field("txt2img", pattern="^(txt2img|img2img|upscale)$")
    prompt: str = Field("", max_length=20_000)
    negative_prompt: str = Field("", max_length=20_000)
    n: int = 1
    steps: int = 20
    cfg_scale: float = 7.0
    seed: int = -1
    width: int = 512
    height: int = 512
    model: str | None = Field(None, max_length=NAME_MAX)
    sampler: str | None = Field(None, max_length=NAME_MAX)
    scheduler: str | None = Field(None, max_length=NAME_MAX)
    denoise: float = 0.5
    scale: float = 2.0
    upscaler: str | None = Field(None, max_length=NAME_MAX)
    parent_id: int | None = None
    # queued behind every interactive request (batches, prefill)
    background: bool = False


@router.get("/backend")
def backend_info(request: Request) -> dict[str, Any]:
    """Whether generation is available, and the back end's models (for the UI)."""
    st = state(request)
    if st.settings.job_runner == "workers":  # the workers have the back ends and models
        return {"available": True, "backend": "workers", "models": []}
    try:
        backend = make_backend(st.settings)
    except NoBackend as exc:
        return {"available": False, "reason": str(exc)}
    try:
        models = backend.models()
    except BackendError as exc:
        return {"available": False, "backend": backend.name, "reason": str(exc)}
    return {"available": True, "backend": backend.name, "models": models}


@router.post("/generate", status_code=202)
def submit(request: Request, body: GenerateBody) -> dict[str, Any]:
    """Queue a generation (422 naming the field when a parameter is invalid)."""
    st = state(request)
    queue, wake = queue_for(st)
    req = GenerateRequest(**body.model_dump(exclude={"background"}))
    if req.kind != "txt2img" and req.parent_id is not None and not req.prompt:
        row = (
            st.store.read()
            .execute(
                "SELECT p.text FROM images i LEFT JOIN prompts p ON p.id = i.prompt_id "
                "WHERE i.id = ?",
                (req.parent_id,),
            )
            .fetchone()
        )
        req.prompt = row[0] if row and row[0] else ""
    who = principal(request)
    if req.parent_id is not None and not can_see(st.store.read(), who, req.parent_id):
        raise HTTPException(422, {"message": f"parent_id: no image {req.parent_id}",
                                  "field": "parent_id"})  # fmt: skip
    job_id = submit_or_422(
        queue, req, user_id=who.user_id if who else None, background=body.background
    )
    wake.set()
    return {"job": job_id}


def submit_or_422(
    queue: JobQueue, req: GenerateRequest, user_id: int | None = None, background: bool = False
) -> int:
    """Queue ``req``; an invalid parameter is a 422 naming its field, a user with too many
    jobs waiting gets 429."""
    try:
        return queue.submit(req, user_id=user_id, background=background)
    except QueueFull as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": "30"}) from exc
    except ValueError as exc:
        field = str(exc).split(":", 1)[0]
        raise HTTPException(422, {"message": str(exc), "field": field}) from exc


def _for(who: Principal | None, job: dict[str, Any]) -> dict[str, Any]:
    """A job as ``who`` may see it: another user's shows its state, not what it asked for."""
    if who is None or who.is_admin or job.get("user_id") == who.user_id:
        return job
    hidden: dict[str, Any] = {
        "request": {"kind": job["kind"]},
        "image_ids": [],
        "error": None,
        "owner": None,
    }
    return {**job, **hidden, "redacted": True}


@router.get("/jobs")
def list_jobs(request: Request) -> dict[str, Any]:
    """The latest jobs (another user's without its prompt or results), and the queue: depth
    per queue and per user, the workers and what they run, the latest failures."""
    conn = state(request).store.read()
    who = principal(request)
    summary = queue_summary(conn)
    if who is not None and not who.is_admin:
        summary["failed"] = [f for f in summary["failed"] if _mine(conn, who, f["id"])]
    return {
        "jobs": [
            _for(who, job)
            for r in conn.execute("SELECT id FROM jobs ORDER BY id DESC LIMIT 100")
            if (job := job_row(conn, r[0])) is not None
        ],
        **summary,
    }


def _mine(conn: Any, who: Principal | None, job_id: int) -> bool:
    if who is None or who.is_admin:
        return True
    row = conn.execute("SELECT user_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return row is not None and row[0] == who.user_id


@router.get("/jobs/{job_id}")
def get_job(request: Request, job_id: int) -> dict[str, Any]:
    conn = state(request).store.read()
    job = job_row(conn, job_id)
    if job is None or not _mine(conn, principal(request), job_id):
        raise HTTPException(404, f"no job {job_id}")
    return job


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, job_id: int) -> dict[str, Any]:
    st = state(request)
    if not _mine(st.store.read(), principal(request), job_id):
        raise HTTPException(404, f"no job {job_id}")
    queue, _ = queue_for(st)
    if not queue.cancel(job_id):
        raise HTTPException(409, f"job {job_id} is not queued or running")
    return {"job": job_id, "cancelling": True}
