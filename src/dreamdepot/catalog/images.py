"""Reading images out of the catalog: keyset-paginated search, detail, paths, stats."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dreamdepot.catalog.clauses import POSTGRESQL, SQLITE, Clause, Dialect, Not, Raw
from dreamdepot.catalog.engine import as_catalog_connection, is_postgresql
from dreamdepot.catalog.marks import ROW_MARKS, Marks
from dreamdepot.catalog.paths import display, from_db
from dreamdepot.catalog.plans import run_adaptive
from dreamdepot.catalog.query import ANIMATION_SQL, VIDEO_SQL, Query, Sort, parse
from dreamdepot.errors import QueryError

MAX_LIMIT = 1000

# Fields answered outside the query language's SQL (``similar:`` needs the prompt vectors),
# registered by the layers that can answer them (dreamdepot.semantic), so the catalog
# depends on nothing above it: (connection, the field's words) -> (SQL, parameters).
FieldResolver = Callable[[sqlite3.Connection, str], tuple[str, list[Any]]]
_resolvers: dict[str, FieldResolver] = {}


def register_field(name: str, resolver: FieldResolver) -> None:
    """Let queries use ``name:words``, answered by ``resolver``."""
    _resolvers[name] = resolver


SUMMARY_COLUMNS = (
    "images.id, images.content_hash, images.format, images.width, images.height, "
    "images.created_at, images.generator, images.model, images.sampler, images.steps, "
    "images.cfg_scale, images.seed, {rating} AS rating, {favorite} AS favorite, "
    "images.placeholder, images.thumb_key, images.prompt_id, images.job_id, images.parent_id, "
    "images.duration, images.preview_key, p.text AS prompt"
)


def summary_columns(marks: Marks = ROW_MARKS) -> str:
    """A result row's columns, with the ratings and favourites of ``marks``' viewer."""
    return SUMMARY_COLUMNS.format(rating=marks.column("rating"), favorite=marks.column("favorite"))


@dataclass
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def compile_query(conn: sqlite3.Connection, text: str) -> Query:
    """Parse a query and resolve the registered fields answered outside SQL, ANDing their
    clauses in. Every face uses this, never ``parse`` alone."""
    q = parse(text, set(_resolvers))
    for tok in q.extension_terms:
        if not tok.value.strip():
            raise QueryError(f"expected words after '{tok.field_name}:'", tok.pos, text)
        sql, params = _resolvers[tok.field_name or ""](conn, tok.value)
        clause: Clause = Raw(sql, tuple(params))
        q = q.narrowed(Not(clause) if tok.negated else clause)
    return q


def encode_cursor(sort: Sort, last_value: Any, last_id: int) -> str:
    raw = json.dumps([sort.key, sort.descending, sort.salt, last_value, last_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Sort, Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, desc, salt, value, last_id = json.loads(raw)
        if not isinstance(last_id, int) or not isinstance(salt, int):
            raise ValueError("bad cursor types")
        if value is not None and not isinstance(value, int | float | str):
            raise ValueError("a cursor's sort value is a number or a text")
        for n in (last_id, salt, value):
            if isinstance(n, int) and not -(2**63) <= n < 2**63:
                raise ValueError("cursor number out of range")
        sort = Sort(str(key), bool(desc), salt)
        sort.expression  # noqa: B018 - validates the key
        return sort, value, last_id
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        raise QueryError("invalid cursor", 0, cursor) from exc


def search(
    conn: sqlite3.Connection | Any,
    query: str | Query = "",
    limit: int = 100,
    cursor: str | None = None,
    extra_where: tuple[str, list[Any]] | None = None,
    marks: Marks = ROW_MARKS,
) -> Page:
    """One page of images matching ``query``, in its sort order, after ``cursor``, with
    ``marks``' viewer's ratings and favourites (read, filtered and sorted by).

    Paging is by keyset on (sort value, id): every image appears exactly once across
    pages however many share a timestamp, and a deep page costs what the first does.
    """
    conn = as_catalog_connection(conn)
    q = compile_query(conn, query) if isinstance(query, str) else query
    if marks.per_user:
        q = q.reading(marks)
    marks = q.marks  # a query compiled for a viewer keeps reading theirs
    limit = max(1, min(int(limit), MAX_LIMIT))
    postgresql = is_postgresql(conn)
    if postgresql:  # its planner then knows how common each tag is
        from dreamdepot.catalog.postgres import resolve_names

        q = resolve_names(conn, q)
    d = Dialect(POSTGRESQL if postgresql else SQLITE)
    sort, tail, extra = q.sort, [], ""
    if extra_where:
        extra += f" AND ({extra_where[0]})"
        tail += extra_where[1]
    if cursor:
        sort, value, last_id = decode_cursor(cursor)
        op = "<" if sort.descending else ">"
        extra += f" AND (({sort.sql(marks)}, images.id) {op} (?, ?))"
        tail += [value, last_id]
    direction = "DESC" if sort.descending else "ASC"

    def build(where: str) -> str:
        return (
            f"SELECT {summary_columns(marks)}, {d.ph(sort.sql(marks))} AS _sort FROM images "
            f"LEFT JOIN prompts p ON p.id = images.prompt_id WHERE ({where}){d.ph(extra)} "
            f"ORDER BY _sort {direction}, images.id {direction} LIMIT {d.ph('?')}"
        )

    rows: list[Any]
    if postgresql:  # the index form only: PostgreSQL's planner has statistics SQLite's lacks
        where, params = q.sql(POSTGRESQL)
        rows = conn.execute(build(where), [*params, *tail, limit + 1]).fetchall()
    else:
        rows = run_adaptive(conn, q, build, [*q.params, *tail, limit + 1])
    items = _summaries(rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(sort, last["_sort"], last["id"])
    return Page(items, next_cursor)


def iter_all(conn: sqlite3.Connection, query: str | Query = "", page: int = 1000) -> Any:
    """Every match, page by page (for export and bulk tagging)."""
    cursor = None
    q = compile_query(conn, query) if isinstance(query, str) else query
    while True:
        result = search(conn, q, page, cursor)
        yield from result.items
        if result.next_cursor is None:
            return
        cursor = result.next_cursor


def matching_ids(conn: sqlite3.Connection, query: str | Query) -> list[int]:
    q = compile_query(conn, query) if isinstance(query, str) else query
    where, params = q.sql_on(conn)
    return [r[0] for r in conn.execute(f"SELECT images.id FROM images WHERE {where}", params)]


def _summaries(rows: list[Any]) -> list[dict[str, Any]]:
    """Rows as dicts, less the ``_`` columns the query sorts by. The columns are read once
    per page, not once per row: a page of 100 spent half its Python time naming columns."""
    if not rows:
        return []
    names = list(rows[0].keys())
    keep = [i for i, name in enumerate(names) if not name.startswith("_")]
    kept = [names[i] for i in keep]
    items = []
    for r in rows:
        values = tuple(r)
        d = dict(zip(kept, [values[i] for i in keep], strict=True))
        d["favorite"] = bool(d["favorite"])
        items.append(d)
    return items


def paths_of(conn: sqlite3.Connection, image_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT r.path AS root, f.rel_path, f.state, f.size, f.mtime_ns FROM files f "
        "JOIN roots r ON r.id = f.root_id WHERE f.image_id = ? ORDER BY f.id",
        (image_id,),
    ).fetchall()
    return [
        {
            "path": display(f"{r['root']}/{from_db(r['rel_path'])}"),
            "state": r["state"],
            "size": r["size"],
            "mtime_ns": r["mtime_ns"],
        }
        for r in rows
    ]


def tags_of(conn: sqlite3.Connection, image_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT t.name, t.kind, it.source, it.confidence, it.tagger FROM image_tags it "
        "JOIN tags t ON t.id = it.tag_id WHERE it.image_id = ? ORDER BY t.name",
        (image_id,),
    ).fetchall()
    return [dict(r) for r in rows]


def detail(conn: sqlite3.Connection, image_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT images.*, p.text AS prompt, n.text AS negative_prompt FROM images "
        "LEFT JOIN prompts p ON p.id = images.prompt_id "
        "LEFT JOIN prompts n ON n.id = images.negative_prompt_id WHERE images.id = ?",
        (image_id,),
    ).fetchone()
    if row is None:
        return None
    d = dict(row)
    d["favorite"] = bool(d["favorite"])
    d["loras"] = json.loads(d["loras"]) if d["loras"] else []
    d["params"] = json.loads(d["params"]) if d["params"] else {}
    d["source"] = d.pop("metadata_source").split(",") if d["metadata_source"] else []
    d["files"] = paths_of(conn, image_id)
    d["tags"] = tags_of(conn, image_id)
    d["missing"] = not any(f["state"] == "present" for f in d["files"])
    d["taggers"] = [
        dict(r)
        for r in conn.execute(
            "SELECT tagger AS name, version, at, error, note FROM tagger_runs "
            "WHERE image_id = ? ORDER BY tagger",
            (image_id,),
        )
    ]
    return d


WATCH_STATUS_KEY = "watcher"


def watch_status(conn: sqlite3.Connection) -> dict[str, Any]:
    """What the last file watcher recorded of itself (``meta`` key ``watcher``): ``state``
    live / restarting / off, the ``reason`` of its last failure, ``restarts``, ``pid``."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (WATCH_STATUS_KEY,)).fetchone()
    if row is None:
        return {"state": "off", "reason": "no watcher has run"}
    try:
        status: dict[str, Any] = json.loads(row[0])
    except ValueError:
        return {"state": "off", "reason": "unreadable status"}
    return status


