"""Thumbnail benchmark: `python bench/thumbs.py` prints a table.

Sources: the 1024x1024 real generated images of ../shared/corpus (real content matters for
codec comparisons). Measures the media stage (decode, 256 px AVIF, placeholder, dHash) in
thumbnails/s on all cores, AVIF bytes against JPEG at equal SSIM, and the placeholder size
as WebP vs AVIF.
"""

from __future__ import annotations

import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _table import print_table
from dreamdepot.catalog.db import Catalog
from dreamdepot.ingest.pipeline import Indexer
from dreamdepot.media.thumbs import AVIF_QUALITY, AVIF_SPEED, GRID_SIZE, save_avif

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "files"


def ssim(a: np.ndarray, b: np.ndarray, win: int = 8) -> float:
    """Mean SSIM over 8x8 windows of the luma planes (Wang et al. constants)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    h, w = (a.shape[0] // win) * win, (a.shape[1] // win) * win

    def blocks(x: np.ndarray) -> np.ndarray:
        return x[:h, :w].reshape(h // win, win, w // win, win).swapaxes(1, 2).reshape(-1, win * win)

    ba, bb = blocks(a), blocks(b)
    ma, mb = ba.mean(1), bb.mean(1)
    va, vb = ba.var(1), bb.var(1)
    cov = ((ba - ma[:, None]) * (bb - mb[:, None])).mean(1)
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return float(s.mean())


def _luma(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def sources() -> list[Path]:
    found = []
    for p in sorted(CORPUS.glob("*")):
        try:
            with Image.open(p) as im:
                if im.size == (1024, 1024):
                    found.append(p)
        except OSError:
            continue
    return found


def codec_comparison(paths: list[Path]) -> list[tuple[str, str, str]]:
    rows = []
    ratios, avif_sizes, jpeg_sizes = [], [], []
    for p in paths:
        with Image.open(p) as im:
            ref = im.convert("RGB")
        ref.thumbnail((GRID_SIZE, GRID_SIZE), Image.Resampling.LANCZOS)
        ref_l = np.asarray(ref.convert("L"))
        buf = io.BytesIO()
        save_avif(ref, buf)
        avif = buf.getvalue()
        target = ssim(ref_l, _luma(avif))
        jpeg = b""
        for q in range(40, 101, 2):
            jb = io.BytesIO()
            ref.save(jb, "JPEG", quality=q, optimize=True, progressive=True)
            jpeg = jb.getvalue()
            if ssim(ref_l, _luma(jpeg)) >= target:
                break
        avif_sizes.append(len(avif))
        jpeg_sizes.append(len(jpeg))
        ratios.append(len(avif) / len(jpeg))
    rows.append(
        (
            f"AVIF q{AVIF_QUALITY} s{AVIF_SPEED} {GRID_SIZE}px, mean bytes",
            f"{statistics.mean(avif_sizes):,.0f}",
            f"{len(paths)} real 1024² images",
        )
    )
    rows.append(
        (
            "JPEG at equal SSIM (progressive, optimised), mean bytes",
            f"{statistics.mean(jpeg_sizes):,.0f}",
            "",
        )
    )
    rows.append(
        (
            "AVIF / JPEG bytes at equal SSIM (mean of ratios)",
            f"{statistics.mean(ratios):.0%}",
            "target <= 60%",
        )
    )
    with Image.open(paths[0]) as im:
        tiny = im.convert("RGB")
    tiny.thumbnail((16, 16))
    for fmt, kw in (("WEBP", {"quality": 30, "method": 6}), ("AVIF", {"quality": 30, "speed": 6})):
        b = io.BytesIO()
        tiny.save(b, fmt, **kw)
        import base64

        rows.append(
            (
                f"placeholder 16px {fmt} as base64",
                f"{len(base64.b64encode(b.getvalue()))}",
                "chars in every list item",
            )
        )
    return rows


def throughput(paths: list[Path], n: int = 200) -> list[tuple[str, str, str]]:
    tmp = Path(tempfile.mkdtemp(prefix="dd-thumbs-"))
    try:
        root = tmp / "src"
        root.mkdir()
        for i in range(n):  # distinct files (an appended byte), same pixels as the sources
            src = paths[i % len(paths)]
            (root / f"{i:04d}{src.suffix}").write_bytes(src.read_bytes() + bytes([i % 256]))
        catalog = Catalog.open(tmp / "catalog.sqlite")
        catalog.conn.execute("INSERT INTO roots(path, added_at) VALUES (?, 0)", (str(root),))
        indexer = Indexer(catalog)
        indexer.scan()
        t = time.perf_counter()
        made = indexer.media_pending(str(tmp / "thumbs"), (GRID_SIZE,))
        dt = time.perf_counter() - t
        catalog.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [
        (
            f"media stage: {made} x 1024² PNG -> {GRID_SIZE}px AVIF + placeholder + dHash",
            f"{made / dt:.1f}/s",
            f"{indexer.workers} worker processes; target >= 40/s",
        )
    ]


def main() -> None:
    paths = sources()
    if not paths:
        sys.exit("needs ../shared/corpus with its 1024x1024 images")
    rows = throughput(paths) + codec_comparison(paths)
    print_table(("measure", "value", "note"), rows)


if __name__ == "__main__":
    main()
