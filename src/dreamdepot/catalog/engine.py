"""One connection surface for both catalog engines.

The catalog code is written against the part of Python's ``sqlite3`` API it uses —
``execute``/``executemany`` with ``?`` (or ``:name``) placeholders, rows read by position or
by column name, explicit ``BEGIN``/``COMMIT`` — in SQL both engines read alike (``ON
CONFLICT``, ``RETURNING``, ``coalesce``, window functions …). :class:`PgConnection` gives a
psycopg 3 connection that surface: it converts the placeholders to psycopg's (DB-API
paramstyle conversion, done once per statement text), returns :class:`Row` objects, loads
``numeric`` as int/float (as SQLite returns them), and prepares only writes that repeat (a
read's plan depends on which tag or prompts its values name; a generic plan would not
know). The statements that differ between engines live beside their callers, chosen by
:func:`dialect_of`.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from dreamdepot.catalog.clauses import POSTGRESQL, SQLITE

_LITERAL_OR_MARK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%|(?<![:\w]):([A-Za-z_]\w*)")


def dialect_of(conn: Any) -> str:
    """``"sqlite"`` or ``"postgresql"``: which SQL a connection reads."""
    return str(getattr(conn, "dialect", SQLITE))


def is_postgresql(conn: Any) -> bool:
    return dialect_of(conn) == POSTGRESQL


@functools.lru_cache(maxsize=4096)
def to_psycopg(sql: str) -> str:
    """A statement with ``?``/``:name`` placeholders in psycopg's ``%s``/``%(name)s`` form
    (a literal ``%`` doubled); text inside quotes is left alone.

    >>> to_psycopg("SELECT 'a?' || x FROM t WHERE y LIKE '%z' AND id = ? AND k = :key")
    "SELECT 'a?' || x FROM t WHERE y LIKE '%%z' AND id = %s AND k = %(key)s"
    >>> to_psycopg("BEGIN IMMEDIATE")
    'BEGIN'
    """
    if sql.lstrip().upper().startswith("BEGIN"):
        return "BEGIN"

    def swap(m: re.Match[str]) -> str:
        token = m.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if m.group(1):
            return f"%({m.group(1)})s"
        return token.replace("%", "%%")  # a quoted literal or identifier

    return _LITERAL_OR_MARK.sub(swap, sql)


class Row(Sequence[Any]):
    """A result row read by position or by column name, like ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Row) and self._values == other._values

    __hash__ = None  # type: ignore[assignment]

    def keys(self) -> list[str]:
        return list(self._index)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


def _row_factory(cursor: Any) -> Any:
    description = cursor.description or []
    index = {column.name: i for i, column in enumerate(description)}

    def make(values: Sequence[Any]) -> Row:
        return Row(values, index)

    return make


@functools.lru_cache(maxsize=4096)
def _is_write(sql: str) -> bool:
    return sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE")


