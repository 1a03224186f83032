"""The catalog on PostgreSQL: its schema, and moving an embedded library into it.

PostgreSQL holds the same tables and columns as the SQLite catalog (migrations/postgresql/,
numbered like SQLite's), so the query model (catalog/clauses.py) writes the same clauses
for both. Moving a library (:func:`copy_library`) copies every table in one transaction —
the target's tables are emptied first, so running it again gives the same result — with
the target's triggers off while rows arrive (the counters they keep are copied as they
are), and then reads both sides back in key order and compares row counts and a SHA-256 of
every table's rows.

``psycopg`` (3) is the driver; it is an optional extra (``pip install dreamdepot[postgresql]``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from dreamdepot.catalog.clauses import Clause, IdIn, Raw, Tagged, TaggedId, Words, transform
from dreamdepot.catalog.query import Query
from dreamdepot.catalog.vectors import vector_literal
from dreamdepot.errors import CatalogError

# Parents before children (foreign keys); each with the key that orders it for checksums.
TABLES: tuple[tuple[str, str], ...] = (
    ("meta", "key"),
    ("roots", "id"),
    ("prompts", "id"),
    ("users", "id"),
    ("jobs", "id"),
    ("images", "id"),
    ("files", "id"),
    ("tags", "id"),
    ("image_tags", "tag_id, image_id"),
    ("rejected_tags", "image_id, tag_id"),
    ("tagger_runs", "tagger, image_id"),
    ("albums", "id"),
    ("album_images", "album_id, image_id"),
    ("scan_errors", "id"),
    ("embeddings", "model_id, owner_kind, owner_id"),
    ("cache_events", "id"),
    ("folder_counts", "root_id, dir"),
    ("api_keys", "id"),
    ("sessions", "token_hash"),
    ("workers", "name"),
    ("uploads", "sha256"),
    ("invitations", "token_hash"),
    ("user_marks", "user_id, image_id"),
)
SQLITE_SCHEMA_FOR_POSTGRESQL = 19  # the SQLite schema the PostgreSQL tables mirror


FEW_PROMPTS = 1000  # words matching at most this many prompts are passed as their ids
FEW_IMAGES = 2000  # ... and when those prompts have at most this many images, as image ids


def resolve_names(conn: Any, q: Query) -> Query:
    """The query with what it names looked up first, so PostgreSQL plans with real numbers
    instead of generic guesses: each tag name becomes its id (the planner then has the tag's
    own statistics), and words that match few prompts become those prompts' ids (its
    estimate for a phrase or a rare word is far too high, which makes it walk every image
    by date to find one); when those prompts have few images, their ids are passed (its
    estimate for "these prompts' images" is no better). Words that match many prompts stay
    a full-text clause, which the planner handles well."""

    def resolve(node: Clause) -> Clause:
        if isinstance(node, Tagged):
            row = conn.execute(
                "SELECT id FROM tags WHERE lower(name) = lower(?)", (node.name,)
            ).fetchone()
            return TaggedId(int(row[0]) if row else None, node.auto_only)
        if isinstance(node, Words):
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM prompts WHERE tsv @@ to_tsquery('simple', ?) LIMIT ?",
                    (node.tsquery(), FEW_PROMPTS + 1),
                )
            ]
            if len(ids) > FEW_PROMPTS:
                return node
            images = [
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM images WHERE {node.column} = ANY(?) LIMIT ?",
                    (ids, FEW_IMAGES + 1),
                )
            ]
            if len(images) <= FEW_IMAGES:
                return IdIn(tuple(images))
            return Raw(f"images.{node.column} = ANY(?)", (ids,))
        return node

    return Query(q.text, transform(q.node, resolve), q.sort, q.extension_terms, q.marks)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise CatalogError(
            "PostgreSQL needs the psycopg driver: pip install 'dreamdepot[postgresql]'"
        ) from exc
    return psycopg


def connect(url: str) -> Any:
    """A psycopg connection to ``url`` (a libpq URI: postgresql://user@host/db)."""
    psycopg = _psycopg()
    try:
        return psycopg.connect(url)
    except psycopg.Error as exc:
        raise CatalogError(f"cannot connect to PostgreSQL: {exc}".strip()) from exc


def open_catalog(url: str, library_dir: Path | None = None) -> Any:
    """The PostgreSQL catalog at ``url``, its schema brought up to date, as a connection
    with the surface the catalog code uses (catalog/engine.py)."""
    from dreamdepot.catalog.engine import PgConnection

    raw = connect(url)
    try:
        migrate_schema(raw)
    except BaseException:
        raw.close()
        raise
    return PgConnection(raw, url, library_dir)


def pool(url: str, max_size: int = 8) -> Any:
    """A ``psycopg_pool`` pool of connections to ``url`` (for the server's writes)."""
    try:
        from psycopg_pool import ConnectionPool
    except ImportError as exc:
        raise CatalogError(
            "the server on PostgreSQL needs psycopg-pool: pip install 'dreamdepot[postgresql]'"
        ) from exc

    def configure(conn: Any) -> None:
        conn.autocommit = True

    return ConnectionPool(
        url, min_size=1, max_size=max_size, configure=configure, open=True, name="dreamdepot"
    )


def migrations() -> list[tuple[int, str]]:
    out = []
    folder = resources.files("dreamdepot.catalog.migrations.postgresql")
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            out.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(out)


def schema_version(conn: Any) -> int:
    """The schema number of the PostgreSQL catalog (0 when it has none yet). It lives in
    its own table, so moving a library (which replaces ``meta``) never touches it."""
    conn.execute("CREATE TABLE IF NOT EXISTS dd_schema (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM dd_schema").fetchone()
    return int(row[0] or 0)


def migrate_schema(conn: Any) -> int:
    """Bring the PostgreSQL catalog's tables up to date (each migration in a transaction);
    the schema number now."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))  # one migrator at a time
    try:
        return _migrate_locked(conn)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        conn.commit()


MIGRATION_LOCK = 0x6472_6D64_6570  # "drmdep": the advisory lock key migrations hold


def _migrate_locked(conn: Any) -> int:
    current = schema_version(conn)
    conn.commit()
    known = migrations()
    if current > len(known):
        raise CatalogError(
            f"this PostgreSQL catalog has schema {current}, newer than this Dream Depot "
            f"knows ({len(known)}): upgrade dreamdepot to use it"
        )
    for number, sql in known[current:]:
        with conn.transaction():
            conn.execute(sql)
            conn.execute("INSERT INTO dd_schema(version) VALUES (%s)", (number,))
        current = number
    return current


@dataclass
class TableReport:
    name: str
    source_rows: int
    target_rows: int
    source_sha256: str
    target_sha256: str

    @property
    def same(self) -> bool:
        return (self.source_rows, self.source_sha256) == (self.target_rows, self.target_sha256)


def _columns(sqlite: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in sqlite.execute(f"PRAGMA table_info({table})")]


def _norm(value: Any) -> Any:
    """One representation for both drivers' values (checksums compare meanings)."""
    if isinstance(value, memoryview | bytearray):
        value = bytes(value)
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    return value


def _digest(rows: Iterator[tuple[Any, ...]]) -> tuple[int, str]:
    h, n = hashlib.sha256(), 0
    for row in rows:
        h.update(json.dumps([_norm(v) for v in row], ensure_ascii=False).encode())
        h.update(b"\n")
        n += 1
    return n, h.hexdigest()


def _check_paths(sqlite: sqlite3.Connection) -> None:
    """PostgreSQL text cannot hold a file name that is not UTF-8 (SQLite keeps those as raw
    bytes): refuse, naming them, rather than rename anything."""
    for table in ("files", "scan_errors"):
        bad = sqlite.execute(
            f"SELECT count(*), min(hex(rel_path)) FROM {table} WHERE typeof(rel_path) = 'blob'"
        ).fetchone()
        if bad[0]:
            raise CatalogError(
                f"{bad[0]} file name(s) in {table} are not valid UTF-8 (e.g. bytes "
                f"{bad[1][:40]}…); PostgreSQL cannot store them as text. Rename those files "
                "and scan again before moving the library."
            )


def copy_library(
    sqlite: sqlite3.Connection,
    url: str,
    progress: Callable[[str, int], None] | None = None,
) -> list[TableReport]:
    """Copy every table of an embedded catalog into the PostgreSQL catalog at ``url`` (made
    or brought up to date first), replacing what it held, in one transaction; then compare
    both sides table by table."""
    version = sqlite.execute("PRAGMA user_version").fetchone()[0]
    if version != SQLITE_SCHEMA_FOR_POSTGRESQL:
        raise CatalogError(
            f"the embedded catalog has schema {version}; this Dream Depot moves schema "
            f"{SQLITE_SCHEMA_FOR_POSTGRESQL} (open it once with this version to upgrade it)"
        )
    _check_paths(sqlite)
    pg = connect(url)
    try:
        migrate_schema(pg)
        with pg.transaction():
            names = ", ".join(t for t, _ in TABLES)
            pg.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
            for table, _ in TABLES:
                pg.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            for table, _ in TABLES:
                cols = _columns(sqlite, table)
                col_list = ", ".join(cols)
                vectors = table == "embeddings"
                target = col_list + (", embedding" if vectors else "")
                n = 0
                with pg.cursor().copy(f"COPY {table} ({target}) FROM STDIN") as copy:
                    for row in sqlite.execute(f"SELECT {col_list} FROM {table}"):
                        if vectors:
                            row = (*row, _embedding(dict(zip(cols, row, strict=True))))
                        copy.write_row(row)
                        n += 1
                if progress is not None:
                    progress(table, n)
            for table, key in TABLES:
                pg.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
                if key == "id":  # the next id continues after the copied ones
                    pg.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                    )
        return verify(sqlite, pg)
    finally:
        pg.close()


