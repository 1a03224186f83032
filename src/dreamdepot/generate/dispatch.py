"""Jobs for workers on other machines: a procrastinate queue on the catalog's PostgreSQL.

With ``job_runner = "workers"`` (a PostgreSQL catalog), the process that takes a request
writes the job's row (the record: request, state, progress, owner, heartbeat, results) and
defers a procrastinate job naming it; ``dreamdepot worker`` processes, each with its back
end loaded once, take those jobs (``SELECT … FOR UPDATE SKIP LOCKED``, woken by
LISTEN/NOTIFY) and run them through :class:`~dreamdepot.generate.jobs.JobQueue`, whose
claim, heartbeat and job-and-index keyed results make a run exactly once whoever dies when.

Queues name what a job needs: ``generate`` / ``upscale`` for any model, and
``generate:MODEL`` when a request names its checkpoint (the model's one identity, as stats
and ``model:`` show it). A worker listens only on the queues of the models it has, so a
worker without the requested model never takes the job, and a job for the model a worker
has loaded is never sent to one that would have to load another.

Recovery (:func:`requeue_orphans`, run by every worker every few seconds): a job whose
worker died is re-queued once its owner is gone — a dead pid on the same host at once,
another host's after its heartbeat lapses — and its procrastinate job, left ``doing`` by the
dead worker, is marked failed; a queued row that has no waiting procrastinate job (its
process died between the two writes) gets one. Each procrastinate job
carries a queueing lock per job id, so a job is never waiting twice.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from dreamdepot.catalog.db import Catalog
from dreamdepot.errors import DreamDepotError
from dreamdepot.generate.base import BackendError
from dreamdepot.ingest.metadata.model import model_name

log = logging.getLogger(__name__)

TASK = "dreamdepot.run_job"
EMBED_TASK = "dreamdepot.embed_pending"  # prompt and image vectors for what was indexed
QUEUES = ("generate", "upscale", "embed")
JOB_QUEUES = ("generate", "upscale")  # the kinds that are rows in ``jobs``
MAINTENANCE_SECONDS = 3.0
CHANNEL = "dreamdepot_jobs"  # NOTIFY channel of job events, relayed to servers' SSE streams
PROGRESS_EVERY = 0.25  # seconds between a running job's progress writes


def _procrastinate() -> Any:
    try:
        import procrastinate
    except ImportError as exc:
        raise DreamDepotError(
            "workers need procrastinate: pip install 'dreamdepot[postgresql]'"
        ) from exc
    return procrastinate


def queue_for(kind: str, model: str | None) -> str:
    """The queue a job of ``kind`` for ``model`` waits in (an A1111 title's hash dropped).

    >>> queue_for("txt2img", "models/SDXL/sd_xl_base_1.0.safetensors")
    'generate:sd_xl_base_1.0'
    >>> queue_for("img2img", "sd_xl_base_1.0.safetensors [31e35c80fc]")
    'generate:sd_xl_base_1.0'
    >>> queue_for("upscale", None)
    'upscale'
    """
    base = "upscale" if kind == "upscale" else "generate"
    name = model_name(_TITLE_HASH.sub("", model)) if model else None
    return f"{base}:{name}" if name else base


_TITLE_HASH = re.compile(r"\s*\[[0-9a-fA-F]{6,}\]\s*$")


class Workers:
    """The back end as a process that only queues sees it (``job_runner = "workers"``): the
    jobs it takes are run by `dreamdepot worker` processes, which load the real back end."""

    name = "workers"

    def _elsewhere(self, *args: Any, **kwargs: Any) -> Any:
        raise BackendError("jobs run on `dreamdepot worker` processes, not here")

    txt2img = img2img = upscale = progress = _elsewhere

    def models(self) -> list[str]:
        return []

    def cancel(self) -> None:
        """Nothing to stop here: the job's ``cancel_requested`` reaches its worker."""


def queues_for_models(models: list[str], kinds: tuple[str, ...] = QUEUES) -> list[str]:
    """Every queue a worker with ``models`` serves (the any-model queues included)."""
    out = list(kinds)
    for kind in (k for k in kinds if k in JOB_QUEUES):
        for m in models:
            q = queue_for("upscale" if kind == "upscale" else "txt2img", m)
            if q not in out:
                out.append(q)
    return out


@contextlib.contextmanager
def _sync_app(url: str) -> Iterator[Any]:
    procrastinate = _procrastinate()
    app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=url))
    with app.open():
        yield app


_schema_ready: set[str] = set()


def ensure_schema(url: str) -> None:
    """procrastinate's tables in the catalog's database (made once)."""
    import psycopg

    if url in _schema_ready:
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7266401)")
        try:
            exists = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if exists and exists[0] is None:
                with _sync_app(url) as app:
                    app.schema_manager.apply_schema()
        finally:
            conn.execute("SELECT pg_advisory_unlock(7266401)")
    _schema_ready.add(url)


