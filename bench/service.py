"""Shared-instance benchmark (issue #16): `python bench/service.py` prints a table.

One real `dreamdepot serve` on loopback with its catalog in PostgreSQL 16 (pgserver, data
under bench/out/pgdata) and its files in moto's standalone S3 server (the stand-in the tests
use), 50 users with API keys. First every user uploads 20 realistic files (1,000 in all:
512x512 PNGs with A1111 parameters and camera-like grain, ~0.4 MB each), five users at a
time; then all 50 act at once for ``--seconds``: browse a page of the grid, open an image's
detail, fetch its thumbnail, tag one of their own images, and ask the dream cache (the
mix a person clicking through the UI makes). Latency per request type (p50/p95), errors,
and upload throughput (files/s and MB/s). The browsing starts once the server's own
background stage has made the uploads' thumbnails and prompt vectors.

Besides the latency the client sees, each request type's p95 after the first 3 s (when the
50 users no longer ask for their first page in the same instant) and its time inside the
server, read from the server's own histogram (`/metrics`, with an admin key): the share
answered within 150 ms and the bucket under which 95% were.

Targets (issue #16): p95 <= 150 ms for browsing and tagging, 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, PngImagePlugin  # noqa: E402

from _pg import fresh_database  # noqa: E402
from _table import print_table  # noqa: E402

OUT = ROOT / "bench" / "out"
DREAMDEPOT = [sys.executable, "-m", "dreamdepot.cli"]
USERS = 50
FILES_PER_USER = 20
SUBJECTS = ["a lighthouse", "a fox", "a castle", "a harbour", "a robot", "a forest", "a city"]
STYLES = ["at dusk", "in the rain", "oil painting", "watercolor", "cinematic", "isometric"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database() -> str:
    return fresh_database("dd_service")


def picture(rng: np.random.Generator, prompt: str, seed: int) -> bytes:
    """A 512x512 PNG that compresses like a generated image (smooth fields plus grain)."""
    base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    im = Image.fromarray(base).resize((512, 512), Image.BICUBIC)
    grain = rng.normal(0, 6, (512, 512, 3))
    arr = np.clip(np.asarray(im, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add_text(
        "parameters",
        f"{prompt}\nNegative prompt: blurry, lowres\nSteps: 28, Sampler: DPM++ 2M, "
        f"Schedule type: Karras, CFG scale: 6.5, Seed: {seed}, Size: 512x512, "
        "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1",
    )
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def prompt_of(user: int, i: int) -> str:
    return f"{SUBJECTS[(user + i) % len(SUBJECTS)]} {STYLES[i % len(STYLES)]}, take {user}"


def wait_for_thumbnails(url: str, lib: Path, n: int, timeout: float = 900) -> None:
    """Until the server's media and embedding stages have caught up with the uploads."""
    from dreamdepot.catalog.db import Catalog

    catalog = Catalog.open(url, library_dir=lib)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            made = catalog.conn.execute(
                "SELECT count(*) FROM images WHERE thumb_key IS NOT NULL"
            ).fetchone()[0]
            unembedded = catalog.conn.execute(
                "SELECT count(*) FROM prompts p WHERE NOT EXISTS (SELECT 1 FROM embeddings e "
                "WHERE e.owner_kind = 'prompt' AND e.owner_id = p.id)"
            ).fetchone()[0]
            if made >= n and unembedded == 0:
                return
            time.sleep(1.0)
    finally:
        catalog.close()
    raise RuntimeError("the background stages did not finish")


ROUTES = {  # the request types, as the server's latency histogram names their routes
    "browse a page (100 images)": ("GET", "/api/images"),
    "image detail": ("GET", "/api/images/{image_id}"),
    "thumbnail": ("GET", "/api/thumbs/{content_hash}/{size}.avif"),
    "tag one image": ("POST", "/api/tags"),
    "dream cache lookup": ("POST", "/api/dream"),
}


