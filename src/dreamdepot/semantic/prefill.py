"""Prefill: load prompts from a data set (.txt, .csv, .jsonl, .parquet) into the catalog so
suggestions and lookups know them before any image exists."""

from __future__ import annotations

import csv
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from dreamdepot.errors import DreamDepotError

MIN_CHARS = 30
PROMPT_COLUMNS = ("prompt", "Prompt", "text", "caption", "positive_prompt")


def read_prompts(path: Path, column: str | None = None) -> Iterator[str]:
    """Prompts from a file, by extension; ``column`` names the field in csv/jsonl/parquet."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                yield line.strip()
    elif suffix == ".csv":
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            reader = csv.DictReader(f)
            key = _pick_column(list(reader.fieldnames or []), column, path)
            for row in reader:
                yield (row.get(key) or "").strip()
    elif suffix in (".jsonl", ".ndjson"):
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise DreamDepotError(f"{path}:{n}: not JSON: {exc}") from exc
                if isinstance(row, str):
                    yield row.strip()
                elif isinstance(row, dict):
                    key = _pick_column(list(row), column, path)
                    value = row.get(key)
                    if isinstance(value, str):
                        yield value.strip()
    elif suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise DreamDepotError("reading .parquet needs pyarrow: pip install pyarrow") from exc
        table = pq.ParquetFile(path)
        key = _pick_column(list(table.schema_arrow.names), column, path)
        for batch in table.iter_batches(columns=[key], batch_size=10_000):
            for value in batch.column(0).to_pylist():
                if isinstance(value, str):
                    yield value.strip()
    else:
        raise DreamDepotError(f"{path}: use a .txt, .csv, .jsonl or .parquet file")


def _pick_column(names: list[str], column: str | None, path: Path) -> str:
    if column:
        if column not in names:
            raise DreamDepotError(f"{path}: no column {column!r}; columns: {', '.join(names)}")
        return column
    for c in PROMPT_COLUMNS:
        if c in names:
            return c
    raise DreamDepotError(
        f"{path}: which column holds prompts? pass --column (columns: {', '.join(names[:20])})"
    )


def prefill(
    conn: sqlite3.Connection, prompts: Iterator[str], min_chars: int = MIN_CHARS
) -> dict[str, int]:
    """Insert new distinct prompts (origin 'prefill'); returns counts."""
    seen: set[str] = set()
    read = kept = added = 0
    batch: list[tuple[str, float]] = []
    now = time.time()

    def flush() -> None:
        nonlocal added
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.executemany(
            "INSERT INTO prompts(text, origin, first_seen, last_seen) VALUES (?, 'prefill', ?, ?)"
            " ON CONFLICT(text) DO NOTHING",
            [(t, n, n) for t, n in batch],
        )
        added += cur.rowcount
        conn.execute("COMMIT")
        batch.clear()

    for raw in prompts:
        read += 1
        text = "\n".join(line.strip() for line in raw.replace("\r\n", "\n").split("\n")).strip()
        if len(text) < min_chars or text in seen:
            continue
        seen.add(text)
        kept += 1
        batch.append((text, now))
        if len(batch) >= 5000:
            flush()
    if batch:
        flush()
    return {"read": read, "kept": kept, "added": added}