def defer(url: str, job_id: int, kind: str, model: str | None, priority: int = 0) -> bool:
    """Put job ``job_id`` in its queue at ``priority`` (its row's: see scheduling.py);
    False when it is already waiting there."""
    procrastinate = _procrastinate()
    ensure_schema(url)
    with _sync_app(url) as app:
        task = app.configure_task(
            name=TASK,
            queue=queue_for(kind, model),
            queueing_lock=f"job-{job_id}",
            priority=priority,
        )
        try:
            task.defer(job_id=job_id)
        except procrastinate.exceptions.AlreadyEnqueued:
            return False
    return True


def defer_library_task(url: str, name: str, queue: str) -> bool:
    """Ask the workers on ``queue`` to run library task ``name`` (embedding what is new);
    False when one is already waiting (they coalesce: one run covers every arrival)."""
    procrastinate = _procrastinate()
    ensure_schema(url)
    with _sync_app(url) as app:
        try:
            app.configure_task(name=name, queue=queue, queueing_lock=name).defer()
        except procrastinate.exceptions.AlreadyEnqueued:
            return False
    return True


def requeue_orphans(url: str, catalog: Catalog, lease: float | None = None) -> int:
    """Re-queue the jobs of dead workers and give every queued job a waiting procrastinate
    job (see the module docstring); how many jobs were put back in a queue."""
    import json

    from dreamdepot.generate.jobs import STALE_AFTER, recover_jobs

    recover_jobs(catalog)
    lease = STALE_AFTER if lease is None else lease
    # procrastinate jobs left "doing" by a worker whose heartbeat stopped: ended as failed
    # (through procrastinate's own function), so the sweep below queues them again
    for (stalled,) in catalog.conn.execute(
        "SELECT j.id FROM procrastinate_jobs j LEFT JOIN procrastinate_workers w "
        "ON w.id = j.worker_id WHERE j.status = 'doing' AND j.task_name = ? AND "
        "(w.id IS NULL OR w.last_heartbeat < now() - make_interval(secs => ?))",
        (TASK, float(lease)),
    ).fetchall():
        catalog.conn.execute(
            "SELECT procrastinate_finish_job_v1(?, 'failed'::procrastinate_job_status, false)",
            (int(stalled),),
        )
    waiting = {
        int(r[0])
        for r in catalog.conn.execute(
            "SELECT (args->>'job_id')::bigint FROM procrastinate_jobs "
            "WHERE task_name = ? AND status IN ('todo', 'doing')",
            (TASK,),
        )
    }
    put_back = 0
    for job_id, kind, request, priority in catalog.conn.execute(
        "SELECT id, kind, request, priority FROM jobs WHERE status = 'queued'"
    ).fetchall():
        if int(job_id) not in waiting:
            model = json.loads(request).get("model")
            put_back += defer(url, int(job_id), kind, model, int(priority))
    return put_back


# -- what workers have, and what they are doing -----------------------------------------------


def register(
    catalog: Catalog,
    name: str,
    backend: str,
    models: list[str],
    queues: list[str],
    device: tuple[str | None, int | None] = (None, None),
) -> None:
    """Advertise a worker: its back end, models, device and memory, and its queues."""
    import json
    import os
    import socket

    now = time.time()
    with catalog.transaction() as conn:
        conn.execute(
            "INSERT INTO workers(name, host, pid, backend, models, device, vram_bytes, queues,"
            " started_at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO "
            "UPDATE SET backend = excluded.backend, models = excluded.models, device = "
            "excluded.device, vram_bytes = excluded.vram_bytes, queues = excluded.queues, "
            "started_at = excluded.started_at, seen_at = excluded.seen_at",
            (
                name,
                socket.gethostname(),
                os.getpid(),
                backend,
                json.dumps(models),
                device[0],
                device[1],
                json.dumps(queues),
                now,
                now,
            ),
        )


def seen(catalog: Catalog, name: str) -> None:
    with catalog.transaction() as conn:
        conn.execute("UPDATE workers SET seen_at = ? WHERE name = ?", (time.time(), name))


def unregister(catalog: Catalog, name: str) -> None:
    with catalog.transaction() as conn:
        conn.execute("DELETE FROM workers WHERE name = ?", (name,))


