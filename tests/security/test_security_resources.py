"""Memory bombs, undecodable pixels behind valid metadata, and a watcher that meets a file
name it cannot decode (issue: hardening)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from builders import A1111_TEXT, png
from conftest import Cli, catalog
from hostile import ServeProcess, corrupt_pixels_png, giant_png


def _child_peak_mb(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run ``cmd`` in a fresh process (via a wrapper, so RUSAGE_CHILDREN is its alone)."""
    wrapper = (
        "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True,"
        " text=True); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        " sys.stderr.write(r.stdout + r.stderr); sys.exit(r.returncode)"
    )
    done = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    return int(done.stdout.strip().splitlines()[-1]) / 1024, done


def test_a_decompression_bomb_is_refused_before_decoding(cli: Cli, tmp_path: Path) -> None:
    """A 14000×14000 PNG of under a megabyte: refused from its header, recorded, and the
    thumbnail run stays far under 600 MB; an 7000×7000 RGBA (allowed) is thumbnailed."""
    pics = tmp_path / "pics"
    bomb = giant_png(pics / "bomb.png", 14_000, 14_000, {"parameters": A1111_TEXT})
    assert bomb.stat().st_size < 1_000_000
    giant_png(pics / "big.png", 7_000, 7_000, {"parameters": A1111_TEXT}, colour_type=6)
    cli("add", str(pics))
    peak, done = _child_peak_mb(
        [sys.executable, "-m", "dreamdepot.cli", "--library", str(cli.library_path),
         "thumbnails"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Made thumbnails for 1 image(s); 1 failed" in done.stderr
    assert peak < 600, f"thumbnails peaked at {peak:.0f} MB"
    doctor = cli.json("doctor", "--json")
    reasons = {Path(p["path"]).name: p["reason"] for p in doctor["pixels"]}
    assert "decode budget" in reasons["bomb.png"] and "big.png" not in reasons
    assert cli.json("stats", "--json")["pixel_errors"] == 1


def test_parallel_hostile_thumbnail_requests_stay_bounded(cli: Cli, tmp_path: Path) -> None:
    """Ten parallel 1024 px requests for images the server has not thumbnailed yet."""
    pics = tmp_path / "pics"
    for i in range(5):  # each just inside the decode budget
        giant_png(pics / f"huge{i}.png", 7_900, 7_900, {"parameters": A1111_TEXT + f" {i}"},
                  colour_type=6)  # fmt: skip
    giant_png(pics / "bomb.png", 14_000, 14_000, {"parameters": A1111_TEXT + " bomb"})
    cli("add", str(pics))
    hashes = [r[0] for r in catalog(cli.library_path).execute("SELECT content_hash FROM images")]
    with ServeProcess(cli.library_path) as srv:
        codes: list[int] = []

        def fetch(h: str) -> None:
            r = httpx.get(f"{srv.base}/api/thumbs/{h}/1024.avif", timeout=300)
            codes.append(r.status_code)

        threads = [threading.Thread(target=fetch, args=(hashes[i % len(hashes)],))
                   for i in range(10)]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        peak = srv.peak_rss_mb()
    assert codes == [200] * 10  # the bomb gets the fallback tile, never a 500
    assert peak < 1024, f"the server peaked at {peak:.0f} MB"


def test_doctor_lists_undecodable_pixels_and_thumbnails_says_it_failed(
    cli: Cli, tmp_path: Path
) -> None:
    pics = tmp_path / "pics"
    corrupt_pixels_png(pics / "broken.png", {"parameters": A1111_TEXT})
    png(pics / "fine.png", {"parameters": A1111_TEXT + ", x"})
    cli("add", str(pics))
    out = cli("thumbnails").stdout
    assert "Made thumbnails for 1 image(s); 1 failed" in out and "doctor" in out
    report = cli.json("doctor", "--json")
    assert [Path(p["path"]).name for p in report["pixels"]] == ["broken.png"]
    assert "pixels" in cli("doctor").stdout


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes raw bytes")
def test_the_watcher_survives_a_name_it_cannot_decode(cli: Cli, tmp_path: Path) -> None:
    from dreamdepot.catalog.images import watch_status
    from dreamdepot.ingest.watcher import Watcher
    from dreamdepot.library import Library

    pics = tmp_path / "pics"
    pics.mkdir()
    cli("add", str(pics))
    stop = threading.Event()
    with Library.open(cli.library_path) as lib:
        statuses: list[dict[str, object]] = []
        watcher = Watcher(lib.indexer(workers=1), on_status=statuses.append)
        thread = threading.Thread(target=watcher.run_supervised, args=(stop,))
        thread.start()
        try:
            time.sleep(1.0)
            raw = os.fsencode(str(pics)) + b"/bad\xff-name.png"
            png(Path(os.fsdecode(raw)), {"parameters": A1111_TEXT})
            deadline = time.monotonic() + 20
            while not any(s["state"] == "restarting" for s in statuses):
                assert time.monotonic() < deadline, f"the watcher never noticed: {statuses}"
                time.sleep(0.1)
            time.sleep(1.5)  # restarted
            png(pics / "after.png", {"parameters": A1111_TEXT + ", after"})
            deadline = time.monotonic() + 20
            conn = catalog(cli.library_path)
            # both files: indexed (on PostgreSQL the undecodable name is reported instead)
            seen = "SELECT (SELECT count(*) FROM files) + (SELECT count(*) FROM scan_errors)"
            while conn.execute(seen).fetchone()[0] < 2:
                assert time.monotonic() < deadline, "no live updates after the failure"
                time.sleep(0.1)
            assert "Unable to decode path" in str(watch_status(conn).get("reason")) or any(
                "decode" in str(s["reason"]) for s in statuses
            )
            assert cli.json("stats", "--json")["live_updates"]["state"] in ("live", "restarting")
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()
    assert watch_status(catalog(cli.library_path))["state"] == "off"
    assert cli.json("stats", "--json")["live_updates"]["restarts"] >= 1
