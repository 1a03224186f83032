"""Tags: names shared across images, attached by users, prompts or auto-taggers."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from dreamdepot.catalog.clauses import POSTGRESQL
from dreamdepot.catalog.engine import as_catalog_connection, same_name
from dreamdepot.catalog.plans import run_adaptive
from dreamdepot.catalog.query import Query
from dreamdepot.errors import DreamDepotError

MAX_TAG_LENGTH = 200


def normalise_tag(name: str) -> str:
    """Trim, collapse inner whitespace; tags compare case-insensitively.

    >>> normalise_tag("  Red   Fox ")
    'Red Fox'
    """
    clean = " ".join(name.split())
    if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or 0xD800 <= ord(ch) < 0xE000 for ch in clean):
        raise DreamDepotError("a tag name cannot hold control characters or unpaired surrogates")
    if not clean:
        raise DreamDepotError("a tag name cannot be empty")
    if len(clean) > MAX_TAG_LENGTH:
        raise DreamDepotError(f"a tag name is at most {MAX_TAG_LENGTH} characters")
    return clean


def tag_id(conn: sqlite3.Connection, name: str, kind: str = "user") -> int:
    clean = normalise_tag(name)
    row = conn.execute(
        "INSERT INTO tags(name, kind, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING RETURNING id",
        (clean, kind, time.time()),
    ).fetchone()
    if row is None:
        row = conn.execute(f"SELECT id FROM tags WHERE {same_name(conn)}", (clean,)).fetchone()
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
        "INSERT INTO image_tags(tag_id, image_id, source, confidence, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(tid, i, source, confidence, now) for i in image_ids],
    )
    return cur.rowcount


def images_with_tag(conn: sqlite3.Connection, name: str, image_ids: list[int]) -> set[int]:
    """Which of ``image_ids`` already carry the tag (so a change can be undone exactly)."""
    row = conn.execute(
        f"SELECT id FROM tags WHERE {same_name(conn)}", (normalise_tag(name),)
    ).fetchone()
    if row is None or not image_ids:
        return set()
    found: set[int] = set()
    for i in range(0, len(image_ids), 900):
        part = image_ids[i : i + 900]
        found.update(
            r[0]
            for r in conn.execute(
                f"SELECT image_id FROM image_tags WHERE tag_id = ? AND image_id IN "
                f"({','.join('?' * len(part))})",
                [row[0], *part],
            )
        )
    return found


def remove_tag(conn: sqlite3.Connection, name: str, image_ids: Iterable[int]) -> int:
    row = conn.execute(
        f"SELECT id FROM tags WHERE {same_name(conn)}", (normalise_tag(name),)
    ).fetchone()
    if row is None:
        return 0
    cur = conn.executemany(
        "DELETE FROM image_tags WHERE tag_id = ? AND image_id = ?",
        [(row[0], i) for i in image_ids],
    )
    return cur.rowcount


COUNT_SAMPLE = 2_000
COUNT_BUDGET_SECONDS = 0.08


def tag_counts(
    conn: sqlite3.Connection, q: Query | None = None, limit: int = 200
) -> dict[str, Any]:
    """Tags with how many images matching ``q`` carry each, most used first.

    Exact for the whole library (kept by triggers) and for queries matching up to
    :data:`COUNT_SAMPLE` images. Beyond that, counts are taken over the newest
    ``COUNT_SAMPLE`` matches and the answer says ``partial``: a sidebar over a million images
    stays instant and still ranks the tags that matter in what the user is looking at.
    """
    if q is None or q.everything:
        conn = as_catalog_connection(conn)
        ph = "?"
        cur = conn.execute(
            "SELECT name, kind, image_count AS count FROM tags WHERE image_count > 0 "
            f"ORDER BY image_count DESC, name LIMIT {ph}",
            (limit,),
        )
        names = [c[0] for c in cur.description]
        tags = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return {"tags": tags, "partial": False, "sample": None}

    def build(where: str, group: str = "it.tag_id", limit_ph: str = "?") -> str:
        return (
            # one row beyond the sample says there were more; the counts use the sample only
            "WITH s AS MATERIALIZED (SELECT images.id, images.created_at FROM images WHERE "
            f"{where} ORDER BY images.created_at DESC, images.id DESC LIMIT {COUNT_SAMPLE + 1}) "
            "SELECT t.name, t.kind, count(*) AS count, (SELECT count(*) FROM s) AS sampled "
            "FROM image_tags it JOIN tags t ON t.id = it.tag_id "
            "WHERE it.image_id IN (SELECT id FROM s ORDER BY created_at DESC, id DESC "
            f"LIMIT {COUNT_SAMPLE}) "
            f"GROUP BY {group} ORDER BY count DESC, t.name LIMIT {limit_ph}"
        )

    rows: list[Any]
    if isinstance(conn, sqlite3.Connection):
        rows = run_adaptive(conn, q, build, [*q.params, limit], budget=COUNT_BUDGET_SECONDS)
    else:  # PostgreSQL: the index form; its planner has statistics
        from dreamdepot.catalog.postgres import resolve_names

        conn = as_catalog_connection(conn)
        where, params = resolve_names(conn, q).sql(POSTGRESQL)
        rows = conn.execute(build(where, "t.id", "?"), [*params, limit]).fetchall()
    partial = bool(rows) and rows[0]["sampled"] > COUNT_SAMPLE
    return {
        "tags": [{"name": r["name"], "kind": r["kind"], "count": r["count"]} for r in rows],
        "partial": partial,
        "sample": COUNT_SAMPLE if partial else None,
    }
