"""Real processes: SIGKILL at random points mid-scan, and `dreamdepot watch` picking up
files written quickly, slowly and in pieces."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from builders import chunk, png_bytes, raw_png
from conftest import catalog, count_rows, integrity_problems, scalar

DREAMDEPOT = [sys.executable, "-m", "dreamdepot.cli"]


def _corpus(root: Path, n: int) -> None:
    root.mkdir(parents=True)
    iend = chunk(b"IEND", b"")
    body = raw_png()[: -len(iend)]
    for i in range(n):
        text = f"kill test {i % 7}\nSteps: 20, Sampler: Euler, Seed: {i}, Size: 1x1".encode()
        sub = root / f"d{i % 10}"
        sub.mkdir(exist_ok=True)
        (sub / f"{i:05d}.png").write_bytes(body + chunk(b"tEXt", b"parameters\x00" + text) + iend)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["DREAMDEPOT_WORKERS"] = "2"
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    return env


def test_repeated_sigkill_mid_scan_leaves_a_sound_catalog(tmp_path: Path) -> None:
    root, lib = tmp_path / "pics", tmp_path / "lib"
    n = 20000
    _corpus(root, n)
    subprocess.run(
        [*DREAMDEPOT, "--library", str(lib), "add", "--no-scan", str(root)],
        check=True,
        env=_env(),
        capture_output=True,
    )
    rng = random.Random(1234)
    progress = []
    for _ in range(8):
        proc = subprocess.Popen(
            [*DREAMDEPOT, "--library", str(lib), "scan"],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # kill at a random moment after this run has committed something new, so the kill
        # lands mid-scan however long start-up takes on a loaded machine
        before = progress[-1] if progress else 0
        deadline = time.monotonic() + 60
        while (
            proc.poll() is None
            and count_rows(lib, "files") <= before
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        with contextlib.suppress(
            ProcessLookupError
        ):  # this scan finished first; the catalog must be sound all the same
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert integrity_problems(lib) == []
        progress.append(count_rows(lib, "files"))
    print("files after each kill:", progress)
    assert progress == sorted(progress), "a kill lost committed work"
    assert 0 < progress[0] < n or 0 < progress[1] < n, f"no kill landed mid-scan: {progress}"
    done = subprocess.run(
        [*DREAMDEPOT, "--library", str(lib), "scan"],
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "0 unreadable" in done.stdout
    conn = catalog(lib)
    assert tuple(
        conn.execute("SELECT count(*), count(DISTINCT rel_path) FROM files").fetchone()
    ) == (n, n)
    assert conn.execute("SELECT count(*) FROM images").fetchone()[0] == n
    assert conn.execute("SELECT count(*) FROM scan_errors").fetchone()[0] == 0
    assert conn.execute("SELECT sum(image_count) FROM prompts").fetchone()[0] == n


def _wait_for(lib: Path, sql: str, expected: object, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if scalar(lib, sql) == expected:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{sql!r} did not reach {expected!r} within {timeout} s")


def test_watch_indexes_new_files_within_two_seconds_and_never_half_written(tmp_path: Path) -> None:
    root, lib = tmp_path / "outputs", tmp_path / "lib"
    root.mkdir()
    subprocess.run(
        [*DREAMDEPOT, "--library", str(lib), "add", str(root)],
        check=True,
        env=_env(),
        capture_output=True,
    )
    proc = subprocess.Popen(
        [*DREAMDEPOT, "--library", str(lib), "watch", "--no-scan"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.5)  # let the watcher arm
        quick = png_bytes(
            {"parameters": "quick one\nSteps: 20, Sampler: Euler, Seed: 1, Size: 8x8"}
        )
        (root / "quick.png").write_bytes(quick)
        took = _wait_for(lib, "SELECT count(*) FROM files", 1, 10)
        assert took < 2.0, f"took {took:.2f} s"

        slow = png_bytes(
            {"parameters": "slow one\nSteps: 20, Sampler: Euler, Seed: 2, Size: 8x8"},
            size=(256, 256),
        )
        target = root / "sub" / "slow.png"
        target.parent.mkdir()
        with open(target, "wb") as f:
            for i in range(0, len(slow), max(1, len(slow) // 6)):
                f.write(slow[i : i + max(1, len(slow) // 6)])
                f.flush()
                time.sleep(0.4)  # slower than the watcher's settle time
                broken = scalar(lib, "SELECT count(*) FROM files WHERE rel_path = 'sub/slow.png'")
                if f.tell() < len(slow):
                    assert broken == 0, "a half-written file was indexed"
        took = _wait_for(lib, "SELECT count(*) FROM files", 2, 10)
        assert took < 2.0
        _wait_for(lib, "SELECT count(*) FROM scan_errors", 0, 5)

        (root / "quick.png").unlink()
        _wait_for(lib, "SELECT count(*) FROM files WHERE state = 'missing'", 1, 5)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
