"""Dream-cache benchmark: `python bench/cache.py` prints a table.

1. Lookup latency including the query's embedding (MiniLM, one prompt) at 10k, 100k and 1M
   cached prompts: the index holds synthetic clustered unit vectors (as issue #6 allows for
   the index part); the top candidates then go through the intent check.
2. Embedding throughput at ingest (prompts/s, batches of 256).
3. A real hit end to end (DreamCache.lookup on a demo library, SQL included).
"""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _table import print_table
from dreamdepot.semantic.cache import DEFAULT_THRESHOLD, DreamCache, DreamRequest
from dreamdepot.semantic.embedders import load_embedder
from dreamdepot.semantic.intent import same_intent
from dreamdepot.semantic.vectors import NumpyIndex

QUERIES = [
    "a cute corgi puppy wearing a yellow raincoat, rainy street, photo",
    "masterpiece, best quality, cyberpunk city street at night, neon signs",
    "an astronaut riding a horse on the moon, photorealistic, 8k",
    "portrait of an old fisherman, dramatic lighting, oil painting",
    "a cozy cabin in an autumn forest, warm light, fog",
]


def synthetic_index(n: int, dim: int, rng: np.random.Generator) -> NumpyIndex:
    """Clustered unit vectors: 2,000 topics, each prompt a topic plus noise."""
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    index = NumpyIndex(dim)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        v = centres[rng.integers(0, 2000, m)] + 0.6 * rng.standard_normal((m, dim)).astype(
            np.float32
        )
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        index.add(list(range(start, start + m)), v)
    return index


def main() -> None:
    rng = np.random.default_rng(3)
    emb = load_embedder()
    emb.embed_texts(["warm up"])
    rows: list[tuple[str, str, str]] = []
    texts = {i: random.Random(i).choice(QUERIES) for i in range(64)}
    for n in (10_000, 100_000, 1_000_000):
        index = synthetic_index(n, emb.dim, rng)
        samples = []
        for i in range(40):
            q = QUERIES[i % len(QUERIES)]
            t = time.perf_counter()
            vector = emb.embed_texts([q])[0]
            found = index.search(vector, 20)
            for pid, score in found:
                if score >= DEFAULT_THRESHOLD:
                    same_intent(q, texts[pid % 64])
            samples.append((time.perf_counter() - t) * 1000)
        samples.sort()
        target = {100_000: "p95 <= 25 ms", 1_000_000: "p95 <= 120 ms"}.get(n, "")
        rows.append(
            (
                f"lookup incl. embedding, {n:,} cached prompts",
                f"p50 {statistics.median(samples):.1f} / p95 {samples[37]:.1f} ms",
                target,
            )
        )
        del index
    prompts = [
        f"{random.Random(i).choice(QUERIES)}, variant {i}, style {i % 17}" for i in range(2048)
    ]
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

    tmp = Path(tempfile.mkdtemp(prefix="dd-cache-"))
    try:
        from dreamdepot.demo import make_demo_images
        from dreamdepot.library import Library
        from dreamdepot.semantic.service import embed_pending

        with Library.open(tmp / "lib") as lib:
            lib.indexer().scan([lib.add_root(make_demo_images(tmp, 300))])
            embed_pending(lib.conn, emb)
            cache = DreamCache(lib.conn, emb)
            hits = []
            for _ in range(20):
                d = cache.lookup(DreamRequest("masterpiece, a red fox in the snow, oil painting"))
                assert d.hit, d.reason
                hits.append(d.lookup_ms)
        rows.append(
            (
                "a real hit end to end (embed, search, check, SQL), 300-image library",
                f"p50 {statistics.median(hits):.1f} ms",
                "vs ~10,000 ms to generate (assumed: no back end here)",
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(("measure", "value", "target"), rows)


if __name__ == "__main__":
    main()
