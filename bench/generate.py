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


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="dd-gen-"))
    try:
        model = write_tiny_model(tmp / "tiny")
        with Library.open(tmp / "lib") as lib:
            queue = JobQueue(lib.path, make_backend(lib.settings, "diffusers", str(model)))
            totals, pipeline, overhead = [], [], []
            for i in range(25):
                t = time.perf_counter()
                job_id = queue.submit(
                    GenerateRequest(prompt=f"bench {i}", steps=2, width=64, height=64, seed=i)
                )
                job = queue.run(job_id)
                total = time.perf_counter() - t
                assert job["status"] == "done", job
                if i < 3:
                    continue  # model load and first-call warm-up
                totals.append(total * 1000)
                pipeline.append(job["backend_seconds"] * 1000)
                overhead.append((total - job["backend_seconds"]) * 1000)
            queue.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = [
        (
            "job end to end, 64x64, 2 steps (median of 22)",
            f"{statistics.median(totals):.1f} ms",
            "",
        ),
        ("  of which the pipeline call", f"{statistics.median(pipeline):.1f} ms", ""),
        (
            "  queue + write + ingest overhead (median)",
            f"{statistics.median(overhead):.1f} ms",
            "target <= 50 ms",
        ),
        ("  overhead p95", f"{sorted(overhead)[int(len(overhead) * 0.95) - 1]:.1f} ms", ""),
    ]
    print_table(("measure", "value", "note"), rows)
    print(
        "A real-size SD 1.5 pipeline on a GPU was not measured: no accelerator was lent to "
        "this task."
    )


if __name__ == "__main__":
    main()
