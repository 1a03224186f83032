"""Ingest benchmark: `python bench/ingest.py` prints a table (see docs/performance.md).

Corpora are generated under bench/out/ (reused when present):
1. small: 20,000 PNGs of 64x64 with an A1111 `parameters` chunk, made exactly as issue #2
   specifies. With `--peer PATH` (a checkout of Infinite Image Browsing, run with
   `--peer-python`, its own venv's interpreter) both tools index it as whole processes in the
   same run, warm cache, interleaved, and the ratio of the medians is printed; without a
   peer no ratio is printed at all;
2. realistic: 5,000 PNG/JPEG/WebP files of 512²–1024² (0.3–1.5 MB) with A1111 and ComfyUI
   metadata of 2–30 KB;
3. large: 100,000 small PNGs for the unchanged re-scan, the 10% move and peak memory.

With `--postgresql` the small corpus is also indexed into a fresh PostgreSQL database
(pgserver, data under bench/out/pgdata), runs alternating with SQLite's, and the ratio of
files/s is printed.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import struct
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image, PngImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _table import print_table
from dreamdepot.catalog import tags as catalog_tags
from dreamdepot.library import Library
from dreamdepot.media.writers import build_exif, user_comment_unicode

OUT = Path(__file__).resolve().parent / "out"


def small_corpus(root: Path, n: int = 20_000) -> Path:
    """Exactly the issue's recipe, so figures compare with the peer's."""
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for i in range(n):
        seed = 1000 + i
        im = Image.new("RGB", (64, 64), (120, 80, 200))
        im.putpixel(
            (seed % 64, (seed // 64) % 64), (seed % 256, (seed // 7) % 256, (seed // 13) % 256)
        )
        info = PngImagePlugin.PngInfo()
        info.add_text(
            "parameters",
            f"a red fox in the snow, variant {i % 40}\n"
            "Negative prompt: lowres, bad anatomy, blurry\n"
            f"Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: {seed}, "
            "Size: 64x64, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1",
        )
        path = root / f"d{i % 20}" / f"img_{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, "PNG", pnginfo=info)
    (root / ".complete").touch()
    return root


def _chunk(ctype: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(ctype + data))


def large_corpus(
    root: Path,
    n: int = 100_000,
    place: Callable[[int], str] = lambda i: f"d{i % 100:03d}",
    folders: int = 100,
) -> Path:
    """Tiny distinct PNGs assembled directly (fast to make); image ``i`` goes in the folder
    ``place(i)`` (100 folders unless told), ``folders`` being how many ``place`` makes."""
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    tail = _chunk(b"IDAT", zlib.compress(b"\x00\x80")) + _chunk(b"IEND", b"")
    for i in range(n):
        text = (
            f"large corpus prompt {i % 500}, style {i % 7}\nSteps: {20 + i % 10}, Sampler: Euler, "
            f"CFG scale: 7, Seed: {i}, Size: 1x1, Model: m{i % 5}"
        ).encode()
        path = root / place(i) / f"{i:06d}.png"
        if i < folders:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(head + _chunk(b"tEXt", b"parameters\x00" + text) + tail)
    (root / ".complete").touch()
    return root


def _comfy_graph(i: int, pad: int) -> str:
    graph = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
        "6": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": f"realistic prompt {i} " + "detail, " * pad, "clip": ["4", 1]},
        },
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": i,
                "steps": 30,
                "cfg": 6.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}},
    }
    return json.dumps(graph)


def realistic_corpus(root: Path, n: int = 5_000) -> Path:
    """Distinct files of realistic size: a few noisy base images, each file's metadata unique."""
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(5)
    bases = []
    for k in range(6):
        side = (512, 768, 1024)[k % 3]
        noise = Image.effect_noise((side, side), 40 + 10 * k).convert("RGB")
        grad = Image.linear_gradient("L").resize((side, side)).convert("RGB")
        bases.append(Image.blend(noise, grad, 0.55))
    encoded: dict[tuple[int, str], bytes] = {}
    for i in range(n):
        base_i = i % len(bases)
        fmt = ("png", "jpeg", "webp")[i % 3]
        pad = rng.randint(200, 3500)  # 2–30 KB of metadata
        if i % 2:
            text = (
                f"realistic prompt {i}, "
                + "masterpiece, " * (pad // 2)
                + "\nNegative prompt: lowres\n"
                + f"Steps: 30, Sampler: Euler a, CFG scale: 7, Seed: {i},"
                f" Size: 1024x1024, Model: sdxl, Version: v1.10.1"
            )
            meta = {"parameters": text}
        else:
            meta = {
                "prompt": _comfy_graph(i, pad),
                "workflow": json.dumps({"nodes": [], "pad": "x" * pad}),
            }
        im = bases[base_i]
        path = root / fmt / f"{i:05d}.{'jpg' if fmt == 'jpeg' else fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "png":
            info = PngImagePlugin.PngInfo()
            for k, v in meta.items():
                info.add_text(k, v)
            key = (base_i, "png")
            if key not in encoded:
                im.save(path, "PNG", compress_level=1)
                encoded[key] = path.read_bytes()
            # splice the text chunks in after IHDR: same pixels, unique metadata
            data = encoded[key]
            chunks = b"".join(
                _chunk(b"tEXt", k.encode() + b"\x00" + v.encode("latin-1", "replace"))
                for k, v in meta.items()
            )
            path.write_bytes(data[:33] + chunks + data[33:])
        else:
            text = meta.get("parameters") or "prompt:" + meta["prompt"]
            if "parameters" in meta:
                exif = build_exif(exif_ifd={0x9286: user_comment_unicode(text)})
            else:
                exif = build_exif(ifd0={0x0110: text.encode()}, little_endian=True)
            if fmt == "jpeg":
                im.save(path, "JPEG", quality=92, exif=b"Exif\x00\x00" + exif)
            else:
                im.save(path, "WEBP", quality=90, method=0, exif=exif)
    (root / ".complete").touch()
    return root


def _fresh_library(name: str, database: Callable[[], str] | None = None) -> Library:
    """An empty library; with ``database``, its catalog in the fresh PostgreSQL database
    that call returns (set as the library's ``database`` setting, as a user would)."""
    path = OUT / "libraries" / name
    shutil.rmtree(path, ignore_errors=True)
    if database is not None:
        path.mkdir(parents=True)
        (path / "dreamdepot.toml").write_text(f'database = "{database()}"\n', encoding="utf-8")
    return Library.open(path)


def postgres_databases() -> Callable[[], str]:
    """A real PostgreSQL 16 (pgserver, data under bench/out/pgdata); each call drops and
    makes the benchmark's database and returns its URL."""
    import warnings

    import pgserver

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(OUT / "pgdata", cleanup_mode=None)
    server.psql("CREATE EXTENSION IF NOT EXISTS vector;")

    def fresh() -> str:
        server.psql("DROP DATABASE IF EXISTS dd_ingest;")
        server.psql("CREATE DATABASE dd_ingest;")
        return str(server.get_uri("dd_ingest"))

    return fresh


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def bench_first_scan(
    corpus: Path, name: str, repeats: int, database: Callable[[], str] | None = None
) -> tuple[list[float], int, int]:
    times = []
    files = total_bytes = 0
    for _ in range(repeats):
        lib = _fresh_library(name, database)
        root = lib.add_root(corpus)
        t = time.perf_counter()
        stats = lib.indexer().scan([root])
        times.append(time.perf_counter() - t)
        files = stats.probed
        total_bytes = lib.conn.execute("SELECT sum(size) FROM files").fetchone()[0]
        assert stats.errors == 0 and stats.new_images == files, stats
        q = lib.conn.execute(
            "SELECT count(*) FROM images WHERE prompt_id IS NOT NULL AND seed IS NOT NULL"
        )
        assert q.fetchone()[0] == files, "prompts/params not queryable"
        lib.close()
    return times, files, total_bytes


PEER_RUNNER = """
import os, sys
sys.path.insert(0, os.getcwd())
from scripts.iib.db.update_image_data import update_image_data
update_image_data([sys.argv[1]], is_rebuild=False)
"""


def bench_whole_processes(
    corpus: Path, peer: Path, peer_python: str, repeats: int
) -> tuple[list[float], list[float]]:
    """Seconds for `dreamdepot add` and for the peer's indexing call, each a whole process
    from start to exit (imports included) on a fresh database, interleaved after one warm-up
    run of each (the corpus is then in the page cache for both)."""
    import os
    import subprocess

    ours, theirs = [], []
    for i in range(repeats + 1):
        lib = OUT / "whole-ours"
        shutil.rmtree(lib, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "dreamdepot.cli", "--library", str(lib), "add", "--no-watch",
             str(corpus)], check=True, capture_output=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
        )  # fmt: skip
        mine = time.perf_counter() - t
        db = OUT / "whole-peer.db"
        db.unlink(missing_ok=True)
        t = time.perf_counter()
        subprocess.run(
            [peer_python, "-c", PEER_RUNNER, str(corpus)], cwd=peer, check=True,
            capture_output=True,
            env={**os.environ, "IIB_DB_PATH": str(db), "IIB_CACHE_DIR": str(OUT / "peer-cache"),
                 "IIB_LOG_PATH": str(OUT / "peer.log")},
        )  # fmt: skip
        peers = time.perf_counter() - t
        if i:  # the first round warms the cache for both
            ours.append(mine)
            theirs.append(peers)
    return ours, theirs


