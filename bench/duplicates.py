"""Near-duplicate threshold: `python bench/duplicates.py` prints a table.

The difference hash (64 bits, `media/thumbs.dhash`) of every real image of `../shared/corpus`
large enough to matter (≥ 256 px) is compared with (a) the same image re-saved as JPEG at
quality 80, (b) resized to half, (c) cropped by 5% — the copies a library really holds —
and (d) every *other* corpus image. `duplicates.NEAR_DISTANCE` is chosen from this table.
"""

from __future__ import annotations

import io
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from PIL import Image

from _table import print_table

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def distance(a: int, b: int) -> int:
    return bin((a ^ b) & (2**64 - 1)).count("1")


def main() -> None:
    from dreamdepot.catalog.duplicates import NEAR_DISTANCE
    from dreamdepot.media.thumbs import dhash

    images = []
    for p in sorted(CORPUS.rglob("*")):
        try:
            with Image.open(p) as im:
                im.seek(0)
                if min(im.size) >= 256:
                    images.append(im.convert("RGB"))
        except (OSError, ValueError):
            continue
    copies: dict[str, list[int]] = {"JPEG q80": [], "half size": [], "5% crop": []}
    hashes = []
    for im in images:
        h = dhash(im)
        hashes.append(h)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=80)
        copies["JPEG q80"].append(distance(h, dhash(Image.open(io.BytesIO(buf.getvalue())))))
        copies["half size"].append(distance(h, dhash(im.resize((im.width // 2, im.height // 2)))))
        w, h2 = im.size
        crop = im.crop((w // 40, h2 // 40, w - w // 40, h2 - h2 // 40))
        copies["5% crop"].append(distance(h, dhash(crop)))
    others = [distance(a, b) for a, b in itertools.combinations(hashes, 2)]
    rows = []
    for name, ds in [*copies.items(), ("different images", others)]:
        ds = sorted(ds)
        within = sum(d <= NEAR_DISTANCE for d in ds)
        rows.append(
            (name, str(len(ds)), str(ds[0]), str(ds[len(ds) // 2]), str(ds[-1]),
             f"{within}/{len(ds)}")
        )  # fmt: skip
    print(f"{len(images)} corpus images of at least 256 px")
    print_table(("pair", "pairs", "min", "median", "max", f"within {NEAR_DISTANCE} bits"), rows)


if __name__ == "__main__":
    main()
