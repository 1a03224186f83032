"""SIGTERM or SIGINT to `serve` or `scan` (how systemd, container runtimes and Ctrl-C stop
them) stops every forked worker within seconds: none is left behind, orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from builders import chunk, raw_png
from conftest import Cli
from security.hostile import ServeProcess, giant_png

DREAMDEPOT = [sys.executable, "-m", "dreamdepot.cli"]


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def alive(pids: set[int]) -> set[int]:
    out = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.add(pid)
    return out


def wait_for_children(pid: int, timeout: float = 60) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(pid)
        if len(kids) >= 2:
            return kids
        time.sleep(0.05)
    raise AssertionError("the worker pool never started")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_its_stage_workers(cli: Cli, tmp_path: Path, sig: int) -> None:
    for i in range(80):  # big enough that thumbnails keep the pool busy for seconds
        giant_png(tmp_path / "pics" / f"{i:03d}.png", 2400, 2400, {"parameters": f"img {i}"})
    cli("add", str(tmp_path / "pics"), "--no-watch")
    with ServeProcess(cli.library_path) as srv:
        assert srv.proc is not None
        kids = wait_for_children(srv.proc.pid)
        srv.proc.send_signal(sig)
        srv.proc.wait(20)
        deadline = time.monotonic() + 10
        while alive(kids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(kids), f"workers left behind after {signal.Signals(sig).name}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_scan_stops_its_probe_workers(tmp_path: Path, sig: int) -> None:
    pics, lib = tmp_path / "pics", tmp_path / "lib"
    iend = chunk(b"IEND", b"")
    body = raw_png()[: -len(iend)]
    for i in range(12000):
        sub = pics / f"d{i % 20}"
        sub.mkdir(parents=True, exist_ok=True)
        text = f"shutdown {i}\nSteps: 20, Sampler: Euler, Seed: {i}, Size: 1x1".encode()
        (sub / f"{i:05d}.png").write_bytes(body + chunk(b"tEXt", b"parameters\x00" + text) + iend)
    env = {**os.environ, "DREAMDEPOT_WORKERS": "2"}
    subprocess.run([*DREAMDEPOT, "--library", str(lib), "add", "--no-scan", str(pics)],
                   check=True, env=env, capture_output=True)  # fmt: skip
    proc = subprocess.Popen([*DREAMDEPOT, "--library", str(lib), "scan"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    kids = wait_for_children(proc.pid)
    proc.send_signal(sig)
    proc.wait(20)
    deadline = time.monotonic() + 10
    while alive(kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(kids), f"workers left behind after {signal.Signals(sig).name}"
