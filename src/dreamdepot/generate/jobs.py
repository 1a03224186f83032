"""The persistent job queue: requests become rows in ``jobs``; one job at a time per back
end; results are written under ``generated/`` with A1111-compatible ``parameters`` plus a
``dreamdepot`` chunk (request, back end, parent, job), then ingested like any other file.

Exactly once, whatever dies when:

- A job is *claimed* atomically (``queued`` → ``running`` with this process as ``owner``:
  host, pid and the pid's start time), so two processes never run one job, and the owner
  refreshes ``heartbeat_at`` while it runs.
- :meth:`JobQueue.recover` (at server start, in ``dreamdepot jobs``) touches only running
  jobs whose owner is gone — a dead pid on this host, or no heartbeat for
  :data:`STALE_AFTER` seconds from another host; a live CLI job is left alone. A gone job
  with ``cancel_requested`` ends ``cancelled``; otherwise it is queued again (failed after
  :data:`MAX_ATTEMPTS`).
- Results are keyed by job and index: the count is recorded before any file is written, the
  files are named ``{job}-{index}.png`` and written atomically, and a job whose complete set
  of result files already exists is finished from them instead of generating again.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from PIL import Image

from dreamdepot import __version__
from dreamdepot.catalog.db import Catalog
from dreamdepot.catalog.engine import errors as db_errors
from dreamdepot.catalog.paths import from_db
from dreamdepot.config import load_settings
from dreamdepot.generate.base import Backend, BackendError, BackendResult, GenerateRequest
from dreamdepot.generate.scheduling import check_limit, next_priority
from dreamdepot.ingest.metadata.infotext import format_infotext
from dreamdepot.ingest.metadata.model import Generation
from dreamdepot.ingest.pipeline import Indexer, Root
from dreamdepot.media.writers import png_bytes, png_with_texts
from dreamdepot.metrics import JOB_SECONDS

MAX_ATTEMPTS = 2
HEARTBEAT_SECONDS = 2.0
STALE_AFTER = 30.0  # a job from another host with no heartbeat for this long is orphaned


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat): a pid reused by a
    later process has another one. None where /proc is not there or the pid is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


OWNER = f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid()) or time.time()}"


def owner_alive(owner: str | None, heartbeat_at: float | None, now: float) -> bool:
    """Whether the process named by ``owner`` may still be running its job."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname():  # another machine: only its heartbeat tells
        return heartbeat_at is not None and now - heartbeat_at < STALE_AFTER
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # it exists, under another user
        return True
    current = _start_time(pid)
    return current is None or current == started


Notify = Callable[[str, dict[str, Any]], None]


def job_row(conn: sqlite3.Connection, job_id: int) -> dict[str, Any] | None:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        return None
    d = dict(row)
    d["request"] = json.loads(d["request"])
    d["image_ids"] = json.loads(d["image_ids"]) if d["image_ids"] else []
    d["state"] = d["status"]  # the names service mode's workers use
    d["worker"] = d["worker"] or d["owner"]
    return d


def recover_jobs(catalog: Catalog) -> int:
    """Re-queue running jobs whose owner is gone (see the module docstring); returns how many
    jobs it changed. Needs no back end, so ``dreamdepot jobs`` runs it too."""
    now = time.time()
    changed = 0
    rows = catalog.conn.execute(
        "SELECT id, owner, heartbeat_at, attempts, cancel_requested FROM jobs "
        "WHERE status = 'running'"
    ).fetchall()
    for job_id, owner, heartbeat, attempts, cancel in rows:
        if owner == OWNER or owner_alive(owner, heartbeat, now):
            continue
        if cancel:
            status, error = "cancelled", "cancelled; its process ended"
        elif attempts >= MAX_ATTEMPTS:
            status, error = "failed", "its process ended too often"
        else:
            status, error = "queued", "its process ended; queued again"
        same_owner = "owner IS NULL" if owner is None else "owner = ?"
        with catalog.transaction() as conn:
            changed += conn.execute(
                "UPDATE jobs SET status = ?, error = ?, owner = NULL, finished_at = "
                "CASE WHEN ? = 'queued' THEN NULL ELSE ? END WHERE id = ? AND "
                f"status = 'running' AND {same_owner}",
                (status, error, status, now, job_id, *([] if owner is None else [owner])),
            ).rowcount
    return changed