def server_side(base: str, admin_key: str) -> dict[str, tuple[float, float]]:
    """Per request type, from the server's own histogram (``/metrics``): the share answered
    within 150 ms, and the bucket bound under which 95% were answered — the time inside the
    server, without the client's and the loopback's."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(
        base + "/metrics", headers={"Authorization": f"Bearer {admin_key}"}, timeout=30
    ).text
    buckets: dict[tuple[str, str], dict[float, float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "dreamdepot_http_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                key = (sample.labels["method"], sample.labels["route"])
                le = float(sample.labels["le"])
                into = buckets.setdefault(key, {})
                into[le] = into.get(le, 0.0) + sample.value  # summed over status codes
    out = {}
    for kind, key in ROUTES.items():
        cumulative = sorted(buckets.get(key, {}).items())
        total = cumulative[-1][1] if cumulative else 0.0
        if not total:
            continue
        within = dict(cumulative).get(0.15, 0.0) / total
        p95 = next(le for le, n in cumulative if n >= 0.95 * total)
        out[kind] = (within, p95 * 1000)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


SETTLE_S = 3.0  # the first seconds, when all 50 users ask for their first page at once


class Stats:
    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {}
        self.settled: dict[str, list[float]] = {}  # those that began after SETTLE_S
        self.errors: dict[str, int] = {}
        self.began = time.perf_counter()

    async def timed(self, kind: str, call: Any) -> Any:
        started = time.perf_counter()
        try:
            r = await call
        except httpx.HTTPError:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            return None
        ms = (time.perf_counter() - started) * 1000
        self.ms.setdefault(kind, []).append(ms)
        if started - self.began >= SETTLE_S:
            self.settled.setdefault(kind, []).append(ms)
        if r.status_code >= 400:
            self.errors[kind] = self.errors.get(kind, 0) + 1
        return r


async def act(
    base: str, key: str, own: list[int], stats: Stats, until: float, rng: random.Random
) -> None:
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as c:
        while time.monotonic() < until:
            page = await stats.timed(
                "browse a page (100 images)", c.get("/api/images", params={"limit": 100})
            )
            items = page.json()["items"] if page is not None and page.status_code == 200 else []
            if items:
                pick = rng.choice(items)
                await stats.timed("image detail", c.get(f"/api/images/{pick['id']}"))
                await stats.timed("thumbnail", c.get(pick["thumbnail_url"]))
            if own:
                await stats.timed(
                    "tag one image",
                    c.post(
                        "/api/tags",
                        json={"tags": [f"pick-{rng.randrange(5)}"], "ids": [rng.choice(own)]},
                    ),
                )
            prompt = f"{rng.choice(SUBJECTS)} {rng.choice(STYLES)}"
            await stats.timed(
                "dream cache lookup",
                c.post("/api/dream", json={"prompt": prompt, "match_size": "any"}),
            )


async def upload_all(
    base: str, keys: list[str], files: list[list[tuple[str, bytes]]], owned: dict[str, list[int]]
) -> float:
    sem = asyncio.Semaphore(5)

    async def one_user(key: str, mine: list[tuple[str, bytes]]) -> None:
        async with (
            sem,
            httpx.AsyncClient(
                base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120
            ) as c,
        ):
            for name, data in mine:
                r = await c.post("/api/uploads", files={"files": (name, data)})
                r.raise_for_status()
                owned.setdefault(key, []).append(r.json()["items"][0]["id"])

    started = time.perf_counter()
    await asyncio.gather(*(one_user(k, f) for k, f in zip(keys, files, strict=True)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the 50 users act")
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    from dreamdepot import accounts
    from dreamdepot.catalog.db import Catalog

    OUT.mkdir(parents=True, exist_ok=True)
    lib = OUT / "service-library"
    shutil.rmtree(lib, ignore_errors=True)
    lib.mkdir(parents=True)
    s3_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
    moto.start()
    url = database()
    env = dict(
        os.environ, DREAMDEPOT_DATABASE_URL=url, DREAMDEPOT_STORAGE="s3://dd-bench/library",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}", AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1", DREAMDEPOT_AUTOTAG="",
        PYTHONPATH=str(ROOT / "src"),
    )  # fmt: skip
    os.environ.update({k: v for k, v in env.items() if k.startswith(("AWS_", "DREAMDEPOT_"))})
    import boto3

    boto3.client("s3").create_bucket(Bucket="dd-bench")
    catalog = Catalog.open(url, library_dir=lib)
    accounts.add_user(catalog.conn, "root", "admin", "bench-admin-password")
    keys = []
    for k in range(USERS):
        accounts.add_user(catalog.conn, f"user{k:02d}", "member")
        keys.append(
            accounts.create_api_key(
                catalog.conn, f"user{k:02d}", "bench", ["read", "write", "generate"]
            )
        )
    admin_key = accounts.create_api_key(catalog.conn, "root", "bench", ["read", "admin"])
    catalog.close()
    rng = np.random.default_rng(16)
    files = [
        [
            (f"{u:02d}-{i:02d}.png", picture(rng, prompt_of(u, i), u * 100 + i))
            for i in range(FILES_PER_USER)
        ]
        for u in range(USERS)
    ]
    total_bytes = sum(len(d) for f in files for _, d in f)
    port = free_port()
    serve = ["serve", "--port", str(port), "--no-browser", "--no-demo"]
    server = subprocess.Popen(
        [*DREAMDEPOT, "--library", str(lib), *serve],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    rows: list[list[object]] = []
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/api/me", timeout=2).status_code == 401:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.3)
        owned: dict[str, list[int]] = {}
        seconds = asyncio.run(upload_all(base, keys, files, owned))
        n = USERS * FILES_PER_USER
        mb = total_bytes / 1e6
        rows.append(
            [f"upload {n} files ({mb:.0f} MB), 5 at a time", n, f"{n / seconds:.1f} files/s",
             f"{mb / seconds:.1f} MB/s", "", "", "", "", ""]
        )  # fmt: skip
        wait_for_thumbnails(url, lib, n)  # the server's background stage, after the uploads
        # every user shares half of their images: the others browse and dream over them
        catalog = Catalog.open(url, library_dir=lib)
        with catalog.transaction() as conn:
            conn.execute("UPDATE images SET shared = 1 WHERE id % 2 = 0")
        catalog.close()
        stats = Stats()  # its clock starts as the users do
        until = time.monotonic() + args.seconds

        async def everyone() -> None:
            await asyncio.gather(
                *(
                    act(base, k, owned[k], stats, until, random.Random(i))
                    for i, k in enumerate(keys)
                )
            )

        asyncio.run(everyone())
        inside = server_side(base, admin_key)
        for kind, ms in stats.ms.items():
            target = "p95 <= 150 ms" if kind.startswith(("browse", "image", "thumb", "tag")) else ""
            within, bound = inside.get(kind, (float("nan"), float("nan")))
            settled = stats.settled.get(kind) or [float("nan")]
            rows.append([kind, len(ms), f"{statistics.median(ms):.1f}", f"{pct(ms, 0.95):.1f}",
                         f"{pct(settled, 0.95):.1f}", stats.errors.get(kind, 0),
                         f"{within:.0%}", f"<= {bound:.0f}", target])  # fmt: skip
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        moto.stop()
    headers = ["request (50 users at once)", "n", "p50 (ms)", "p95 (ms)"]
    headers += [f"p95 after {SETTLE_S:.0f} s (ms)", "errors"]
    headers += ["in server <= 150 ms", "in server p95 (ms)", "target"]
    print_table(headers, rows)


if __name__ == "__main__":
    main()
