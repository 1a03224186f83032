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
QUEUES = ("generate", "upscale")
MAINTENANCE_SECONDS = 3.0


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
    for kind in kinds:
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


def defer(url: str, job_id: int, kind: str, model: str | None) -> bool:
    """Put job ``job_id`` in its queue; False when it is already waiting there."""
    procrastinate = _procrastinate()
    ensure_schema(url)
    with _sync_app(url) as app:
        task = app.configure_task(
            name=TASK, queue=queue_for(kind, model), queueing_lock=f"job-{job_id}"
        )
        try:
            task.defer(job_id=job_id)
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
    for job_id, kind, request in catalog.conn.execute(
        "SELECT id, kind, request FROM jobs WHERE status = 'queued'"
    ).fetchall():
        if int(job_id) not in waiting:
            put_back += defer(url, int(job_id), kind, json.loads(request).get("model"))
    return put_back


def run_worker(
    url: str,
    catalog_factory: Callable[[], Catalog],
    run_job: Callable[[int], dict[str, Any]],
    queues: list[str],
    concurrency: int = 1,
    stop: threading.Event | None = None,
    heartbeat: float = 2.0,
    lease: float = 10.0,
) -> None:
    """Take jobs from ``queues`` and run each through ``run_job`` until SIGTERM/SIGINT (or
    ``stop``); every few seconds, recover the jobs of workers that died."""
    procrastinate = _procrastinate()
    ensure_schema(url)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name=TASK, queue="generate")
    def _run(job_id: int) -> None:
        result = run_job(int(job_id))
        log.info("job %s: %s", job_id, result.get("status"))

    done = stop or threading.Event()

    def maintain() -> None:
        catalog = catalog_factory()
        try:
            while not done.wait(MAINTENANCE_SECONDS):
                try:
                    requeue_orphans(url, catalog, lease)
                except Exception:  # the next round tries again
                    log.exception("recovering dead workers' jobs failed")
        finally:
            catalog.close()

    keeper = threading.Thread(target=maintain, name="dreamdepot-recovery", daemon=True)
    keeper.start()
    try:
        with app.open():
            app.run_worker(
                queues=queues,
                concurrency=concurrency,
                wait=True,
                name=f"dreamdepot-worker-{time.time():.0f}",
                update_heartbeat_interval=heartbeat,
                stalled_worker_timeout=lease,
                fetch_job_polling_interval=1.0,
                abort_job_polling_interval=1.0,
            )
    finally:
        done.set()
        keeper.join(MAINTENANCE_SECONDS + 5)
