"""Dream-cache benchmark: `python bench/cache.py [--sizes 100000,1000000]` prints a table.

1. The full decision (`DreamCache.lookup`: embed the request, search the vectors, align the
   candidates, compare parameters in SQL, fetch the answer's images) on a real SQLite catalog
   of N cached prompts, each with one image and one present file. The prompts are real:
   every prompt of the evaluation sets (bench/data/cache_eval_v2.txt, _v3.txt) and the demo
   library, each written many times over with different quality tags and weights, as a real
   library's near-duplicates are; their vectors are the real embeddings of their content
   text, exactly what the library would store. The requests are the evaluation pairs' other
   sides, so every lookup has candidates above the threshold and runs the alignment; about
   half of them hit. The vectors are put straight into the library's in-memory index (the
   same NumpyIndex `serve` loads from the embeddings table), so building 1M rows does not
   need 1M embeddings.
   Reported: steady state (word vectors cached, as in a running server) and the first pass.
2. Embedding throughput at ingest (prompts/s, batches of 256) and one at a time.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _table import print_table
from cache_eval import SECOND_HELD_OUT, load_eval_set
from dreamdepot.semantic import service
from dreamdepot.semantic.cache import DreamCache, DreamRequest
from dreamdepot.semantic.embedders import load_embedder
from dreamdepot.semantic.terms import content_text
from dreamdepot.semantic.vectors import PromptVectors

QUALITY = [
    "masterpiece", "best quality", "8k", "highly detailed", "absurdres", "very aesthetic",
    "sharp focus", "award winning", "ultra detailed", "high resolution", "4k", "amazing quality",
]  # fmt: skip
TARGETS = {100_000: "p95 <= 25 ms", 1_000_000: "p95 <= 120 ms"}


def real_prompts() -> tuple[list[str], list[str]]:
    """(bases stored in the library, requests asked of it)."""
    from dreamdepot.demo import SUBJECTS

    pairs = load_eval_set() + load_eval_set(SECOND_HELD_OUT, "v3")
    bases = sorted({p.a for p in pairs} | set(SUBJECTS))
    return bases, [p.b for p in pairs]


def near_duplicate(base: str, rng: random.Random) -> str:
    tags = rng.sample(QUALITY, rng.randint(1, 4))
    if rng.random() < 0.5:
        tags[0] = f"({tags[0]}:{rng.choice(['1.1', '1.2', '1.3', '0.9'])})"
    return ", ".join([*tags, base] if rng.random() < 0.5 else [base, *tags])


def build(path: Path, n: int, bases: list[str]) -> Path:
    """A catalog of ``n`` prompts (near-duplicates of ``bases``), one image and file each."""
    from dreamdepot.library import Library

    with Library.open(path) as lib:
        catalog_file = Path(service.catalog_file(lib.conn))
    conn = sqlite3.connect(catalog_file)
    conn.execute("PRAGMA synchronous = OFF")
    now = time.time()
    conn.execute("INSERT INTO roots(id, path, added_at) VALUES (1, '/bench/pics', ?)", (now,))
    rng = random.Random(7)
    seen: set[str] = set()
    texts: list[str] = []
    while len(texts) < n:
        text = near_duplicate(bases[len(texts) % len(bases)], rng)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    conn.executemany(
        "INSERT INTO prompts(id, text, first_seen, last_seen) VALUES (?, ?, ?, ?)",
        ((i + 1, t, now, now) for i, t in enumerate(texts)),
    )
    conn.executemany(
        "INSERT INTO images(id, content_hash, bytes, format, width, height, created_at, "
        "indexed_at, generator, model, sampler, steps, cfg_scale, seed, prompt_id) "
        "VALUES (?, ?, 1000, 'png', 512, 512, ?, ?, 'a1111', 'sdxl', 'Euler a', 20, 7, ?, ?)",
        ((i + 1, f"{i:032x}", now, now, i, i + 1) for i in range(n)),
    )
    conn.executemany(
        "INSERT INTO files(root_id, rel_path, size, mtime_ns, image_id, first_seen, last_seen) "
        "VALUES (1, ?, 1000, 0, ?, ?, ?)",
        ((f"{i}.png", i + 1, now, now) for i in range(n)),
    )
    conn.commit()
    conn.close()
    return catalog_file


def lookups(n: int, bases: list[str], requests: list[str], emb: object, tmp: Path) -> tuple:
    vectors_by_base = dict(zip(bases, emb.embed_texts(bases), strict=True))  # type: ignore[attr-defined]
    t = time.perf_counter()
    catalog_file = build(tmp / f"lib{n}", n, bases)
    built = time.perf_counter() - t
    conn = sqlite3.connect(catalog_file, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    pv = PromptVectors(emb.model_id, emb.dim)  # type: ignore[attr-defined]
    owners = [r[0] for r in conn.execute("SELECT text FROM prompts ORDER BY id")]
    base_of = {content_text(b): b for b in bases}
    step = 100_000
    for start in range(0, n, step):
        chunk = owners[start : start + step]
        matrix = np.stack([vectors_by_base[base_of[content_text(t)]] for t in chunk])
        pv.index.add(list(range(start + 1, start + 1 + len(chunk))), matrix)
    pv.loaded = True
    service._indexes[(service.catalog_file(conn), emb.model_id, "prompt")] = pv  # type: ignore[attr-defined]
    cache = DreamCache(conn, emb)  # type: ignore[arg-type]
    rng = random.Random(11)
    asked = rng.sample(requests, 200)
    first, steady, embed_only, hits, candidates = [], [], [], 0, 0
    for round_ in range(2):
        for q in asked:
            d = cache.lookup(DreamRequest(q), log=False)
            (first if round_ == 0 else steady).append(d.lookup_ms)
            if round_:
                hits += d.hit
                candidates += d.similarity is not None and d.similarity >= 0.8
                t = time.perf_counter()
                emb.embed_texts([q])  # type: ignore[attr-defined]
                embed_only.append((time.perf_counter() - t) * 1000)
    del pv, service._indexes[(service.catalog_file(conn), emb.model_id, "prompt")]
    conn.close()
    return (
        sorted(first),
        sorted(steady),
        sorted(embed_only),
        hits / len(asked),
        candidates / len(asked),
        built,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    args = ap.parse_args()
    emb = load_embedder()
    emb.embed_texts(["warm up"])
    bases, requests = real_prompts()
    rows: list[tuple[str, str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="dd-cache-"))
    try:
        for n in (int(x) for x in args.sizes.split(",")):
            first, steady, embed_only, hit_rate, cand, built = lookups(n, bases, requests, emb, tmp)
            p95 = steady[int(len(steady) * 0.95) - 1]
            rows.append(
                (
                    f"full decision incl. embedding, {n:,} cached prompts (steady state)",
                    f"p50 {statistics.median(steady):.1f} / p95 {p95:.1f} ms "
                    f"(hits {hit_rate:.0%}, candidates >= 0.80: {cand:.0%})",
                    TARGETS.get(n, ""),
                )
            )
            rows.append(
                (
                    "  of which embedding the request alone (the same requests)",
                    f"p50 {statistics.median(embed_only):.1f} / p95 "
                    f"{embed_only[int(len(embed_only) * 0.95) - 1]:.1f} ms",
                    "",
                )
            )
            rows.append(
                (
                    f"  the same, first pass (word vectors not cached yet); catalog built in "
                    f"{built:.0f} s",
                    f"p50 {statistics.median(first):.1f} / p95 "
                    f"{first[int(len(first) * 0.95) - 1]:.1f} ms",
                    "",
                )
            )
            shutil.rmtree(tmp / f"lib{n}", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prompts = [f"{random.Random(i).choice(bases)}, variant {i}" for i in range(2048)]
    t = time.perf_counter()
    for i in range(0, len(prompts), 256):
        emb.embed_texts(prompts[i : i + 256])
    dt = time.perf_counter() - t
    rows.append(("embedding at ingest (batches of 256)", f"{len(prompts) / dt:,.0f} prompts/s", ""))
    t = time.perf_counter()
    for p in prompts[:100]:
        emb.embed_texts([p])
    rows.append(
        ("embedding one prompt at a time", f"{100 / (time.perf_counter() - t):,.0f} /s", "")
    )
    print_table(("measure", "value", "target"), rows)


if __name__ == "__main__":
    main()
