"""Tags: names shared across images, attached by users, prompts or auto-taggers."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from dreamdepot.errors import DreamDepotError

MAX_TAG_LENGTH = 200


def normalise_tag(name: str) -> str:
    """Trim, collapse inner whitespace; tags compare case-insensitively.

    >>> normalise_tag("  Red   Fox ")
    'Red Fox'
    """
    clean = " ".join(name.split())
    if not clean:
        raise DreamDepotError("a tag name cannot be empty")
    if len(clean) > MAX_TAG_LENGTH:
        raise DreamDepotError(f"a tag name is at most {MAX_TAG_LENGTH} characters")
    return clean


def tag_id(conn: sqlite3.Connection, name: str, kind: str = "user") -> int:
    clean = normalise_tag(name)
    row = conn.execute(
        "INSERT INTO tags(name, kind, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT(name) DO NOTHING RETURNING id",
        (clean, kind, time.time()),
    ).fetchone()
    if row is None:
        row = conn.execute("SELECT id FROM tags WHERE name = ?", (clean,)).fetchone()
    return int(row[0])


def add_tag(
    conn: sqlite3.Connection,
    name: str,
    image_ids: Iterable[int],
    source: str = "user",
    confidence: float | None = None,
) -> int:
    """Attach a tag to images (inside the caller's transaction); returns how many gained it."""
    tid = tag_id(conn, name)
    now = time.time()
    cur = conn.executemany(
        "INSERT OR IGNORE INTO image_tags(tag_id, image_id, source, confidence, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [(tid, i, source, confidence, now) for i in image_ids],
    )
    return cur.rowcount


def remove_tag(conn: sqlite3.Connection, name: str, image_ids: Iterable[int]) -> int:
    row = conn.execute("SELECT id FROM tags WHERE name = ?", (normalise_tag(name),)).fetchone()
    if row is None:
        return 0
    cur = conn.executemany(
        "DELETE FROM image_tags WHERE tag_id = ? AND image_id = ?",
        [(row[0], i) for i in image_ids],
    )
    return cur.rowcount


def tag_counts(
    conn: sqlite3.Connection, where: str = "1", params: list[object] | None = None, limit: int = 200
) -> list[dict[str, object]]:
    """Tags with how many images matching ``where`` carry each, most used first."""
    if where == "1":
        sql = (
            "SELECT t.name, t.kind, count(*) AS count FROM image_tags it "
            "JOIN tags t ON t.id = it.tag_id GROUP BY it.tag_id ORDER BY count DESC, t.name LIMIT ?"
        )
        rows = conn.execute(sql, [limit])
    else:
        sql = (
            "SELECT t.name, t.kind, count(*) AS count FROM image_tags it "
            "JOIN tags t ON t.id = it.tag_id "
            f"WHERE it.image_id IN (SELECT images.id FROM images WHERE {where}) "
            "GROUP BY it.tag_id ORDER BY count DESC, t.name LIMIT ?"
        )
        rows = conn.execute(sql, [*(params or []), limit])
    return [dict(r) for r in rows]