def _median_row(label: str, times: list[float], files: int) -> tuple[str, str, str]:
    med = statistics.median(times)
    return f"{label} (median of {len(times)})", f"{med:.2f} s", f"{files / med:,.0f} files/s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer", type=Path, help="an Infinite Image Browsing checkout")
    ap.add_argument("--peer-python", default=sys.executable, help="the peer's interpreter")
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--skip-realistic", action="store_true")
    ap.add_argument(
        "--postgresql",
        action="store_true",
        help="also index the small corpus into PostgreSQL (pgserver), runs interleaved",
    )
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    rows: list[tuple[str, str, str]] = []

    t = time.perf_counter()
    small = small_corpus(OUT / "small")
    print(f"small corpus ready ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    times, n, _ = bench_first_scan(small, "small", args.repeats)
    med = statistics.median(times)
    rows.append(
        (
            f"small: first scan, 20,000 PNG 64x64 (median of {args.repeats})",
            f"{med:.2f} s",
            f"{n / med:,.0f} files/s",
        )
    )
    if args.postgresql:  # one run on each engine in turn, repeated: the same cache for both
        fresh = postgres_databases()
        lite, pg = [], []
        for _ in range(args.repeats):
            lite += bench_first_scan(small, "small", 1)[0]
            pg += bench_first_scan(small, "small-pg", 1, fresh)[0]
        rows.append(_median_row("small: first scan, SQLite, interleaved", lite, n))
        rows.append(_median_row("small: first scan, PostgreSQL, interleaved", pg, n))
        ratio = statistics.median(lite) / statistics.median(pg)
        rows.append(("  PostgreSQL / SQLite files/s", f"{ratio:.0%}", "target >= 50%"))
    if args.peer:
        ours, theirs = bench_whole_processes(small, args.peer, args.peer_python, args.repeats)
        rows.append(_median_row("small, whole `dreamdepot add` process", ours, n))
        rows.append(_median_row("small, whole peer process, same run", theirs, n))
        ratio = statistics.median(theirs) / statistics.median(ours)
        rows.append(("  ratio of medians, peer / ours", f"{ratio:.2f}x", "target >= 2x"))
    else:
        rows.append(("  vs peer", "peer not run", "pass --peer PATH (an IIB checkout)"))

    if not args.skip_realistic:
        t = time.perf_counter()
        real = realistic_corpus(OUT / "realistic")
        print(f"realistic corpus ready ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
        times, n, nbytes = bench_first_scan(real, "realistic", args.repeats)
        med = statistics.median(times)
        rows.append(
            (
                f"realistic: first scan, {n:,} PNG/JPEG/WebP 512-1024 px",
                f"{med:.2f} s",
                f"{n / med:,.0f} files/s, {nbytes / med / 1e6:,.0f} MB/s",
            )
        )
        lib = Library.open(OUT / "libraries" / "realistic")
        t = time.perf_counter()
        hashed = lib.indexer().hash_pending()
        dt = time.perf_counter() - t
        rows.append(
            (
                f"realistic: background full hash of {hashed:,} images",
                f"{dt:.2f} s",
                f"{nbytes / dt / 1e6:,.0f} MB/s",
            )
        )
        lib.close()

    if not args.skip_large:
        t = time.perf_counter()
        large = large_corpus(OUT / "large")
        print(f"large corpus ready ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
        lib = _fresh_library("large")
        root = lib.add_root(large)
        t = time.perf_counter()
        stats = lib.indexer().scan([root])
        dt = time.perf_counter() - t
        rows.append(
            (
                f"large: first scan, {stats.probed:,} files",
                f"{dt:.2f} s",
                f"{stats.probed / dt:,.0f} files/s",
            )
        )
        rescans = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            again = lib.indexer().scan([root])
            rescans.append(time.perf_counter() - t)
            assert again.probed == 0 and again.missing == 0
        rows.append(
            (
                "large: re-scan, nothing changed (median)",
                f"{statistics.median(rescans):.2f} s",
                "target <= 3 s",
            )
        )
        moved = sorted(large.glob("d00[0-9]/*.png"))  # 10 of 100 folders = 10%
        ids = [
            r[0]
            for r in lib.conn.execute("SELECT image_id FROM files WHERE rel_path LIKE 'd00_/%'")
        ]
        with lib.catalog.transaction() as conn:
            catalog_tags.add_tag(conn, "moved-batch", ids)
        dest = large / "moved"
        dest.mkdir(exist_ok=True)
        for p in moved:
            (dest / p.parent.name).mkdir(exist_ok=True)
            p.rename(dest / p.parent.name / p.name)
        t = time.perf_counter()
        after = lib.indexer().scan([root])
        dt = time.perf_counter() - t
        kept = lib.conn.execute(
            "SELECT count(*) FROM image_tags it JOIN files f ON f.image_id = it.image_id "
            "WHERE f.rel_path LIKE 'moved/%' AND f.state = 'present'"
        ).fetchone()[0]
        rows.append(
            (
                f"large: re-scan after moving {len(moved):,} files (10%)",
                f"{dt:.2f} s",
                f"{after.moved:,} moves, tags kept on {kept:,}/{len(ids):,}",
            )
        )
        for p in sorted(dest.glob("*/*.png")):  # put them back for the next run
            p.rename(large / p.parent.name / p.name)
        shutil.rmtree(dest)
        rows.append(
            (
                "large: peak memory (max RSS of scanner or a worker)",
                f"{_peak_mb():,.0f} MB",
                "target <= 500 MB",
            )
        )
        lib.close()

    print_table(("measure", "value", "note"), rows)


if __name__ == "__main__":
    main()
