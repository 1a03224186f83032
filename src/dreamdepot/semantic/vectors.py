"""Vectors: persisted in the catalog's ``embeddings`` table, searched by an exact in-memory
index (numpy), which loads lazily and updates incrementally.

Exact search is enough up to ~10⁶ vectors here (a 384-d matrix product over 1M float32 rows
is ~50 ms on two cores). On PostgreSQL every vector is also kept as pgvector's type, with an
HNSW index per model (catalog/postgres.py).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Protocol

import numpy as np

from dreamdepot.catalog.engine import is_postgresql
from dreamdepot.catalog.vectors import vector_literal


class VectorIndex(Protocol):
    def add(self, ids: list[int], vectors: np.ndarray) -> None: ...

    def remove(self, ids: Iterable[int]) -> None: ...

    def search(
        self, vector: np.ndarray, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]: ...


def to_blob(vector: np.ndarray, dtype: str = "float16") -> bytes:
    return np.asarray(vector, dtype=dtype).tobytes()


def from_blob(blob: bytes, dim: int, dtype: str) -> np.ndarray | None:
    """Decode a stored vector; None when the row is corrupt (it will be re-embedded)."""
    try:
        v = np.frombuffer(blob, dtype=dtype).astype(np.float32)
    except (ValueError, TypeError):
        return None
    if v.shape != (dim,) or not np.all(np.isfinite(v)):
        return None
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else None


def store(
    conn: sqlite3.Connection,
    model_id: str,
    kind: str,
    ids: list[int],
    vectors: np.ndarray,
    dtype: str = "float16",
) -> None:
    """Keep vectors (their bytes, dtype and dimension are the record); on PostgreSQL also
    as pgvector's type, which its HNSW indexes read."""
    now = time.time()
    rows = [
        (model_id, kind, i, int(v.shape[0]), dtype, to_blob(v, dtype), now)
        for i, v in zip(ids, vectors, strict=True)
    ]
    upsert = (
        " ON CONFLICT(model_id, owner_kind, owner_id) DO UPDATE SET dim = excluded.dim, "
        "dtype = excluded.dtype, vector = excluded.vector, created_at = excluded.created_at"
    )
    if is_postgresql(conn):
        conn.executemany(
            "INSERT INTO embeddings(model_id, owner_kind, owner_id, dim, dtype, vector, "
            f"created_at, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?::vector){upsert}, "
            "embedding = excluded.embedding",
            [(*row, vector_literal(v)) for row, v in zip(rows, vectors, strict=True)],
        )
        return
    conn.executemany(
        "INSERT INTO embeddings(model_id, owner_kind, owner_id, dim, dtype, vector, "
        f"created_at) VALUES (?, ?, ?, ?, ?, ?, ?){upsert}",
        rows,
    )


class NumpyIndex:
    """Exact cosine search over unit vectors (dot products), grown in chunks."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._ids = np.empty(0, dtype=np.int64)
        self._matrix = np.empty((0, dim), dtype=np.float32)
        self._position: dict[int, int] = {}
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    def add(self, ids: list[int], vectors: np.ndarray) -> None:
        with self._lock:
            fresh = []
            for i, v in zip(ids, vectors, strict=True):
                pos = self._position.get(i)
                if pos is not None:
                    self._matrix[pos] = v
                else:
                    fresh.append((i, v))
            if not fresh:
                return
            need = self._size + len(fresh)
            if need > self._matrix.shape[0]:
                cap = max(need, int(self._matrix.shape[0] * 1.5) + 1024)
                matrix = np.zeros((cap, self.dim), dtype=np.float32)
                matrix[: self._size] = self._matrix[: self._size]
                ids_arr = np.full(cap, -1, dtype=np.int64)
                ids_arr[: self._size] = self._ids[: self._size]
                self._matrix, self._ids = matrix, ids_arr
            for i, v in fresh:
                self._matrix[self._size] = v
                self._ids[self._size] = i
                self._position[i] = self._size
                self._size += 1

    def remove(self, ids: Iterable[int]) -> None:
        with self._lock:
            for i in ids:
                pos = self._position.pop(i, None)
                if pos is None:
                    continue
                last = self._size - 1
                if pos != last:
                    self._matrix[pos] = self._matrix[last]
                    moved = int(self._ids[last])
                    self._ids[pos] = moved
                    self._position[moved] = pos
                self._ids[last] = -1
                self._size -= 1

    def search(
        self, vector: np.ndarray, k: int, allowed: set[int] | None = None
    ) -> list[tuple[int, float]]:
        with self._lock:
            if self._size == 0:
                return []
            scores = self._matrix[: self._size] @ np.asarray(vector, dtype=np.float32)
            ids = self._ids[: self._size]
            if allowed is not None:
                mask = np.isin(ids, np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
                scores = np.where(mask, scores, -2.0)
            k = min(k, self._size)
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [(int(ids[t]), float(scores[t])) for t in top if scores[t] > -2.0]


class PromptVectors:
    """The prompt (or image) index of one model for one catalog, loaded on first use and
    kept fresh."""

    def __init__(self, model_id: str, dim: int, kind: str = "prompt") -> None:
        self.model_id = model_id
        self.kind = kind
        self.index = NumpyIndex(dim)
        self.loaded = False
        self.corrupt: list[int] = []

    def load(self, conn: sqlite3.Connection) -> None:
        ids, rows = [], []
        for owner_id, dim, dtype, blob in conn.execute(
            "SELECT owner_id, dim, dtype, vector FROM embeddings "
            "WHERE model_id = ? AND owner_kind = ?",
            (self.model_id, self.kind),
        ):
            v = from_blob(blob, dim, dtype) if dim == self.index.dim else None
            if v is None:
                self.corrupt.append(owner_id)
                continue
            ids.append(owner_id)
            rows.append(v)
        if ids:
            self.index.add(ids, np.vstack(rows))
        self.loaded = True
