"""Workers on other machines (issue #17), on a real PostgreSQL: real `dreamdepot worker`
processes take jobs from the shared queue, two at once, one of them SIGKILLed at random
points and started again: every job completes exactly once (its images all there, none
twice) and the catalog stays sound; a worker without the requested model never takes the
job; a job cancelled while queued never produces an image, one cancelled while it runs on a
worker stops there; users take turns and interactive jobs go before background ones; a
worker advertises itself, its progress reaches a server's event stream, and on SIGTERM it
gives its job back and exits."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import catalog, integrity_problems
from test_generate import FakeA1111

pytestmark = pytest.mark.engine_independent("starts its own PostgreSQL catalog")
DREAMDEPOT = [sys.executable, "-m", "dreamdepot.cli"]


@pytest.fixture
def service(tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A library whose catalog is PostgreSQL and whose jobs are run by workers, and the
    A1111 stand-in the workers generate with."""
    import fake_a1111

    monkeypatch.setattr(fake_a1111, "STEP_SECONDS", 0.01)
    lib = tmp_path / "library"
    lib.mkdir()
    with FakeA1111() as fake:
        (lib / "dreamdepot.toml").write_text(
            f'database = "{postgres_url}"\njob_runner = "workers"\n'
            f'backend = "a1111"\na1111_url = "{fake.url}"\n',
            encoding="utf-8",
        )
        monkeypatch.setenv("DREAMDEPOT_DATABASE_URL", postgres_url)
        yield lib, fake


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    env["DREAMDEPOT_AUTOTAG"] = ""
    return env


def _worker(lib: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*DREAMDEPOT, "--library", str(lib), "worker", *args],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _submit(lib: Path, prompt: str, **fields: Any) -> int:
    from dreamdepot.generate.base import GenerateRequest
    from dreamdepot.generate.dispatch import Workers
    from dreamdepot.generate.jobs import JobQueue

    queue = JobQueue(lib, Workers())
    try:
        req = GenerateRequest(prompt=prompt, width=64, height=64, **fields)
        return queue.submit(req)
    finally:
        queue.close()


def _statuses(lib: Path) -> dict[int, str]:
    conn = catalog(lib)
    try:
        return {int(r[0]): r[1] for r in conn.execute("SELECT id, status FROM jobs")}
    finally:
        conn.close()


def _running_on(lib: Path, pid: int) -> set[int]:
    """The jobs process ``pid`` is running now."""
    conn = catalog(lib)
    try:
        rows = conn.execute("SELECT id, owner FROM jobs WHERE status = 'running'").fetchall()
        return {int(r[0]) for r in rows if f":{pid}:" in str(r[1])}
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(30)


def test_two_workers_killed_at_random_complete_every_job_exactly_once(service: Any) -> None:
    lib, _ = service
    rng = random.Random(17)
    jobs = [_submit(lib, f"a lighthouse, take {k}", n=2, steps=80) for k in range(12)]
    steady = _worker(lib)
    victim = _worker(lib)
    kills, killed = 0, set[int]()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            states = _statuses(lib)
            if all(states[j] in ("done", "failed", "cancelled") for j in jobs):
                break
            time.sleep(rng.uniform(0.05, 0.5))
            # the victim mid-job, each kill on another job (a job whose process dies twice
            # is failed on purpose: MAX_ATTEMPTS)
            doomed = _running_on(lib, victim.pid) - killed
            if kills < 4 and doomed:
                killed |= doomed
                _stop(victim, signal.SIGKILL)
                kills += 1
                victim = _worker(lib)
        states = _statuses(lib)
    finally:
        _stop(steady)
        _stop(victim)
    assert all(states[j] == "done" for j in jobs), states
    assert kills >= 3, f"only {kills} kills landed mid-job"
    conn = catalog(lib)
    for j in jobs:
        rows = conn.execute(
            "SELECT job_index FROM images WHERE job_id = ? ORDER BY job_index", (j,)
        ).fetchall()
        assert [r[0] for r in rows] == [0, 1], (j, [tuple(r) for r in rows])
    files = conn.execute("SELECT count(*), count(DISTINCT rel_path) FROM files").fetchone()
    assert tuple(files) == (24, 24)
    conn.close()
    assert integrity_problems(lib) == []


