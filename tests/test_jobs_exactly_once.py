"""Generation jobs exactly once: real `dreamdepot generate` processes killed (SIGKILL) at
random points — starting, generating, writing, indexing, finishing — then `dreamdepot jobs
--run`: every job ends done with exactly its images, none missing, none twice; a running job
of a live process is never taken over; a cancel asked of a dead job is honoured."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Cli, catalog, count_rows, integrity_problems
from test_generate import FakeA1111

DREAMDEPOT = [sys.executable, "-m", "dreamdepot.cli"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    env["DREAMDEPOT_AUTOTAG"] = ""
    return env


def test_killed_generations_complete_exactly_once(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fake_a1111

    monkeypatch.setattr(fake_a1111, "STEP_SECONDS", 0.02)
    cli("stats")
    lib = cli.library_path
    rng = random.Random(20)
    with FakeA1111() as fake:
        (lib / "dreamdepot.toml").write_text(f'backend = "a1111"\na1111_url = "{fake.url}"\n')
        for k in range(12):
            queued_before = count_rows(lib, "jobs")  # a start-up kill may queue nothing
            proc = subprocess.Popen(
                [*DREAMDEPOT, "--library", str(lib), "generate", f"a killed lighthouse {k}",
                 "--n", "2", "--seed", "-1", "--steps", "20", "--size", "64x64",
                 "--no-cache", "--json"],
                env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            if k % 4 == 0:
                time.sleep(rng.uniform(0.1, 0.6))  # while starting up
            else:  # once this job is queued: its steps take ~0.4 s, then it writes and indexes
                deadline = time.monotonic() + 60
                while (
                    proc.poll() is None
                    and count_rows(lib, "jobs") <= queued_before
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 0.6))  # generating, writing, indexing, done
            with contextlib.suppress(ProcessLookupError):  # it finished first
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            assert integrity_problems(lib) == []
        states = [j["status"] for j in cli.json("jobs", "--json")["jobs"]]
        assert states, "no kill came after a job was queued"
        cli("jobs", "--run")
        jobs = cli.json("jobs", "--json")["jobs"]
    conn = catalog(lib)
    assert {j["status"] for j in jobs} == {"done"}, [(j["id"], j["status"]) for j in jobs]
    for j in jobs:
        rows = conn.execute(
            "SELECT job_index, seed FROM images WHERE job_id = ? ORDER BY job_index", (j["id"],)
        ).fetchall()
        assert [r[0] for r in rows] == [0, 1], (j["id"], [tuple(r) for r in rows])
        assert sorted(j["image_ids"]) == sorted(
            r[0] for r in conn.execute("SELECT id FROM images WHERE job_id = ?", (j["id"],))
        )
    prompts = conn.execute(
        "SELECT p.text, count(*) FROM images i JOIN prompts p ON p.id = i.prompt_id GROUP BY p.text"
    ).fetchall()
    assert all(n == 2 for _, n in prompts), [tuple(r) for r in prompts]  # nothing twice
    assert integrity_problems(lib) == []
    print("job states after the kills:", states)
    assert "queued" in states, "no kill landed mid-job"


def test_a_live_process_keeps_its_job_and_dead_cancels_stay_cancelled(cli: Cli) -> None:
    from dreamdepot.generate.jobs import OWNER
    from dreamdepot.library import Library

    cli("stats")
    with Library.open(cli.library_path) as lib, lib.catalog.transaction() as conn:
        now = time.time()
        request = json.dumps({"prompt": "x"})
        for status, owner, cancel in [
            ("running", OWNER, 0),  # this very process: alive
            ("running", f"{os.uname().nodename}:999999:1", 0),  # a pid that does not exist
            ("running", f"{os.uname().nodename}:999998:1", 1),  # dead, and cancel was asked
            ("running", "another-host:12:1", 0),  # another machine, heartbeat fresh
        ]:
            conn.execute(
                "INSERT INTO jobs(kind, backend, request, status, owner, heartbeat_at, "
                "cancel_requested, attempts, created_at) VALUES ('txt2img', 'a1111', ?, ?, ?, "
                "?, ?, 1, ?)",
                (request, status, owner, now, cancel, now),
            )
    states = {j["id"]: j["status"] for j in cli.json("jobs", "--json")["jobs"]}
    assert states == {1: "running", 2: "queued", 3: "cancelled", 4: "running"}