def _embedding(row: dict[str, Any]) -> str | None:
    """pgvector's text form of a stored vector (None for a corrupt row, re-embedded later)."""
    try:
        v = np.frombuffer(row["vector"], dtype=row["dtype"]).astype(np.float32)
    except (ValueError, TypeError):
        return None
    if v.shape != (row["dim"],) or not np.all(np.isfinite(v)):
        return None
    return vector_literal(v)


def ensure_vector_index(
    conn: Any, model_id: str, kind: str, dim: int, m: int = 24, ef_construction: int = 128
) -> str:
    """The HNSW index (cosine) of one model's vectors of one kind, made when missing; its
    name. A partial index over ``embedding::vector(dim)``: another model's vectors are never
    in it, and dropping a model's index touches no other. ``m`` and ``ef_construction`` are
    pgvector's build parameters: 24 and 128 (its defaults are 16 and 64) reached recall@20
    0.940 at p95 11.2 ms on held-out queries over 1,000,000 clustered prompt vectors, where
    the defaults reached 0.882 (bench/vectors.py, docs/performance.md); the build takes
    about twice as long."""
    from psycopg import sql

    from dreamdepot.catalog.engine import raw_postgresql

    digest = hashlib.sha1(f"{model_id}|{kind}|{dim}".encode()).hexdigest()[:12]
    name = f"embeddings_hnsw_{digest}"
    raw_postgresql(conn).execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {name} ON embeddings USING hnsw "
            "((embedding::vector({dim})) vector_cosine_ops) WITH (m = {m}, "
            "ef_construction = {efc}) "
            "WHERE model_id = {model} AND owner_kind = {kind} AND dim = {dim}"
        ).format(
            m=sql.Literal(int(m)),
            efc=sql.Literal(int(ef_construction)),
            name=sql.Identifier(name),
            dim=sql.Literal(int(dim)),
            model=sql.Literal(model_id),
            kind=sql.Literal(kind),
        )
    )
    return name