class PgCursor:
    """What ``execute`` returns: rows, ``rowcount`` and ``description``."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def fetchone(self) -> Row | None:
        if self._cursor.description is None:
            return None
        row: Row | None = self._cursor.fetchone()
        return row

    def fetchall(self) -> list[Row]:
        if self._cursor.description is None:
            return []
        return list(self._cursor.fetchall())

    def fetchmany(self, size: int = 1) -> list[Row]:
        return list(self._cursor.fetchmany(size)) if self._cursor.description else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    @property
    def description(self) -> Any:
        return self._cursor.description

    def close(self) -> None:
        self._cursor.close()


class PgConnection:
    """A psycopg connection with the sqlite3 surface the catalog code uses. It runs in
    autocommit mode, as the SQLite connections do (``isolation_level=None``): a statement
    outside ``BEGIN … COMMIT`` is its own transaction, so a reader holds no snapshot and no
    lock between statements."""

    dialect = POSTGRESQL

    def __init__(self, raw: Any, url: str | None = None, library_dir: Path | None = None) -> None:
        raw.autocommit = True
        _load_numeric_as_numbers(raw)
        self.raw = raw
        self.url = url
        self.library_dir = library_dir

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> PgCursor:
        cursor = self.raw.cursor(row_factory=_row_factory)
        if params:
            # a read is planned with its values every time (which tag, which prompts: the
            # plan depends on them); a write by key is prepared once it repeats (psycopg's
            # threshold), which saves the parse and plan of every row an ingest writes
            text = to_psycopg(sql)
            cursor.execute(text, params, prepare=None if _is_write(text) else False)
        else:  # without parameters psycopg reads no placeholders: send the text as written
            text = "BEGIN" if sql.lstrip().upper().startswith("BEGIN") else sql
            cursor.execute(text, prepare=False)
        return PgCursor(cursor)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any] | dict[str, Any]]) -> PgCursor:
        cursor = self.raw.cursor(row_factory=_row_factory)
        cursor.executemany(to_psycopg(sql), list(seq))
        return PgCursor(cursor)

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        """As ``with sqlite3_connection:``: commit an open transaction, or roll it back on
        an exception; the connection stays open."""
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    def commit(self) -> None:
        if self.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    @property
    def closed(self) -> bool:
        return bool(self.raw.closed)


def same_name(conn: Any, column: str = "name") -> str:
    """``column`` equals a ``?`` name whatever the letter case: tag and album names are
    ``COLLATE NOCASE`` in SQLite (so its index answers), lower-cased in PostgreSQL's
    unique index."""
    return f"lower({column}) = lower(?)" if is_postgresql(conn) else f"{column} = ?"


def like(conn: Any) -> str:
    """The case-insensitive LIKE of ``conn``'s engine (SQLite's LIKE is, for ASCII)."""
    return "ILIKE" if is_postgresql(conn) else "LIKE"


def json_field(conn: Any, column: str, key: str) -> str:
    """A key of the JSON object in ``column`` (an array or object comes back as JSON text)."""
    if is_postgresql(conn):
        return f"({column}::jsonb -> '{key}')::text"
    return f"json_extract({column}, '$.{key}')"


def value_in(conn: Any, expr: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """``expr`` is one of ``values``, as one parameter however many values there are
    (SQLite's variable limit never applies): a JSON array SQLite unpacks with
    ``json_each``, an array PostgreSQL compares with ``ANY``.

    >>> value_in(None, "id", [1, 2])
    ('id IN (SELECT value FROM json_each(?))', ['[1, 2]'])
    """
    if is_postgresql(conn):
        return f"{expr} = ANY(?)", [list(values)]
    return f"{expr} IN (SELECT value FROM json_each(?))", [json.dumps(list(values))]


def library_dir(conn: Any) -> Path:
    """The library folder (settings, thumbnails) of the catalog ``conn`` reaches: the
    SQLite file's folder, or the folder the PostgreSQL connection was opened for."""
    if is_postgresql(conn):
        folder = getattr(conn, "library_dir", None)
        if folder is None:
            raise RuntimeError("this PostgreSQL connection was opened without its library")
        return Path(folder)
    return Path(conn.execute("PRAGMA database_list").fetchone()[2]).parent


def catalog_key(conn: Any) -> str:
    """What names the catalog ``conn`` reaches (its file, or its database URL)."""
    if is_postgresql(conn):
        return str(conn.url or id(conn.raw))
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def as_catalog_connection(conn: Any) -> Any:
    """``conn`` with the sqlite3 surface: a bare psycopg connection is wrapped."""
    if isinstance(conn, sqlite3.Connection | PgConnection):
        return conn
    if type(conn).__module__.startswith("psycopg"):
        return PgConnection(conn)
    return conn


def raw_postgresql(conn: Any) -> Any:
    """The psycopg connection under ``conn`` (for psycopg-only calls: COPY, composed SQL)."""
    return conn.raw if isinstance(conn, PgConnection) else conn


def _load_numeric_as_numbers(raw: Any) -> None:
    """``sum()`` and ``avg()`` of integers are ``numeric`` in PostgreSQL, which psycopg
    loads as ``Decimal``; SQLite gives int or float, and the catalog code does arithmetic
    with floats on them."""
    from psycopg.adapt import Loader

    class NumericLoader(Loader):
        def load(self, data: Any) -> int | float:
            text = bytes(data)
            if text.lstrip(b"-").isdigit():
                return int(text)
            return float(text)

    raw.adapters.register_loader("numeric", NumericLoader)


def errors() -> tuple[type[BaseException], ...]:
    """The exception classes a catalog statement may raise, whichever engine runs it."""
    try:
        import psycopg
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error)
