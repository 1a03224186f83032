"""Automatic-tag precision: `python bench/autotag_eval.py [--write-template]`.

Builds a library from every file of `../shared/corpus` plus the first 20 images of a demo
library, runs the `prompt`, `colour` and (when installed) `faces` taggers, and scores the
automatic tags against `bench/data/autotag_labels.tsv` (image, tagger, tag, keep/drop),
labelled by the rule in `bench/data/autotag_rule.md`, which was written before the taggers'
output was seen. `--write-template` writes the tags to label (existing labels are kept).
Also prints the 20 most frequent automatic tags of the shared corpus.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _table import print_table

HERE = Path(__file__).resolve().parent
LABELS = HERE / "data" / "autotag_labels.tsv"
CORPUS = HERE.parents[1] / "shared" / "corpus"
DEMO_IMAGES = 20


def tagged_sample(tmp: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, int]]]:
    """((image key, tagger, tag) for every auto tag in the sample, top corpus tags)."""
    from dreamdepot.demo import make_demo_images
    from dreamdepot.library import Library
    from dreamdepot.tagging.stage import autotag, build_taggers

    corpus = tmp / "corpus"
    shutil.copytree(CORPUS, corpus, ignore=shutil.ignore_patterns("*.tsv", "*.md"))
    demo = make_demo_images(tmp, 300)
    rows: list[tuple[str, str, str]] = []
    with Library.open(tmp / "lib") as lib:
        lib.indexer().scan([lib.add_root(corpus), lib.add_root(demo)])
        taggers, problems = build_taggers(lib.settings, lib.path, ["prompt", "colour", "faces"])
        for p in problems:
            print("note:", p)
        autotag(lib.conn, taggers)
        demo_ids = {
            r[0]
            for r in lib.conn.execute(
                "SELECT DISTINCT f.image_id FROM files f JOIN roots r ON r.id = f.root_id "
                "WHERE r.path = ? ORDER BY f.image_id LIMIT ?",
                (str(demo), DEMO_IMAGES),
            )
        }
        for image_id, root, rel, tagger, tag in lib.conn.execute(
            "SELECT it.image_id, r.path, f.rel_path, it.tagger, t.name FROM image_tags it "
            "JOIN tags t ON t.id = it.tag_id JOIN files f ON f.id = (SELECT min(id) FROM files "
            "WHERE image_id = it.image_id) JOIN roots r ON r.id = f.root_id "
            "WHERE it.source = 'auto' ORDER BY f.rel_path, it.tagger, t.name"
        ):
            if root == str(corpus) or image_id in demo_ids:
                where = "corpus" if root == str(corpus) else "demo"
                rows.append((f"{where}/{rel}", tagger, tag))
        top = lib.conn.execute(
            "SELECT t.name, count(*) AS n FROM image_tags it JOIN tags t ON t.id = it.tag_id "
            "JOIN files f ON f.image_id = it.image_id JOIN roots r ON r.id = f.root_id "
            "WHERE it.source = 'auto' AND r.path = ? GROUP BY t.id ORDER BY n DESC, t.name "
            "LIMIT 20",
            (str(corpus),),
        ).fetchall()
    return rows, [(r[0], r[1]) for r in top]


def read_labels() -> dict[tuple[str, str, str], str]:
    if not LABELS.exists():
        return {}
    with LABELS.open(encoding="utf-8", newline="") as fh:
        return {
            (r["image"], r["tagger"], r["tag"]): r["label"].strip()
            for r in csv.DictReader(fh, delimiter="\t")
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write-template", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dd-autotag-"))
    try:
        rows, top = tagged_sample(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    labels = read_labels()
    if args.write_template:
        with LABELS.open("w", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh, delimiter="\t", lineterminator="\n")
            w.writerow(["image", "tagger", "tag", "label"])
            for row in rows:
                w.writerow([*row, labels.get(row, "")])
        print(f"wrote {len(rows)} tags to {LABELS}")
        return
    images = {r[0] for r in rows}
    by_tagger: dict[str, list[str]] = {}
    unlabelled = 0
    for row in rows:
        label = labels.get(row)
        if label not in ("keep", "drop"):
            unlabelled += 1
            continue
        by_tagger.setdefault(row[1], []).append(label)
    table = []
    for tagger, got in sorted(by_tagger.items()):
        keep = got.count("keep")
        table.append((tagger, f"{len(got)}", f"{keep / len(got):.3f}"))
    print(f"{len(images)} images, {len(rows)} automatic tags, {unlabelled} unlabelled")
    print_table(("tagger", "tags labelled", "precision (keep / all)"), table)
    print("\n20 most frequent automatic tags on the shared corpus:")
    print_table(("tag", "images"), [(t, str(n)) for t, n in top])


if __name__ == "__main__":
    main()