class Publisher:
    """A worker's job events, published through the database: a running job's progress is
    kept on its row (at most every :data:`PROGRESS_EVERY` s) and every event goes out on
    ``NOTIFY dreamdepot_jobs``, which each server relays to its ``/api/events`` stream —
    so progress shows wherever the request came from, whichever worker runs it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._lock = threading.Lock()
        self._last: dict[int, float] = {}

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        import json

        import psycopg

        job_id = int(data.get("id") or 0)
        running = data.get("status") == "running" and data.get("progress") is not None
        now = time.monotonic()
        if running and now - self._last.get(job_id, 0.0) < PROGRESS_EVERY:
            return
        self._last[job_id] = now
        with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.url, autocommit=True)
                if running:
                    self._conn.execute(
                        "UPDATE jobs SET progress = %s WHERE id = %s AND status = 'running'",
                        (float(data["progress"]), job_id),
                    )
                payload = json.dumps({"kind": kind, "data": data}, default=str)
                self._conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload[:7900]))
            except psycopg.Error:  # progress is advisory: the job's own writes are not
                log.warning("could not publish job %s's progress", job_id, exc_info=True)
                self._conn = None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()


def relay(url: str, publish: Callable[[str, dict[str, Any]], None], stop: threading.Event) -> None:
    """Forward the job events workers NOTIFY to ``publish`` (the server's event bus) until
    ``stop``; reconnects after a lost connection."""
    import json

    import psycopg

    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                while not stop.is_set():
                    for note in conn.notifies(timeout=1.0):
                        with contextlib.suppress(ValueError, KeyError, TypeError):
                            message = json.loads(note.payload)
                            publish(str(message["kind"]), dict(message["data"]))
        except psycopg.Error:
            log.warning("job event relay lost its connection; reconnecting", exc_info=True)
            stop.wait(1.0)


def run_worker(
    url: str,
    catalog_factory: Callable[[], Catalog],
    run_job: Callable[[int], dict[str, Any]],
    queues: list[str],
    concurrency: int = 1,
    stop: threading.Event | None = None,
    heartbeat: float = 2.0,
    lease: float = 10.0,
    name: str | None = None,
    shutdown_timeout: float = 15.0,
    on_stopped: Callable[[], None] | None = None,
    library_tasks: dict[str, Callable[[], int]] | None = None,
) -> None:
    """Take jobs from ``queues`` and run each through ``run_job`` until SIGTERM/SIGINT (or
    ``stop``); every few seconds, say this worker is alive (``name`` in ``workers``) and
    recover the jobs of workers that died. On SIGTERM a running job gets
    ``shutdown_timeout`` seconds to finish; then procrastinate abandons it and
    ``on_stopped`` runs, while the job's thread may still be inside the back end (a sync
    task's thread cannot be stopped: the caller gives the job back and exits)."""
    procrastinate = _procrastinate()
    ensure_schema(url)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name=TASK, queue="generate")
    def _run(job_id: int) -> None:
        result = run_job(int(job_id))
        log.info("job %s: %s", job_id, result.get("status"))

    for task_name, work in (library_tasks or {}).items():

        def library_task(work: Callable[[], int] = work, task_name: str = task_name) -> None:
            log.info("%s: %s done", task_name, work())

        app.task(name=task_name, queue="embed")(library_task)

    done = stop or threading.Event()

    def maintain() -> None:
        catalog = catalog_factory()
        try:
            while not done.wait(MAINTENANCE_SECONDS):
                try:
                    if name:
                        seen(catalog, name)
                    requeue_orphans(url, catalog, lease)
                except Exception:  # the next round tries again
                    log.exception("recovering dead workers' jobs failed")
        finally:
            catalog.close()

    keeper = threading.Thread(target=maintain, name="dreamdepot-recovery", daemon=True)
    keeper.start()

    async def serve() -> None:
        import asyncio
        import signal

        loop = asyncio.get_running_loop()
        async with app.open_async():
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=queues,
                    concurrency=concurrency,
                    wait=True,
                    name=name or f"dreamdepot-worker-{time.time():.0f}",
                    shutdown_graceful_timeout=shutdown_timeout,
                    install_signal_handlers=False,
                    update_heartbeat_interval=heartbeat,
                    stalled_worker_timeout=lease,
                    fetch_job_polling_interval=1.0,
                    abort_job_polling_interval=1.0,
                )
            )
            # procrastinate stops taking jobs when its task is cancelled and waits for the
            # running one; a sync job's thread cannot be interrupted, so past the timeout
            # on_stopped runs from a timer (the caller gives the job back and exits)
            deadline: list[threading.Timer] = []

            def on_signal() -> None:
                if not deadline and on_stopped is not None:
                    deadline.append(threading.Timer(shutdown_timeout + 1.0, on_stopped))
                    deadline[0].daemon = True
                    deadline[0].start()
                worker.cancel()

            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, on_signal)
            watch_stop = loop.run_in_executor(None, done.wait)
            try:
                finished, _ = await asyncio.wait(
                    {worker, watch_stop}, return_when=asyncio.FIRST_COMPLETED
                )
                if worker not in finished:  # ``stop`` was set by the caller
                    worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            finally:
                for timer in deadline:
                    timer.cancel()
                done.set()
                keeper.join(MAINTENANCE_SECONDS + 5)
                if on_stopped is not None:
                    on_stopped()

    import asyncio

    asyncio.run(serve())
