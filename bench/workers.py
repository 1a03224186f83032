"""Workers benchmark (issue #17): `python bench/workers.py` prints a table.

Real `dreamdepot worker` processes on a real PostgreSQL 16 (pgserver, data under
bench/out/pgdata) take jobs from the procrastinate queue; a real `dreamdepot serve` relays
their job events to its `/api/events` stream. The back end is the A1111 stand-in of the
tests (tests/fake_a1111.py, run in this process) with no sampling delay, asked for 1024x1024
outputs, so what is measured is the queue's part of a job:

- submit -> start: from the job's row being written (``created_at``) to a worker claiming
  it (``started_at``), with every worker idle (jobs submitted in rounds of one per worker).
- stored -> visible: from the worker's final write (``finished_at``: images stored and
  indexed) to the ``done`` event arriving on the server's event stream.
- throughput: N tiny (64x64) jobs queued at once, then 4 workers started; jobs per second
  from the first start to the last finish.
- recovery: a worker SIGKILLed while it runs a long job, a second worker idle: seconds
  from the kill to the second worker starting the job (target: lease + 5 s = 15 s).

Targets (issue #17): p95 <= 50 ms each way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402

import fake_a1111  # noqa: E402
from _pg import fresh_database  # noqa: E402
from _table import print_table  # noqa: E402
from dreamdepot.catalog.db import Catalog  # noqa: E402
from dreamdepot.generate.base import GenerateRequest  # noqa: E402
from dreamdepot.generate.dispatch import Workers  # noqa: E402
from dreamdepot.generate.jobs import JobQueue  # noqa: E402
from test_generate import FakeA1111  # noqa: E402

OUT = ROOT / "bench" / "out"
DREAMDEPOT = [sys.executable, "-m", "dreamdepot.cli"]
LEASE = 10.0  # run_worker's procrastinate stalled-worker timeout


def database() -> str:
    return fresh_database("dd_workers")


def _env(url: str) -> dict[str, str]:
    env = dict(os.environ, DREAMDEPOT_DATABASE_URL=url, DREAMDEPOT_AUTOTAG="")
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def start_worker(lib: Path, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*DREAMDEPOT, "--library", str(lib), "worker"],
        env=_env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(60)


@contextlib.contextmanager
def serving(lib: Path, url: str) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*DREAMDEPOT, "--library", str(lib), "serve", "--port", str(port), "--no-browser"],
        env=_env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + "/api/stats", timeout=2).status_code == 200:
                break
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.2)
    try:
        yield base
    finally:
        stop(proc)


class DoneEvents:
    """When each job's ``done`` event reached the server's event stream (wall clock)."""

    def __init__(self, base: str) -> None:
        self.seen: dict[int, float] = {}
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._listen, args=(base,), daemon=True)
        self.thread.start()
        self.ready.wait(30)

    def _listen(self, base: str) -> None:
        with (
            contextlib.suppress(httpx.HTTPError),  # the server stopped
            httpx.stream("GET", base + "/api/events", timeout=None) as stream,
        ):
            kind = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                    self.ready.set()
                elif line.startswith("data: ") and kind == "job":
                    data = json.loads(line[6:])
                    if data.get("status") == "done":
                        self.seen.setdefault(int(data["id"]), time.time())


def submit(queue: JobQueue, side: int, steps: int = 1) -> int:
    req = GenerateRequest(prompt=f"a lighthouse {time.time_ns()}", width=side, height=side,
                          steps=steps)  # fmt: skip
    return queue.submit(req)


def rows_of(cat: Catalog, ids: list[int]) -> list[Any]:
    marks = ",".join("?" * len(ids))
    return cat.conn.execute(
        f"SELECT id, status, created_at, started_at, finished_at FROM jobs WHERE id IN ({marks})",
        ids,
    ).fetchall()


def wait_done(cat: Catalog, ids: list[int], timeout: float = 600) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        rows = rows_of(cat, ids)
        if all(r[1] in ("done", "failed", "cancelled") for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise RuntimeError(f"jobs not done: {[tuple(r) for r in rows]}")
        time.sleep(0.05)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def overhead(lib: Path, url: str, base: str, workers: int, rounds: int) -> dict[str, Any]:
    procs = [start_worker(lib, url) for _ in range(workers)]
    cat = Catalog.open(url, library_dir=lib)
    queue = JobQueue(lib, Workers(), catalog_where=url)
    events = DoneEvents(base)
    try:
        wait_done(cat, [submit(queue, 64) for _ in range(workers * 2)])  # warm: all loaded
        time.sleep(1.0)
        start_ms: list[float] = []
        visible_ms: list[float] = []
        for _ in range(rounds):
            ids = [submit(queue, 1024) for _ in range(workers)]
            rows = wait_done(cat, ids)
            deadline = time.monotonic() + 10
            while not all(i in events.seen for i in ids) and time.monotonic() < deadline:
                time.sleep(0.01)
            for job_id, status, created, started, finished in rows:
                assert status == "done", (job_id, status)
                start_ms.append((started - created) * 1000)
                if job_id in events.seen:
                    visible_ms.append((events.seen[job_id] - finished) * 1000)
            time.sleep(0.2)  # every worker idle again before the next round
    finally:
        for p in procs:
            stop(p)
        queue.close()
        cat.close()
    return {"start": start_ms, "visible": visible_ms}


def throughput(lib: Path, url: str, jobs: int, workers: int) -> tuple[float, int]:
    cat = Catalog.open(url, library_dir=lib)
    queue = JobQueue(lib, Workers(), catalog_where=url)
    try:
        ids = [submit(queue, 64) for _ in range(jobs)]
        procs = [start_worker(lib, url) for _ in range(workers)]
        try:
            rows = wait_done(cat, ids, timeout=1800)
        finally:
            for p in procs:
                stop(p)
    finally:
        queue.close()
        cat.close()
    done = [r for r in rows if r[1] == "done"]
    first = min(r[3] for r in done)
    last = max(r[4] for r in done)
    return len(done) / (last - first), len(done)


def recovery(lib: Path, url: str) -> float:
    cat = Catalog.open(url, library_dir=lib)
    queue = JobQueue(lib, Workers(), catalog_where=url)
    victim = start_worker(lib, url)
    spare: subprocess.Popen[bytes] | None = None
    try:
        fake_a1111.STEP_SECONDS = 0.05
        job = submit(queue, 64, steps=400)  # 20 s at 0.05 s a step
        while rows_of(cat, [job])[0][1] != "running":
            time.sleep(0.05)
        spare = start_worker(lib, url)
        time.sleep(4.0)  # the spare is up and idle
        first = rows_of(cat, [job])[0][3]
        killed = time.time()
        stop(victim, signal.SIGKILL)
        while True:
            row = rows_of(cat, [job])[0]
            if row[1] == "running" and row[3] != first:
                return row[3] - killed
            if time.time() - killed > 120:
                raise RuntimeError("the killed worker's job was not taken again")
            time.sleep(0.05)
    finally:
        fake_a1111.STEP_SECONDS = 0.0
        stop(victim, signal.SIGKILL)
        if spare is not None:
            stop(spare, signal.SIGKILL)
        queue.close()
        cat.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="rounds per worker count")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs for the throughput row")
    args = parser.parse_args()
    fake_a1111.STEP_SECONDS = 0.0
    OUT.mkdir(parents=True, exist_ok=True)
    rows: list[list[object]] = []
    with FakeA1111() as fake:
        url = database()
        lib = OUT / "workers-library"
        if lib.exists():
            import shutil

            shutil.rmtree(lib)
        lib.mkdir(parents=True)
        (lib / "dreamdepot.toml").write_text(
            f'job_runner = "workers"\nbackend = "a1111"\na1111_url = "{fake.url}"\n'
            "max_queued_per_user = 0\n",
            encoding="utf-8",
        )
        os.environ["DREAMDEPOT_DATABASE_URL"] = url
        with serving(lib, url) as base:
            for n in (1, 2, 4):
                m = overhead(lib, url, base, n, args.rounds)
                for what, key in (("submit -> start", "start"), ("stored -> visible", "visible")):
                    v = m[key]
                    rows.append([f"{what}, {n} worker(s), 1024x1024", len(v),
                                 f"{statistics.median(v):.1f}", f"{pct(v, 0.95):.1f}",
                                 "p95 <= 50 ms"])  # fmt: skip
        per_s, done = throughput(lib, url, args.jobs, 4)
        rows.append([f"throughput, {done} jobs of 64x64, 4 workers", done, f"{per_s:.1f} jobs/s",
                     "", ""])  # fmt: skip
        seconds = recovery(lib, url)
        rows.append(["recovery of a SIGKILLed worker's job", 1, f"{seconds:.1f} s", "",
                     f"<= lease + 5 s = {LEASE + 5:.0f} s"])  # fmt: skip
    print_table(["measure", "n", "p50 (ms)", "p95 (ms)", "target"], rows)


if __name__ == "__main__":
    main()
