"""Auto-tagging benchmark: `python bench/autotag.py` prints images/s per tagger and for the
default set (prompt, colour, faces) on 1024x1024 images, with peak memory.

Sources: the nine 1024² real generated images of ../shared/corpus, copied (with one byte
appended so each is a distinct image) to 90 files.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_table
from dreamdepot.library import Library
from dreamdepot.tagging.stage import autotag, build_taggers
from thumbs import sources


def main() -> None:
    paths = sources()
    if not paths:
        sys.exit("needs ../shared/corpus with its 1024x1024 images")
    tmp = Path(tempfile.mkdtemp(prefix="dd-autotag-"))
    rows = []
    try:
        root = tmp / "src"
        root.mkdir()
        for i in range(90):
            src = paths[i % len(paths)]
            (root / f"{i:03d}{src.suffix}").write_bytes(src.read_bytes() + bytes([i]))
        with Library.open(tmp / "lib") as lib:
            lib.indexer().scan([lib.add_root(root)])
            for names in (["prompt"], ["colour"], ["faces"], ["prompt", "colour", "faces"]):
                taggers, problems = build_taggers(lib.settings, lib.path, names)
                if problems:
                    rows.append((", ".join(names), "unavailable", "; ".join(problems)))
                    continue
                t = time.perf_counter()
                result = autotag(lib.conn, taggers, force=True)
                dt = time.perf_counter() - t
                label = "default set: " + ", ".join(names) if len(names) > 1 else names[0]
                rows.append(
                    (
                        label,
                        f"{result.images / dt:.1f} images/s",
                        "target >= 10/s" if len(names) > 1 else "",
                    )
                )
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        rows.append(
            ("peak memory (max RSS: main process / a worker)", f"{own:.0f} / {kids:.0f} MB", "")
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(("tagger (90 images of 1024x1024, 2 worker processes)", "value", "note"), rows)


if __name__ == "__main__":
    main()