class JobQueue:
    def __init__(
        self,
        library_dir: Path,
        backend: Backend,
        max_batch: int = 8,
        notify: Notify | None = None,
        workers: int | None = 1,
        catalog_where: str | Path | None = None,
    ) -> None:
        self.library_dir = library_dir
        # the catalog its settings name (PostgreSQL), else the library's own SQLite file
        settings = load_settings(library_dir)
        self.catalog_where = catalog_where or settings.database or library_dir / "catalog.sqlite"
        # with workers, a submitted job is also put in the PostgreSQL queue they take from
        # (load_settings refuses job_runner = "workers" without a PostgreSQL catalog)
        self.dispatch_url = settings.database if settings.job_runner == "workers" else None
        self.backend = backend
        self.max_batch = max_batch
        self.notify = notify or (lambda kind, data: None)
        self.workers = workers
        self.max_queued = settings.max_queued_per_user
        # who runs the jobs this queue claims, as job lists show it (a worker sets its own)
        self.worker_name = f"{socket.gethostname()}/{os.getpid()}"
        self._lock = threading.Lock()  # one job at a time on this back end
        # Request threads submit and cancel while the worker thread runs jobs: a sqlite3
        # connection (and its transaction) must never be shared between threads.
        self._local = threading.local()
        self._opened: list[Catalog] = []
        self._opened_lock = threading.Lock()
        self.catalog  # noqa: B018 - open (and migrate) now, in the constructing thread

    @property
    def catalog(self) -> Catalog:
        """This thread's own connection to the catalog."""
        cat: Catalog | None = getattr(self._local, "catalog", None)
        if cat is None:
            cat = Catalog.open(self.catalog_where, library_dir=self.library_dir)
            self._local.catalog = cat
            with self._opened_lock:
                self._opened.append(cat)
        return cat

    @property
    def conn(self) -> sqlite3.Connection:
        return self.catalog.conn

    def close(self) -> None:
        with self._opened_lock:
            for cat in self._opened:
                with contextlib.suppress(*db_errors()):
                    cat.close()
            self._opened.clear()
        self._local = threading.local()

    # -- queueing -------------------------------------------------------------------------

    def submit(
        self, req: GenerateRequest, user_id: int | None = None, background: bool = False
    ) -> int:
        """Validate (ValueError naming the field; QueueFull past the user's limit) and queue
        at the place round-robin gives it (see scheduling.py); returns the job id."""
        req.validate(self.max_batch)
        if (
            req.parent_id is not None
            and not self.conn.execute(
                "SELECT 1 FROM images WHERE id = ?", (req.parent_id,)
            ).fetchone()
        ):
            raise ValueError(f"parent_id: no image {req.parent_id}")
        with self.catalog.transaction() as conn:
            check_limit(conn, user_id, self.max_queued)
            priority = next_priority(conn, user_id, background)
            job_id = conn.execute(
                "INSERT INTO jobs(kind, backend, request, created_at, user_id, priority) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    req.kind,
                    self.backend.name,
                    json.dumps(req.to_dict()),
                    time.time(),
                    user_id,
                    priority,
                ),
            ).fetchone()[0]
        if self.dispatch_url is not None:
            from dreamdepot.generate import dispatch

            dispatch.defer(self.dispatch_url, int(job_id), req.kind, req.model, priority)
        self.notify("job", {"id": job_id, "status": "queued", "progress": 0.0, "user_id": user_id})
        return int(job_id)

    def recover(self) -> int:
        """Re-queue running jobs whose owner is gone; see :func:`recover_jobs`."""
        return recover_jobs(self.catalog)

    def release(self) -> list[int]:
        """Give back the jobs this process is running (a worker told to stop before its job
        finished): they are queued again for another process, and their attempt is not
        counted. Files already written are found by the next attempt (job-and-index keys)."""
        with contextlib.suppress(BackendError):
            self.backend.cancel()
        with self.catalog.transaction() as conn:
            rows = conn.execute(
                "UPDATE jobs SET status = 'queued', owner = NULL, attempts = attempts - 1, "
                "error = 'its worker stopped; queued again' WHERE status = 'running' AND "
                "owner = ? AND cancel_requested = 0 RETURNING id",
                (OWNER,),
            ).fetchall()
            conn.execute(
                "UPDATE jobs SET status = 'cancelled', owner = NULL, finished_at = ? "
                "WHERE status = 'running' AND owner = ?",
                (time.time(), OWNER),
            )
        return [int(r[0]) for r in rows]

    def cancel(self, job_id: int) -> bool:
        with self.catalog.transaction() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return False
            if row[0] == "queued":
                conn.execute(
                    "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ?",
                    (time.time(), job_id),
                )
            elif row[0] == "running":
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            else:
                return False
        if row[0] == "running":
            with contextlib.suppress(BackendError):
                self.backend.cancel()
        self.notify(
            "job", {"id": job_id, "status": "cancelling" if row[0] == "running" else "cancelled"}
        )
        return True

    # -- running ----------------------------------------------------------------------------

    def run_pending(self, stop: threading.Event | None = None) -> int:
        ran = 0
        while stop is None or not stop.is_set():
            row = self.conn.execute(
                "SELECT id FROM jobs WHERE status = 'queued' AND backend = ? "
                "ORDER BY priority DESC, id LIMIT 1",
                (self.backend.name,),
            ).fetchone()
            if row is None:
                break
            self.run(row[0])
            ran += 1
        return ran

    def _claim(self, job_id: int) -> bool:
        """queued → running, owned by this process; False when another process got it."""
        with self.catalog.transaction() as conn:
            return bool(
                conn.execute(
                    "UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1,"
                    " progress = 0, owner = ?, worker = ?, heartbeat_at = ? WHERE id = ? AND "
                    "status = 'queued'",
                    (time.time(), OWNER, self.worker_name, time.time(), job_id),
                ).rowcount
            )

    @contextlib.contextmanager
    def _heartbeat(self, job_id: int) -> Any:
        """Refresh the job's heartbeat from a thread of its own while the body runs, and stop
        the back end when a cancel was asked for from elsewhere (another process, another
        machine: the request only sets ``cancel_requested``)."""
        done = threading.Event()

        def beat() -> None:
            cat = Catalog.open(self.catalog_where, library_dir=self.library_dir)
            cancelled = False
            try:
                while not done.wait(HEARTBEAT_SECONDS):
                    row = None
                    with contextlib.suppress(*db_errors()), cat.transaction() as conn:
                        conn.execute(
                            "UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND owner = ?",
                            (time.time(), job_id, OWNER),
                        )
                        row = conn.execute(
                            "SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)
                        ).fetchone()
                    if row and row[0] and not cancelled:
                        cancelled = True
                        with contextlib.suppress(BackendError):
                            self.backend.cancel()
            finally:
                cat.close()

        thread = threading.Thread(target=beat, name=f"dreamdepot-heartbeat-{job_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(5)

    def run(self, job_id: int) -> dict[str, Any]:
        with self._lock:
            job = job_row(self.conn, job_id)
            if job is None or job["status"] != "queued" or not self._claim(job_id):
                return job_row(self.conn, job_id) or {}
            started = time.monotonic()
            done = self._run_claimed(job_id, job)
            JOB_SECONDS.labels(job["kind"], self.backend.name, done.get("status", "?")).observe(
                time.monotonic() - started
            )
            return done

    def _run_claimed(self, job_id: int, job: dict[str, Any]) -> dict[str, Any]:
        req = GenerateRequest(**job["request"])
        self.notify("job", {"id": job_id, "status": "running", "progress": 0.0})

        def on_progress(value: float) -> None:
            self.notify("job", {"id": job_id, "status": "running", "progress": value})

        seconds = 0.0
        try:
            with self._heartbeat(job_id):
                image_ids = self._stored_results(job_id, req)
                if image_ids is None:  # nothing stored by an earlier attempt: generate
                    result = self._generate(req, on_progress)
                    seconds = result.seconds
                    if self._cancel_requested(job_id):
                        self._finish(job_id, "cancelled", "cancelled while running")
                        return job_row(self.conn, job_id) or {}
                    image_ids = self._store(job_id, req, result)
        except BackendError as exc:
            status = "cancelled" if self._cancel_requested(job_id) else "failed"
            self._finish(job_id, status, str(exc))
            return job_row(self.conn, job_id) or {}
        except Exception as exc:  # a failed job, never a crashed worker
            self._finish(job_id, "failed", f"{type(exc).__name__}: {exc}")
            return job_row(self.conn, job_id) or {}
        with self.catalog.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'done', progress = 1, finished_at = ?, "
                "image_ids = ?, backend_seconds = coalesce(backend_seconds, ?), "
                "owner = NULL WHERE id = ? AND owner = ?",  # not if it was given back
                (time.time(), json.dumps(image_ids), seconds, job_id, OWNER),
            )
        self.notify(
            "job", {"id": job_id, "status": "done", "progress": 1.0, "image_ids": image_ids}
        )
        return job_row(self.conn, job_id) or {}

    def _cancel_requested(self, job_id: int) -> bool:
        row = self.conn.execute(
            "SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return bool(row and row[0])

    def _finish(self, job_id: int, status: str, error: str) -> None:
        with self.catalog.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ?, owner = NULL WHERE id = ?",
                (status, error, time.time(), job_id),
            )
        self.notify("job", {"id": job_id, "status": status, "error": error})

    def _source_bytes(self, image_id: int) -> bytes:
        row = self.conn.execute(
            "SELECT r.path, f.rel_path FROM files f JOIN roots r ON r.id = f.root_id WHERE "
            "f.image_id = ? AND f.state = 'present' ORDER BY f.id LIMIT 1",
            (image_id,),
        ).fetchone()
        if row is None:
            raise BackendError(f"image {image_id} has no file on disk to work from")
        return (Path(row[0]) / from_db(row[1])).read_bytes()

    def _generate(
        self, req: GenerateRequest, on_progress: Callable[[float], None]
    ) -> BackendResult:
        if req.kind == "txt2img":
            return self.backend.txt2img(req, on_progress)
        source = self._source_bytes(req.parent_id or 0)
        if req.kind == "img2img":
            return self.backend.img2img(req, source, on_progress)
        return self.backend.upscale(req, source)

    # -- writing and ingesting ----------------------------------------------------------------

    def _result_paths(self, job_id: int, count: int) -> list[str]:
        """Where result ``i`` of a job lives, relative to ``generated/``: fixed by the job's
        creation date and the index, so every attempt writes the same files."""
        row = self.conn.execute("SELECT created_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
        day = date.fromtimestamp(row[0] if row else time.time()).isoformat()
        return [f"{day}/{job_id:06d}-{i}.png" for i in range(count)]

    def _stored_results(self, job_id: int, req: GenerateRequest) -> list[int] | None:
        """The image ids of a complete set of results an earlier attempt wrote (indexed and
        linked now if the attempt died before), or None when there is none."""
        row = self.conn.execute("SELECT result_count FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or not row[0]:
            return None
        rel_paths = self._result_paths(job_id, int(row[0]))
        folder = self.library_dir / "generated"
        if not all((folder / rel).is_file() for rel in rel_paths):
            return None
        return self._link(job_id, req, rel_paths)

    def _store(self, job_id: int, req: GenerateRequest, result: BackendResult) -> list[int]:
        if not result.images:
            raise BackendError("the back end returned no images")
        with self.catalog.transaction() as conn:  # before any file: recovery can tell a set
            conn.execute(
                "UPDATE jobs SET result_count = ?, backend_seconds = ? WHERE id = ?",
                (len(result.images), result.seconds, job_id),
            )
        rel_paths = self._result_paths(job_id, len(result.images))
        per_image = result.seconds / max(1, len(result.images))
        for i, img in enumerate(result.images):
            with Image.open(io.BytesIO(img.data)) as im:  # the header is enough: no decode
                size, is_png = im.size, im.format == "PNG"
            seed = img.seed if img.seed is not None else (req.seed if req.seed >= 0 else None)
            g = Generation(
                generator="dreamdepot", prompt=req.prompt or None,
                negative_prompt=req.negative_prompt or None, steps=req.steps,
                sampler=req.sampler, scheduler=req.scheduler, cfg_scale=req.cfg_scale, seed=seed,
                width=size[0], height=size[1], model=result.info.get("model") or req.model,
                denoise=req.denoise if req.kind == "img2img" else None,
                generator_version=f"dreamdepot {__version__} via {self.backend.name}",
            )  # fmt: skip
            g.params["Generation time"] = f"{per_image:.2f}"
            if req.kind == "upscale":  # what the workflow did, read back from the output
                g.params["Postprocess upscale by"] = self._achieved_scale(req, size[0])
                if result.info.get("upscaler"):
                    g.params["Postprocess upscaler"] = str(result.info["upscaler"])
            texts = {
                "parameters": format_infotext(g),
                "dreamdepot": json.dumps(
                    {
                        "job": job_id,
                        "index": i,
                        "backend": self.backend.name,
                        "request": req.to_dict(),
                        "parent_id": req.parent_id,
                        "cache_key": req.cache_key,
                        "seed": seed,
                    }
                ),
            }
            # a PNG from the back end keeps its pixels and its own chunks (a ComfyUI workflow
            # stays loadable); anything else is encoded once
            encoded = png_with_texts(img.data, texts) if is_png else None
            if encoded is None:
                with Image.open(io.BytesIO(img.data)) as im:
                    encoded = png_bytes(im.convert("RGBA" if "A" in im.mode else "RGB"), texts)
            target = self.library_dir / "generated" / rel_paths[i]
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            tmp.write_bytes(encoded)
            tmp.replace(target)  # atomic: a file under its final name is complete
        return self._link(job_id, req, rel_paths)

    def _link(self, job_id: int, req: GenerateRequest, rel_paths: list[str]) -> list[int]:
        """Index the result files and key their images by (job, index), with lineage. With
        an object store, the files go there first (under ``generated/``: every server can
        then serve them, wherever the worker ran) and are indexed from the local copy."""
        from dreamdepot.storage import BlobError, S3Blobs, open_store

        blobs = open_store(load_settings(self.library_dir), self.library_dir)
        local = self.library_dir / "generated"
        if isinstance(blobs, S3Blobs):
            from dreamdepot.uploads import ensure_root

            for rel in rel_paths:
                try:
                    blobs.put_file(f"generated/{rel}", local / rel, "image/png")
                except BlobError as exc:
                    raise BackendError(f"storing the result failed: {exc}") from exc
            root = ensure_root(self.catalog, blobs.root_url("generated"))
        else:
            root = self._generated_root()
        indexer = Indexer(self.catalog, workers=1)
        _, probes = indexer.index_paths(
            root, rel_paths, read_from=str(local) if isinstance(blobs, S3Blobs) else None
        )
        failed = [p.rel_path for p in probes if p.error]
        if failed:
            raise BackendError(f"generated files could not be indexed: {failed}")
        ids = []
        with self.catalog.transaction() as conn:
            conn.execute("UPDATE images SET job_index = NULL WHERE job_id = ?", (job_id,))
            for index, rel in enumerate(rel_paths):
                row = conn.execute(
                    "SELECT image_id FROM files WHERE root_id = ? AND rel_path = ?",
                    (root.id, rel),
                ).fetchone()
                conn.execute(
                    "UPDATE images SET parent_id = ?, job_id = ?, job_index = ?, owner_id = "
                    "(SELECT user_id FROM jobs WHERE id = ?) WHERE id = ?",
                    (req.parent_id, job_id, index, job_id, row[0]),
                )
                ids.append(int(row[0]))
        return ids

    def _achieved_scale(self, req: GenerateRequest, out_width: int) -> str:
        """The factor from source to output width (a template or upscaler may not do what
        was asked: a 4x model with no resize gives 4, whatever ``scale`` said)."""
        row = self.conn.execute(
            "SELECT width FROM images WHERE id = ?", (req.parent_id,)
        ).fetchone()
        if not row or not row[0]:
            return f"{req.scale:g}"
        return f"{out_width / row[0]:.4g}"

    def _generated_root(self) -> Root:
        path = str((self.library_dir / "generated").resolve())
        with self.catalog.transaction() as conn:
            conn.execute(
                "INSERT INTO roots(path, watch, added_at) VALUES (?, 1, ?) "
                "ON CONFLICT(path) DO NOTHING",
                (path, time.time()),
            )
        row = self.conn.execute("SELECT id FROM roots WHERE path = ?", (path,)).fetchone()
        return Root(row[0], path)