def stats(conn: sqlite3.Connection) -> dict[str, Any]:
    one = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "images": one("SELECT count(*) FROM images"),
        "files": one("SELECT count(*) FROM files WHERE state = 'present'"),
        "missing_files": one("SELECT count(*) FROM files WHERE state = 'missing'"),
        "offline_files": one("SELECT count(*) FROM files WHERE state = 'offline'"),
        "bytes": one("SELECT coalesce(sum(bytes), 0) FROM images"),
        "videos": one(f"SELECT count(*) FROM images WHERE {VIDEO_SQL}"),
        "animations": one(f"SELECT count(*) FROM images WHERE {ANIMATION_SQL}"),
        "prompts": one("SELECT count(*) FROM prompts WHERE image_count > 0"),
        "tags": one("SELECT count(*) FROM tags"),
        "scan_errors": one("SELECT count(*) FROM scan_errors"),
        "pixel_errors": one("SELECT count(*) FROM images WHERE media_error IS NOT NULL"),
        "live_updates": watch_status(conn),
        "roots": [
            dict(r)
            for r in conn.execute(
                "SELECT r.path, r.online, r.watch, r.last_scan_at, "
                "(SELECT count(*) FROM files f WHERE f.root_id = r.id AND f.state = 'present') "
                "AS files FROM roots r ORDER BY r.id"
            )
        ],
        "generators": {
            (r[0] or "unknown"): r[1]
            for r in conn.execute(
                "SELECT generator, count(*) FROM images GROUP BY generator ORDER BY 2 DESC"
            )
        },
        "models": {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT model, count(*) FROM images WHERE model IS NOT NULL "
                "GROUP BY model ORDER BY 2 DESC LIMIT 10"
            )
        },
    }
