"""ComfyUI client overhead: `python bench/comfyui.py` prints a table.

Runs the real client (`generate/comfyui.py`) against the test suite's ComfyUI stand-in
(`tests/fake_comfyui.py`, which follows ComfyUI's server: messages only to sockets connected at
the time, instant execution, answers from its cache) set to finish instantly, so what is
measured is the client's own overhead per run: open the socket, queue, follow the socket and
history, fetch the outputs. Issue #20's target: under a second for a fast or cached run.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _table import print_table
from dreamdepot.generate.base import GenerateRequest
from dreamdepot.generate.comfyui import ComfyUIBackend
from test_generate import FakeComfy


def main(runs: int = 20) -> None:
    fresh, cached = [], []
    with FakeComfy(start_delay=0, steps_delay=0) as fake:
        client = ComfyUIBackend(fake.url, timeout=10)
        for i in range(runs):
            req = GenerateRequest(prompt=f"bench {i}", seed=i, steps=2, width=64, height=64)
            t = time.perf_counter()
            client.txt2img(req)
            fresh.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            client.txt2img(req)  # the same graph again: ComfyUI answers from its cache
            cached.append((time.perf_counter() - t) * 1000)
    rows = [
        (f"instant run, median / max of {runs}",
         f"{statistics.median(fresh):.0f} / {max(fresh):.0f} ms", "target < 1,000 ms"),
        (f"cached run, median / max of {runs}",
         f"{statistics.median(cached):.0f} / {max(cached):.0f} ms", "target < 1,000 ms"),
    ]  # fmt: skip
    print_table(("measure", "value", "note"), rows)


if __name__ == "__main__":
    main()
