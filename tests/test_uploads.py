"""Getting images into a shared instance (issue #16): `POST /api/uploads` reads an upload's
metadata exactly as a scan does, keeps one copy per content, owns it to its sender, and
refuses bad files (corrupt, empty, too large, a decompression bomb, past the quota) with a
clear error and nothing stored; `dreamdepot push` uploads a folder, and after an
interruption uploads the rest, every file exactly once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from builders import image, png, png_bytes
from conftest import Cli, catalog
from security.hostile import giant_png
from server import Server

TEXT = (
    "a lighthouse at dusk\nNegative prompt: blurry\n"
    "Steps: 20, Sampler: Euler a, Seed: {seed}, Size: 64x64"
)


@pytest.fixture
def instance(cli: Cli) -> Iterator[tuple[Cli, Server, dict[str, str]]]:
    cli("stats")
    settings = cli.library_path / "dreamdepot.toml"  # top-level keys go before [server]
    settings.write_text("max_upload_mb = 1\nupload_quota_mb = 2\n" + settings.read_text())
    cli("users", "add", "root", "--role", "admin", "--password-stdin", input="admin-password\n")
    cli("users", "add", "alice", "--password-stdin", input="alice-password\n")
    cli("users", "add", "bob", "--password-stdin", input="bob-password\n")
    keys = {
        u: cli("api-keys", "create", u, "--user", u, "--scopes", "read,write").stdout.split()[-1]
        for u in ("alice", "bob")
    }
    with Server(cli.library_path) as srv:
        yield cli, srv, keys


def _client(srv: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=srv.base, headers={"Authorization": f"Bearer {key}"})


def _stored(library: Path) -> list[str]:
    folder = library / "uploads"
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_uploads_are_indexed_owned_and_kept_once(instance: Any) -> None:
    cli, srv, keys = instance
    one = png_bytes({"parameters": TEXT.format(seed=1)}, size=(64, 64))
    two = png_bytes({"parameters": TEXT.format(seed=2)}, size=(64, 64))
    with _client(srv, keys["alice"]) as alice, _client(srv, keys["bob"]) as bob:
        r = alice.post(
            "/api/uploads", files=[("files", ("one.png", one)), ("files", ("two.png", two))]
        )
        assert r.status_code == 200, r.text
        first, second = r.json()["items"]
        detail = alice.get(f"/api/images/{first['id']}").json()
        assert detail["prompt"] == "a lighthouse at dusk" and detail["seed"] == 1
        assert detail["negative_prompt"] == "blurry" and detail["sampler"] == "Euler a"
        assert not first["duplicate"] and second["id"] != first["id"]
        again = alice.post("/api/uploads", files={"files": ("copy.png", one)}).json()["items"][0]
        assert again["id"] == first["id"] and again["duplicate"]
        assert bob.get(f"/api/images/{first['id']}").status_code == 404  # alice's, private
        theirs = bob.post("/api/uploads", files={"files": ("mine.png", one)})
        assert theirs.status_code == 409 and "not shared" in theirs.json()["error"]
    assert len(_stored(cli.library_path)) == 2  # one copy per content, nothing half-written
    conn = catalog(cli.library_path)
    owners = {
        r[0] for r in conn.execute("SELECT u.name FROM images i JOIN users u ON u.id = i.owner_id")
    }
    conn.close()
    assert owners == {"alice"}


def test_bad_uploads_are_refused_with_a_reason_and_nothing_stored(
    instance: Any, tmp_path: Path
) -> None:
    cli, srv, keys = instance
    bomb = giant_png(tmp_path / "bomb.png", 14_000, 14_000, {"parameters": "x"}).read_bytes()
    big = png_bytes({"parameters": "big", "pad": "x" * (1_200_000)}, size=(8, 8))
    cases = {
        "corrupt.png": (b"\x89PNG\r\n\x1a\n" + os.urandom(500), 422, "cannot be read"),
        "empty.png": (b"", 422, "empty"),
        "big.png": (big, 413, "larger than"),
        "bomb.png": (bomb, 422, "pixels"),
        "notes.txt": (b"hello", 422, "not an image"),
    }
    with _client(srv, keys["alice"]) as alice:
        for name, (data, status, why) in cases.items():
            r = alice.post("/api/uploads", files={"files": (name, data)})
            assert r.status_code == status, (name, r.status_code, r.text)
            assert why in r.json()["error"], (name, r.json())
        assert alice.get("/api/images").json()["items"] == []
        # the quota (2 MiB): two files of 0.9 MiB pass, the third is refused
        fill = [png_bytes({"parameters": f"fill {k}", "pad": os.urandom(450_000).hex()})
                for k in range(3)]  # fmt: skip
        codes = [alice.post("/api/uploads", files={"files": (f"f{k}.png", d)}).status_code
                 for k, d in enumerate(fill)]  # fmt: skip
        assert codes == [200, 200, 413]
    assert len(_stored(cli.library_path)) == 2
    assert [p for p in (cli.library_path / "uploads").iterdir() if p.name.startswith(".")] == []
    conn = catalog(cli.library_path)
    assert conn.execute("SELECT count(*) FROM uploads").fetchone()[0] == 2
    conn.close()


def _push(cli: Cli, srv: Server, key: str, folder: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, DREAMDEPOT_API_KEY=key)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    return subprocess.Popen(
        [sys.executable, "-m", "dreamdepot.cli", "push", str(folder), "--server", srv.base],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def test_push_interrupted_and_resumed_uploads_every_file_exactly_once(
    instance: Any, tmp_path: Path
) -> None:
    cli, srv, keys = instance
    outputs = tmp_path / "outputs" / "txt2img-images"
    for day in range(2):
        for k in range(10):
            png(outputs / f"2026-12-0{day + 1}" / f"{k:05d}-{day}.png",
                {"parameters": TEXT.format(seed=day * 100 + k)}, im=image((64, 64)))  # fmt: skip
    png(
        outputs / "2026-12-01" / "again.png",
        {"parameters": TEXT.format(seed=999)},
        im=image((64, 64)),
    )
    (outputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    before = {p: p.stat().st_mtime_ns for p in outputs.rglob("*")}
    first = _push(cli, srv, keys["alice"], outputs.parent)
    conn = catalog(cli.library_path)
    deadline = time.monotonic() + 60
    while conn.execute("SELECT count(*) FROM uploads").fetchone()[0] < 5:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)  # interrupted mid-push
    first.wait(10)
    partial = conn.execute("SELECT count(*) FROM uploads").fetchone()[0]
    assert 5 <= partial < 21
    second = _push(cli, srv, keys["alice"], outputs.parent)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 1, (out, err)  # the broken file is refused, and said so
    pushed, there = map(int, re.search(r"Pushed (\d+) file\(s\); (\d+) already", out).groups())
    assert "broken.png" in err and pushed + there == 21 and there >= partial  # none twice
    rows = conn.execute("SELECT count(*), count(DISTINCT image_id) FROM uploads").fetchone()
    files = conn.execute(
        "SELECT count(*) FROM files f JOIN roots r ON r.id = f.root_id WHERE r.path LIKE ?",
        ("%uploads",),
    ).fetchone()[0]
    conn.close()
    assert tuple(rows) == (21, 21) and files == 21  # 20 + again.png, each once
    assert {p: p.stat().st_mtime_ns for p in outputs.rglob("*")} == before  # read only
    third = _push(cli, srv, keys["alice"], outputs.parent)
    out, _ = third.communicate(timeout=120)
    assert "Pushed 0 file(s); 21 already there" in out.replace("\n", " ")