def test_the_api_queues_for_workers_and_a_bad_setting_is_refused(
    service: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from conftest import Cli
    from server import Server

    lib, _ = service
    with Server(lib) as srv:
        assert httpx.get(srv.base + "/api/backend").json()["backend"] == "workers"
        job = httpx.post(srv.base + "/api/generate", json={"prompt": "from the web",
                         "width": 64, "height": 64}).json()["job"]  # fmt: skip
        worker = _worker(lib)
        try:
            deadline = time.monotonic() + 60
            while httpx.get(f"{srv.base}/api/jobs/{job}").json()["status"] != "done":
                assert time.monotonic() < deadline
                time.sleep(0.2)
        finally:
            _stop(worker)
    monkeypatch.delenv("DREAMDEPOT_DATABASE_URL")  # an embedded library asking for workers
    embedded = Cli(tmp_path / "embedded")
    embedded("stats")
    (tmp_path / "embedded" / "dreamdepot.toml").write_text('job_runner = "workers"\n')
    assert "needs a PostgreSQL catalog" in embedded("stats", expect=1).stderr


def test_models_route_jobs_and_cancels_hold(service: Any) -> None:
    lib, _ = service
    elsewhere = _submit(lib, "for another checkpoint", model="sd_xl_base_1.0.safetensors")
    cancelled = _submit(lib, "cancelled while queued")
    from dreamdepot.generate.dispatch import Workers
    from dreamdepot.generate.jobs import JobQueue

    queue = JobQueue(lib, Workers())
    assert queue.cancel(cancelled)
    mine = _submit(lib, "for the model this worker has", model="v1-5-pruned-emaonly")
    long = _submit(lib, "a long one", steps=500)
    worker = _worker(lib)
    try:
        deadline = time.monotonic() + 60
        while _statuses(lib)[long] != "running":
            assert time.monotonic() < deadline, _statuses(lib)
            time.sleep(0.1)
        assert queue.cancel(long)  # from this process: the worker sees the flag
        while _statuses(lib)[long] == "running":
            assert time.monotonic() < deadline, _statuses(lib)
            time.sleep(0.1)
        states = _statuses(lib)
    finally:
        _stop(worker)
        queue.close()
    assert states[mine] == "done" and states[long] == "cancelled"
    assert states[elsewhere] == "queued"  # no worker has that checkpoint
    assert states[cancelled] == "cancelled"
    conn = catalog(lib)
    made = {r[0] for r in conn.execute("SELECT DISTINCT job_id FROM images")}
    conn.close()
    assert made == {mine}


def _user(lib: Path, name: str) -> int:
    conn = catalog(lib)
    try:
        with conn:
            row = conn.execute(
                "INSERT INTO users(name, display_name, role, created_at) VALUES (?, ?, "
                "'member', ?) RETURNING id",
                (name, name.title(), time.time()),
            ).fetchone()
        return int(row[0])
    finally:
        conn.close()


def test_users_take_turns_interactive_before_background_and_limits_hold(service: Any) -> None:
    from dreamdepot.generate.base import GenerateRequest
    from dreamdepot.generate.dispatch import Workers
    from dreamdepot.generate.jobs import JobQueue
    from dreamdepot.generate.scheduling import QueueFull

    lib, _ = service
    with (lib / "dreamdepot.toml").open("a", encoding="utf-8") as f:
        f.write("max_queued_per_user = 6\n")
    alice, bob = _user(lib, "alice"), _user(lib, "bob")
    queue = JobQueue(lib, Workers())
    try:

        def submit(who: int, prompt: str, background: bool = False) -> int:
            req = GenerateRequest(prompt=prompt, width=64, height=64, steps=20)
            return queue.submit(req, user_id=who, background=background)

        batch = submit(bob, "bob's overnight batch", background=True)
        alices = [submit(alice, f"alice {k}") for k in range(6)]
        with pytest.raises(QueueFull, match="the limit is 6"):  # a seventh waiting: refused
            submit(alice, "alice 6")
        late = [submit(bob, f"bob {k}") for k in range(3)]
    finally:
        queue.close()
    worker = _worker(lib)
    try:
        deadline = time.monotonic() + 90
        while any(s != "done" for s in _statuses(lib).values()):
            assert time.monotonic() < deadline, _statuses(lib)
            time.sleep(0.2)
    finally:
        _stop(worker)
    conn = catalog(lib)
    order = [int(r[0]) for r in conn.execute("SELECT id FROM jobs ORDER BY started_at")]
    conn.close()
    a, b = alices, late
    assert order == [a[0], b[0], a[1], b[1], a[2], b[2], a[3], a[4], a[5], batch], order


def test_a_worker_advertises_itself_reports_progress_and_gives_back_on_sigterm(
    service: Any,
) -> None:
    import json

    import httpx

    from conftest import Cli
    from server import Server

    lib, _ = service
    cli = Cli(lib)
    queued = cli.json("generate", "a slow lighthouse", "--size", "64x64", "--steps", "400",
                      "--no-cache", "--no-wait", "--json")  # fmt: skip
    assert queued["state"] == "queued" and queued["id"] > 0
    events: list[dict[str, Any]] = []
    with Server(lib) as srv:
        worker = _worker(lib, "--metrics-port", "0", "--shutdown-timeout", "1")
        try:
            with httpx.stream("GET", srv.base + "/api/events", timeout=60) as stream:
                kind = ""
                for line in stream.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind == "job":
                        events.append(json.loads(line[6:]))
                        if events[-1].get("progress", 0) > 0.2:
                            break
            listing = httpx.get(srv.base + "/api/jobs").json()
            assert listing["queues"]["generate"] == {"queued": 0, "running": 1}
            assert listing["users"]["(local)"]["running"] == 1
            (me,) = listing["workers"]
            assert me["alive"] and me["backend"] == "a1111" and me["running"] == [queued["id"]]
            assert "v1-5-pruned-emaonly" in " ".join(me["models"])
            metrics = httpx.get(srv.base + "/metrics").text
            assert 'dreamdepot_jobs{state="running"} 1.0' in metrics
            assert (
                'dreamdepot_http_request_duration_seconds_count{method="GET",route="/api/jobs"'
                in metrics
            )
            started = time.monotonic()
            _stop(worker)  # SIGTERM mid-job: the job outlasts the 1 s it may take to finish
            assert time.monotonic() - started < 20
        finally:
            _stop(worker, signal.SIGKILL)
    assert {e["id"] for e in events} == {queued["id"]}
    assert any(0 < e.get("progress", 0) < 1 for e in events)  # from the worker, relayed
    job = cli.json("jobs", str(queued["id"]), "--json")
    assert job["state"] == "queued" and "stopped" in job["error"], job  # given back
    again = _worker(lib)
    try:
        deadline = time.monotonic() + 60
        while (job := cli.json("jobs", str(queued["id"]), "--json"))["state"] != "done":
            assert time.monotonic() < deadline, job
            time.sleep(0.3)
    finally:
        _stop(again)
    assert job["worker"] and "/" in job["worker"]
    assert cli.json("jobs", "--json")["workers"] == []  # both said goodbye


def test_new_prompts_are_embedded_by_a_worker_on_the_embed_queue(service: Any) -> None:
    import httpx

    from builders import png_bytes
    from server import Server

    lib, _ = service
    data = png_bytes({"parameters": "a heron in the reeds\nSteps: 5, Seed: 4, Size: 64x64"})
    with Server(lib) as srv:
        r = httpx.post(srv.base + "/api/uploads", files={"files": ("heron.png", data)})
        assert r.status_code == 200, r.text
        conn = catalog(lib)
        deadline = time.monotonic() + 30

        def asked() -> bool:  # the server asks a worker for it instead of embedding itself
            if conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0] is None:
                return False
            return bool(conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE "
                        "task_name = 'dreamdepot.embed_pending'").fetchone()[0])  # fmt: skip

        while not asked():
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 0
        worker = _worker(lib, "--queues", "embed")
        try:
            deadline = time.monotonic() + 90
            while not conn.execute(
                "SELECT 1 FROM embeddings e JOIN prompts p ON p.id = e.owner_id "
                "WHERE e.owner_kind = 'prompt' AND p.text = 'a heron in the reeds'"
            ).fetchone():
                assert time.monotonic() < deadline and worker.poll() is None
                time.sleep(0.3)
            (w,) = httpx.get(srv.base + "/api/jobs").json()["workers"]
            assert w["queues"] == ["embed"]
        finally:
            _stop(worker)
            conn.close()