def nearest(
    conn: Any,
    model_id: str,
    kind: str,
    vector: np.ndarray,
    k: int = 20,
    ef_search: int = 100,
    allowed: set[int] | None = None,
) -> list[tuple[int, float]]:
    """The ``k`` owners whose vectors are closest to ``vector`` (cosine similarity, best
    first), through that model's HNSW index when it exists (exact scan otherwise). Among
    ``allowed`` only, when given: then exactly, over those rows (an HNSW scan filtered
    afterwards could return fewer than ``k``)."""
    from dreamdepot.catalog.engine import raw_postgresql

    conn = raw_postgresql(conn)
    dim = int(vector.shape[0])
    text = vector_literal(vector)
    distance = f"embedding::vector({dim}) <=> %s::vector({dim})"
    among = ""
    params: list[Any] = [text, model_id, kind]
    if allowed is not None:
        if not allowed:
            return []
        # "+ 0": an expression the HNSW index does not serve, so the allowed rows are
        # ranked exactly (found through the primary key)
        among, params, distance = (
            " AND owner_id = ANY(%s)",
            [*params, list(allowed)],
            (f"({distance}) + 0"),
        )
    with conn.transaction():  # the index returns at most ef_search rows (1..1000)
        conn.execute(f"SET LOCAL hnsw.ef_search = {min(max(int(ef_search), int(k)), 1000)}")
        rows = conn.execute(
            f"SELECT owner_id, 1 - (embedding::vector({dim}) <=> %s::vector({dim})) "
            f"FROM embeddings WHERE model_id = %s AND owner_kind = %s AND dim = {dim}{among} "
            f"AND embedding IS NOT NULL ORDER BY {distance} LIMIT %s",
            (*params, text, k),
            prepare=False,
        ).fetchall()
    return [(int(i), float(score)) for i, score in rows]


def verify(sqlite: sqlite3.Connection, pg: Any) -> list[TableReport]:
    """Row counts and a SHA-256 of every table's rows, in key order, on both sides."""
    reports = []
    for table, key in TABLES:
        cols = ", ".join(_columns(sqlite, table))
        order = ", ".join(f'{k.strip()} COLLATE "C"' if k.strip() in _TEXT_KEYS else k.strip()
                          for k in key.split(","))  # fmt: skip
        src = _digest(iter(sqlite.execute(f"SELECT {cols} FROM {table} ORDER BY {key}")))
        cur = pg.execute(f"SELECT {cols} FROM {table} ORDER BY {order}")
        dst = _digest(iter(cur))
        reports.append(TableReport(table, src[0], dst[0], src[1], dst[1]))
    return reports


# text keys sort by byte value on both sides (SQLite's BINARY collation is memcmp)
_TEXT_KEYS = frozenset({"key", "tagger", "model_id", "owner_kind", "dir"})
