"""Catalog access for request handlers: a read connection per thread (WAL lets readers run
beside the writer), and one writer connection behind a lock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dreamdepot.catalog.db import connect


class Store:
    def __init__(self, catalog_path: Path) -> None:
        self.path = catalog_path
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._writer = connect(catalog_path)

    def read(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction on the writer connection; concurrent writers take turns."""
        with self._write_lock:
            self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            self._writer.execute("COMMIT")
