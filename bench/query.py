"""Query benchmark: `python bench/query.py [--images 1000000] [--backend postgresql]` prints
p50/p95 per query.

With ``--backend postgresql`` the same catalog is moved into a real PostgreSQL 16 (pgserver,
data under bench/out/pgdata; `dreamdepot migrate`'s code path) and every query runs on both
engines in the same run, through the same functions, side by side.

Synthesises a catalog (rows only) with realistic distributions: ~5,000 tags with Zipf
frequencies (~3 per image), ~200,000 distinct prompts, dates over two years with bursts
of identical timestamps (generation batches), then times the queries the UI makes through
the same code path (`catalog.images.search`, `catalog.tags.tag_counts`).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _table import print_table
from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog import tags as catalog_tags
from dreamdepot.catalog.db import connect
from dreamdepot.catalog.query import parse

OUT = Path(__file__).resolve().parent / "out"
WORDS = [
    "fox",
    "cat",
    "dog",
    "castle",
    "forest",
    "city",
    "night",
    "rain",
    "neon",
    "portrait",
    "landscape",
    "dragon",
    "knight",
    "robot",
    "ocean",
    "mountain",
    "flower",
    "girl",
    "boy",
    "warrior",
    "witch",
    "ship",
    "space",
    "galaxy",
    "sunset",
    "snow",
    "desert",
    "temple",
    "samurai",
    "cyberpunk",
    "steampunk",
    "watercolor",
    "oil",
    "painting",
    "photo",
    "cinematic",
    "anime",
    "sketch",
    "lighthouse",
    "cabin",
    "river",
    "bridge",
    "tower",
    "garden",
    "market",
    "street",
    "cafe",
]
SAMPLERS = ["Euler a", "Euler", "DPM++ 2M", "DPM++ SDE", "UniPC", "DDIM", "dpmpp_2m", "euler"]
MODELS = [f"model_{i}" for i in range(60)]


def build(path: Path, n: int, n_prompts: int, n_tags: int) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    conn = connect(path / "catalog.sqlite")
    conn.execute("PRAGMA synchronous = OFF")
    rng = random.Random(1)
    nrng = np.random.default_rng(1)
    t = time.perf_counter()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO roots(path, added_at) VALUES ('/bench', 0)")
    prompts = []
    for i in range(n_prompts):
        words = rng.sample(WORDS, rng.randint(4, 12))
        prompts.append((i + 1, f"{', '.join(words)}, variant {i}"))
    conn.executemany("INSERT INTO prompts(id, text) VALUES (?, ?)", prompts)
    conn.executemany(
        "INSERT INTO tags(id, name, created_at) VALUES (?, ?, 0)",
        [(i + 1, f"tag{i}") for i in range(n_tags)],
    )
    start = 1_700_000_000.0
    two_years = 2 * 365 * 86400
    prompt_of = (nrng.zipf(1.3, n) - 1) % n_prompts + 1
    batch_times = np.sort(start + nrng.random(n // 8 + 1) * two_years)
    rows = []
    for i in range(n):
        created = float(batch_times[i // 8])  # 8 images per batch share one timestamp
        rows.append(
            (
                i + 1,
                f"{i:032x}",
                1000,
                "png",
                1024,
                rng.choice((1024, 1536, 768)),
                created,
                created,
                "a1111",
                MODELS[i % 60],
                SAMPLERS[i % 8],
                20 + i % 21,
                5 + (i % 8),
                i * 7919 % 4_000_000_000,
                int(prompt_of[i]),
                rng.randint(0, 5) if i % 10 == 0 else None,
            )
        )
        if len(rows) == 50_000:
            _insert_images(conn, rows)
            rows = []
    _insert_images(conn, rows)
    tag_pick = (nrng.zipf(1.4, n * 3) - 1) % n_tags + 1
    it = np.column_stack([tag_pick, np.repeat(np.arange(1, n + 1), 3)])
    conn.executemany(
        "INSERT OR IGNORE INTO image_tags(tag_id, image_id, source, created_at) "
        "VALUES (?, ?, 'user', 0)",
        ((int(a), int(b)) for a, b in it),
    )
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()
    print(
        f"built {n:,} images, {n_prompts:,} prompts, {n_tags:,} tags in "
        f"{time.perf_counter() - t:.0f} s",
        file=sys.stderr,
    )


def _insert_images(conn: object, rows: list[tuple]) -> None:
    conn.executemany(  # type: ignore[attr-defined]
        "INSERT INTO images(id, content_hash, bytes, format, width, height, created_at, "
        "indexed_at, generator, model, sampler, steps, cfg_scale, seed, prompt_id, rating) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def timed(fn, repeats: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    fn()  # warm
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--prompts", type=int, default=200_000)
    ap.add_argument("--tags", type=int, default=5_000)
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = ap.parse_args()
    path = OUT / f"query-{args.images}"
    if args.rebuild or not (path / "catalog.sqlite").exists():
        build(path, args.images, args.prompts, args.tags)
    lite = connect(path / "catalog.sqlite")
    engines: list[tuple[str, object]] = [("SQLite", lite)]
    if args.backend == "postgresql":
        engines.append(("PostgreSQL", postgres_copy(lite, args.images)))
    mid = lite.execute(
        "SELECT created_at, id FROM images ORDER BY created_at DESC, id DESC "
        f"LIMIT 1 OFFSET {args.images // 2}"
    ).fetchone()
    results = [[(name, *timed(fn, args.repeats)) for name, fn in cases(conn, mid)]
               for _, conn in engines]  # fmt: skip
    headers = [f"query ({args.images:,} images)"]
    for engine, _ in engines:
        headers += [f"{engine} p50 ms", f"{engine} p95 ms"]
    rows = []
    for i, (name, *_) in enumerate(results[0]):
        row = [name]
        for r in results:
            row += [f"{r[i][1]:.1f}", f"{r[i][2]:.1f}"]
        rows.append(row)
    print_table(headers, rows, note_last=False)


def postgres_copy(lite: object, n: int) -> object:
    """The bench catalog on PostgreSQL, copied once (reused while its image count matches)."""
    import warnings

    import pgserver
    import psycopg

    from dreamdepot.catalog.postgres import copy_library

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(OUT / "pgdata", cleanup_mode=None)
    name = f"dd_query_{n}"
    if not server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';").count("1 row"):
        server.psql(f"CREATE DATABASE {name};")
    url = server.get_uri(name)
    conn = psycopg.connect(url, autocommit=True)
    have = 0
    if conn.execute("SELECT to_regclass('images')").fetchone()[0]:
        have = conn.execute("SELECT count(*) FROM images").fetchone()[0]
    if have != n:
        t = time.perf_counter()
        reports = copy_library(lite, url)  # type: ignore[arg-type]
        assert all(r.same for r in reports), [r.name for r in reports if not r.same]
        conn.execute("ANALYZE")
        print(f"copied to PostgreSQL in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return conn


def cases(conn: object, mid: tuple[float, int]) -> list[tuple[str, object]]:
    page = lambda q, cursor=None: catalog_images.search(conn, q, 100, cursor)  # noqa: E731
    # a cursor about half way down the newest-first order
    deep = catalog_images.encode_cursor(parse("").sort, mid[0], mid[1])
    common = parse("tag:tag3 steps:25..35")
    cases: list[tuple[str, object]] = [
        ("first page, no filter", lambda: page("")),
        ("one-tag filter, first page (tag:tag0, most used)", lambda: page("tag:tag0")),
        ("one-tag filter, mid-frequency tag (tag:tag40)", lambda: page("tag:tag40")),
        ("one-tag filter, rare tag (tag:tag3000)", lambda: page("tag:tag3000")),
        ('FTS rare phrase ("variant 123456")', lambda: page('"variant 123456"')),
        ("three-tag AND (tag:tag0 tag:tag1 tag:tag2)", lambda: page("tag:tag0 tag:tag1 tag:tag2")),
        ("tag + field range (tag:tag3 steps:25..35)", lambda: page("tag:tag3 steps:25..35")),
        ("FTS prompt word (lighthouse)", lambda: page("lighthouse")),
        ("FTS two words + prefix (castle nig*)", lambda: page("castle nig*")),
        ("page at ~50% depth (cursor)", lambda: page("", deep)),
        (
            "tag counts for a query (steps:25..35)",
            lambda: catalog_tags.tag_counts(conn, parse("steps:25..35"), 50),
        ),
        (
            "tag counts for tag + range",
            lambda: catalog_tags.tag_counts(conn, common, 50),
        ),
        ("tag counts, whole library", lambda: catalog_tags.tag_counts(conn, None, 50)),
        (
            "tag counts for a rare tag (tag:tag3000)",
            lambda: catalog_tags.tag_counts(conn, parse("tag:tag3000"), 50),
        ),
    ]
    return cases


if __name__ == "__main__":
    main()
