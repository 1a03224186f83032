"""Opening the catalog: pragmas, numbered migrations, and the newer-schema guard."""

from __future__ import annotations

import re
import sqlite3
import time
from importlib import resources
from pathlib import Path
from typing import Any

from dreamdepot.catalog.engine import dialect_of
from dreamdepot.errors import CatalogError, SchemaTooNewError

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(number, name, SQL) for every bundled migration, in order."""
    found = []
    for entry in resources.files("dreamdepot.catalog.migrations").iterdir():
        m = _MIGRATION_NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    for i, (n, name, _) in enumerate(found, start=1):
        if n != i:
            raise CatalogError(f"migration numbering has a gap at {name}")
    return found


def latest_schema() -> int:
    return len(migrations())


def connect(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    """Open the catalog in WAL mode and bring its schema up to date.

    A catalog written by a newer Dream Depot (higher ``user_version``) is refused with
    :class:`SchemaTooNewError` rather than risk corrupting it.
    """
    path = Path(path)
    uri = f"file:{path}?mode=ro" if readonly else str(path)
    try:
        conn = sqlite3.connect(
            uri, uri=readonly, timeout=30, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise CatalogError(f"cannot open catalog {path}: {exc}") from exc
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 30000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA mmap_size = 268435456")
    _migrate(conn, path, readonly)
    return conn


def _migrate(conn: sqlite3.Connection, path: Path, readonly: bool) -> None:
    all_migrations = migrations()
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(all_migrations):
        conn.close()
        raise SchemaTooNewError(
            f"{path} has catalog schema {current}, but this Dream Depot knows only up to "
            f"{len(all_migrations)}: upgrade dreamdepot to open it"
        )
    if current == len(all_migrations) or readonly:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, name, sql in all_migrations[current:]:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                (f"migration:{number}", f"{name} applied {time.time():.0f}"),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _statements(sql: str) -> list[str]:
    """Split a migration into statements; sqlite3.complete_statement keeps triggers whole."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        if not buf and line.strip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out


def is_database_url(where: str | Path) -> bool:
    """Whether ``where`` names a PostgreSQL server rather than a SQLite file."""
    return isinstance(where, str) and where.startswith(("postgresql://", "postgres://"))


class Catalog:
    """A handle on the catalog connection, with a transaction helper. ``where`` is what
    another thread or process opens to reach the same catalog: the SQLite file, or the
    PostgreSQL URL."""

    def __init__(self, conn: Any, path: Path, url: str | None = None) -> None:
        self.conn = conn
        self.path = path
        self.url = url

    @property
    def where(self) -> str | Path:
        return self.url or self.path

    @property
    def dialect(self) -> str:
        return dialect_of(self.conn)

    @classmethod
    def open(
        cls, where: str | Path, readonly: bool = False, library_dir: Path | None = None
    ) -> Catalog:
        """The catalog at ``where``; a PostgreSQL one is told its library folder (settings
        and thumbnails stay there)."""
        if is_database_url(where):
            from dreamdepot.catalog import postgres

            conn = postgres.open_catalog(str(where), library_dir)
            return cls(conn, Path(), str(where))
        return cls(connect(where, readonly=readonly), Path(where))

    def close(self) -> None:
        self.conn.close()

    def transaction(self) -> _Transaction:
        return _Transaction(self.conn)


class _Transaction:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
