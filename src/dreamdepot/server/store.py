"""Catalog access for request handlers.

SQLite: a read connection per thread (WAL lets readers run beside the writer), and one
writer connection behind a lock (SQLite has one writer at a time anyway).

PostgreSQL: a read connection per thread too (autocommit: a reader holds no snapshot
between statements), and writes on connections from a pool (``psycopg_pool``), one
transaction per ``write()`` — many writers at once, as the engine allows; nothing holds a
transaction open while images are decoded (the callers decode first, then write).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dreamdepot.catalog.db import connect, is_database_url


class Store:
    """Read connections per thread and transactions for writes, on either engine."""

    def __init__(self, where: str | Path, library_dir: Path | None = None) -> None:
        self.where = where
        self.library_dir = library_dir
        self._local = threading.local()
        self._readers: list[Any] = []  # every thread's, so close() reaches them all
        self._readers_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pool: Any = None
        if is_database_url(where):
            from dreamdepot.catalog import postgres

            postgres.open_catalog(
                str(where), library_dir
            ).close()  # the schema brought up to date once
            self._pool = postgres.pool(str(where))
            self._writer: Any = None
        else:
            self._writer = connect(Path(where))

    def read(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(conn, "closed", False):
            conn = self._open_reader()
            self._local.conn = conn
            with self._readers_lock:
                self._readers = [r for r in self._readers if not getattr(r, "closed", False)]
                self._readers.append(conn)
        return conn

    def _open_reader(self) -> Any:
        if self._pool is None:
            return connect(Path(self.where))
        from dreamdepot.catalog import postgres
        from dreamdepot.catalog.engine import PgConnection

        return PgConnection(postgres.connect(str(self.where)), str(self.where), self.library_dir)

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One transaction; on SQLite concurrent writers take turns on the one writer."""
        if self._pool is not None:
            from dreamdepot.catalog.engine import PgConnection

            with self._pool.connection() as raw:
                conn = PgConnection(raw, str(self.where), self.library_dir)
                conn.execute("BEGIN")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            return
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's reader (a PostgreSQL server has a connection limit) and the
        writer or pool."""
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            with contextlib.suppress(Exception):
                conn.close()
        if self._pool is not None:
            self._pool.close()
