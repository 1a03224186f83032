"""Export the catalog as JSON Lines or CSV: no lock-in, every field a user may want."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from typing import Any, TextIO

from dreamdepot.catalog.images import detail, iter_all
from dreamdepot.terminal import clean, csv_cell, json_text

CSV_COLUMNS = [
    "id", "content_hash", "full_hash", "paths", "format", "width", "height", "bytes",
    "created_at", "generator", "generator_version", "model", "model_hash", "vae", "sampler",
    "scheduler", "steps", "cfg_scale", "seed", "denoise", "clip_skip", "prompt",
    "negative_prompt", "loras", "tags", "rating", "favorite", "params", "metadata_source",
]  # fmt: skip


def records(conn: sqlite3.Connection, query: str = "") -> Iterator[dict[str, Any]]:
    for item in iter_all(conn, query):
        d = detail(conn, item["id"])
        if d is None:
            continue
        yield {
            "id": d["id"],
            "content_hash": d["content_hash"],
            "full_hash": d["full_hash"],
            "paths": [f["path"] for f in d["files"]],
            "missing": d["missing"],
            "format": d["format"],
            "width": d["width"],
            "height": d["height"],
            "bytes": d["bytes"],
            "created_at": d["created_at"],
            "generator": d["generator"],
            "generator_version": d["generator_version"],
            "model": d["model"],
            "model_hash": d["model_hash"],
            "vae": d["vae"],
            "sampler": d["sampler"],
            "scheduler": d["scheduler"],
            "steps": d["steps"],
            "cfg_scale": d["cfg_scale"],
            "seed": d["seed"],
            "denoise": d["denoise"],
            "clip_skip": d["clip_skip"],
            "prompt": d["prompt"],
            "negative_prompt": d["negative_prompt"],
            "loras": d["loras"],
            "tags": [t["name"] for t in d["tags"]],
            "rating": d["rating"],
            "favorite": d["favorite"],
            "params": d["params"],
            "metadata_source": d["source"],
        }


def write_jsonl(conn: sqlite3.Connection, query: str, out: TextIO) -> int:
    n = 0
    for rec in records(conn, query):
        out.write(json_text(rec, default=str) + "\n")  # C1/bidi escaped: same JSON value
        n += 1
    return n


def write_csv(conn: sqlite3.Connection, query: str, out: TextIO, for_terminal: bool = False) -> int:
    """CSV of the matches; formula-looking cells defused. CSV has no escapes, so only when
    ``for_terminal`` (standard output is a terminal) are control characters made visible."""
    w = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    n = 0
    for rec in records(conn, query):
        row = dict(rec)
        row["paths"] = "|".join(rec["paths"])
        row["tags"] = ",".join(rec["tags"])
        row["loras"] = json.dumps(rec["loras"], ensure_ascii=False)
        row["params"] = json.dumps(rec["params"], ensure_ascii=False, default=str)
        row["metadata_source"] = ",".join(rec["metadata_source"])
        cells = {k: csv_cell(v) for k, v in row.items()}
        if for_terminal:
            cells = {k: clean(v) if isinstance(v, str) else v for k, v in cells.items()}
        w.writerow(cells)
        n += 1
    return n
