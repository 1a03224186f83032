"""Generation bookkeeping benchmark: `python bench/generate.py` prints a table.

What the job queue adds around the back end's call: queueing and claiming, state updates
and heartbeat, writing the PNG with its metadata, ingesting it (probe, catalog rows,
lineage). Target: <= 50 ms per job.

- 64x64: the real local diffusers back end on the tiny random pipeline
  (`dreamdepot dev tiny-model`), 2 steps.
- 512x512 and 1024x1024: the same job path, with a back end that returns a real generated
  picture at once (a 1024x1024 image of ../shared/corpus, resized for 512; a synthetic one
  when the corpus is absent), because the tiny random pipeline's attention makes those sizes
  take minutes on a CPU. The overhead measured is the queue's, not the pipeline's: the PNG
  encode of a real picture is most of it.
"""

from __future__ import annotations

import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from PIL import Image

from _table import print_table
from dreamdepot.generate.base import BackendResult, GeneratedImage, GenerateRequest
from dreamdepot.generate.diffusers_local import write_tiny_model
from dreamdepot.generate.jobs import JobQueue
from dreamdepot.generate.service import make_backend
from dreamdepot.library import Library

CORPUS_PICTURE = Path(__file__).resolve().parents[2] / "shared/corpus/files/enslo__sd-webui.png"


def picture(side: int) -> bytes:
    if CORPUS_PICTURE.is_file():
        im = Image.open(CORPUS_PICTURE).convert("RGB").resize((side, side), Image.LANCZOS)
    else:  # smooth gradients with grain: compresses like a generated image, not like noise
        im = Image.radial_gradient("L").resize((side, side)).convert("RGB")
        im = Image.blend(im, Image.effect_noise((side, side), 24).convert("RGB"), 0.3)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


class InstantBackend:
    """Answers every request at once with the same picture, as a server would send it."""

    name = "instant"

    def __init__(self) -> None:
        self.pictures: dict[int, bytes] = {}

    def txt2img(self, req: GenerateRequest, on_progress: Any = None) -> BackendResult:
        if req.width not in self.pictures:  # made once per size, outside the measured jobs
            self.pictures[req.width] = picture(req.width)
        return BackendResult([GeneratedImage(self.pictures[req.width], req.seed)], 0.0)

    def img2img(self, req: GenerateRequest, init: bytes, on_progress: Any = None) -> Any:
        return self.txt2img(req)

    def upscale(self, req: GenerateRequest, image: bytes) -> Any:
        return self.txt2img(req)

    def models(self) -> list[str]:
        return []

    def progress(self) -> float:
        return 0.0

    def cancel(self) -> None:
        pass


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def run_jobs(queue: JobQueue, side: int, count: int, warmup: int = 3) -> list[tuple[float, float]]:
    """(total ms, back-end ms) per job after ``warmup`` jobs."""
    out = []
    for i in range(count + warmup):
        t = time.perf_counter()
        job_id = queue.submit(
            GenerateRequest(prompt=f"bench {side} {i}", steps=2, width=side, height=side, seed=i)
        )
        job = queue.run(job_id)
        total = time.perf_counter() - t
        assert job["status"] == "done", job
        if i >= warmup:
            out.append((total * 1000, (job["backend_seconds"] or 0.0) * 1000))
    return out


def rows_for(label: str, measured: list[tuple[float, float]]) -> list[tuple[str, str, str]]:
    totals = [t for t, _ in measured]
    overhead = [t - b for t, b in measured]
    return [
        (f"{label} (median of {len(measured)})", f"{statistics.median(totals):.1f} ms", ""),
        ("  of which the back end", f"{statistics.median(b for _, b in measured):.1f} ms", ""),
        (
            "  queue + PNG write + ingest overhead, median",
            f"{statistics.median(overhead):.1f} ms",
            "target <= 50 ms",
        ),
        ("  overhead p95", f"{p95(overhead):.1f} ms", ""),
    ]


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dd-gen-"))
    rows: list[tuple[str, str, str]] = []
    try:
        model = write_tiny_model(tmp / "tiny")
        with Library.open(tmp / "lib") as lib:
            tiny = JobQueue(lib.path, make_backend(lib.settings, "diffusers", model=str(model)))
            rows += rows_for("job, 64x64, tiny diffusers pipeline, 2 steps", run_jobs(tiny, 64, 22))
            tiny.close()
            instant = JobQueue(lib.path, InstantBackend())
            for side, count in ((512, 20), (1024, 12)):
                rows += rows_for(
                    f"job, {side}x{side}, real picture from an instant back end",
                    run_jobs(instant, side, count),
                )
            instant.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(("measure", "value", "note"), rows)
    print(
        "A real-size SD 1.5 pipeline on a GPU was not measured: no accelerator was lent to "
        "this task."
    )


if __name__ == "__main__":
    main()
