"""Generation bookkeeping benchmark: `python bench/generate.py` prints a table.

Runs jobs on the tiny random pipeline (`dreamdepot dev tiny-model`) and measures what the
queue adds around the pipeline call: queueing, state updates, writing the PNG with its
metadata, ingesting it (probe, catalog rows, lineage). Target: <= 50 ms per job.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _table import print_table
from dreamdepot.generate.base import GenerateRequest
from dreamdepot.generate.diffusers_local import write_tiny_model
from dreamdepot.generate.jobs import JobQueue
from dreamdepot.generate.service import make_backend
from dreamdepot.library import Library

SIZES = ((64, 25), (512, 10), (1024, 6))  # (side, jobs); the first 3 jobs warm up


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dd-gen-"))
    rows = []
    try:
        model = write_tiny_model(tmp / "tiny")
        with Library.open(tmp / "lib") as lib:
            queue = JobQueue(lib.path, make_backend(lib.settings, "diffusers", model=str(model)))
            for side, count in SIZES:
                totals, pipeline, overhead = [], [], []
                for i in range(count):
                    t = time.perf_counter()
                    job_id = queue.submit(
                        GenerateRequest(prompt=f"bench {side} {i}", steps=2, width=side,
                                        height=side, seed=i)
                    )  # fmt: skip
                    job = queue.run(job_id)
                    total = time.perf_counter() - t
                    assert job["status"] == "done", job
                    if i < 3:
                        continue  # model load and first-call warm-up at this size
                    totals.append(total * 1000)
                    pipeline.append(job["backend_seconds"] * 1000)
                    overhead.append((total - job["backend_seconds"]) * 1000)
                n = len(totals)
                rows += [
                    (f"job end to end, {side}x{side}, 2 steps (median of {n})",
                     f"{statistics.median(totals):.1f} ms", ""),
                    ("  of which the pipeline call", f"{statistics.median(pipeline):.1f} ms", ""),
                    ("  queue + PNG write + ingest overhead, median",
                     f"{statistics.median(overhead):.1f} ms", "target <= 50 ms"),
                    ("  overhead p95", f"{p95(overhead):.1f} ms", ""),
                ]  # fmt: skip
            queue.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(("measure", "value", "note"), rows)
    print(
        "A real-size SD 1.5 pipeline on a GPU was not measured: no accelerator was lent to "
        "this task."
    )


if __name__ == "__main__":
    main()
