"""Hostile inputs built cheaply: PNG headers that declare huge sizes (written row by row
through zlib, so the test itself never holds the pixels), corrupt pixel data behind valid
metadata, and a server in a real subprocess whose memory can be read from /proc."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import httpx

from builders import chunk


def giant_png(path: Path, width: int, height: int, text: dict[str, str] | None = None,
              colour_type: int = 2) -> Path:  # fmt: skip
    """A valid PNG of ``width``×``height`` (one flat colour, compressed to almost nothing)."""
    channels = {0: 1, 2: 3, 6: 4}[colour_type]
    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x7f" * (width * channels)
    body = bytearray()
    for _ in range(height):
        body += comp.compress(row)
    body += comp.flush()
    out = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    )
    for k, v in (text or {}).items():
        out += chunk(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("latin-1"))
    out += chunk(b"IDAT", bytes(body)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)
    return path


def corrupt_pixels_png(path: Path, text: dict[str, str]) -> Path:
    """Valid chunks and metadata; the IDAT holds garbage that zlib cannot inflate."""
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 2, 0, 0, 0))
    for k, v in text.items():
        out += chunk(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("latin-1"))
    out += chunk(b"IDAT", b"\x78\x9c" + os.urandom(400)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``dreamdepot serve`` as a real process (its memory and signals are its own)."""

    def __init__(self, library: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "dreamdepot.cli", "--library", str(library), "serve",
                    "--port", str(self.port), "--no-browser", "--no-demo", *args]  # fmt: skip
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServeProcess:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.proc.stdout.read()}")  # type: ignore[union-attr]
            try:
                httpx.get(self.base + "/api/stats", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("serve did not start")

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
