"""Prompt vectors for a catalog: the embedding stage, neighbours, ``similar:`` and
"more like this". SQLite: one exact in-memory index per (catalog file, model) per process,
shared by threads. PostgreSQL: searched where they are stored, through pgvector's HNSW
index of that model (so every process sees every other's vectors at once)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dreamdepot.catalog.engine import catalog_key, is_postgresql, library_dir
from dreamdepot.media.video import decode_still
from dreamdepot.semantic.embedders import Embedder, embedder_for_library
from dreamdepot.semantic.vectors import PromptVectors, from_blob, store

SIMILAR_K = 300
SIMILAR_MIN_SCORE = 0.45
SIMILAR_IMAGE_MIN_SCORE = 0.15  # CLIP text-to-image cosines are low; this keeps the top ones
IMAGE_SIDE = 224

_indexes: dict[tuple[str, str, str], PromptVectors] = {}
_lock = threading.Lock()


def library_embedder(conn: sqlite3.Connection) -> Embedder:
    """The embedder this catalog's library is configured with."""
    return embedder_for_library(library_dir(conn))


def prompt_vectors(
    conn: sqlite3.Connection, embedder: Embedder, kind: str = "prompt"
) -> PromptVectors:
    """The loaded prompt (or image) index of this catalog, loaded from the table once."""
    key = (catalog_key(conn), embedder.model_id, kind)
    with _lock:
        pv = _indexes.get(key)
        if pv is None:
            pv = PromptVectors(embedder.model_id, embedder.dim, kind)
            _indexes[key] = pv
    if not pv.loaded:
        with _lock:
            if not pv.loaded:
                pv.load(conn)
    return pv


def _commit(
    conn: sqlite3.Connection,
    embedder: Embedder,
    kind: str,
    ids: list[int],
    vectors: np.ndarray,
) -> None:
    """Store one batch of vectors (its own transaction: resumable) and add it to the index."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        store(conn, embedder.model_id, kind, ids, vectors)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if is_postgresql(conn):
        _ensure_pg_index(conn, embedder, kind)
    else:
        prompt_vectors(conn, embedder, kind).index.add(ids, vectors)


_pg_indexes: set[tuple[str, str, str, int]] = set()


def _ensure_pg_index(conn: Any, embedder: Embedder, kind: str) -> None:
    """The model's HNSW index exists (made once; PostgreSQL keeps it up to date after)."""
    from dreamdepot.catalog.postgres import ensure_vector_index

    key = (catalog_key(conn), embedder.model_id, kind, embedder.dim)
    if key not in _pg_indexes:
        ensure_vector_index(conn, embedder.model_id, kind, embedder.dim)
        _pg_indexes.add(key)


def nearest(
    conn: sqlite3.Connection,
    embedder: Embedder,
    kind: str,
    vector: np.ndarray,
    k: int,
    allowed: set[int] | None = None,
) -> list[tuple[int, float]]:
    """Owners of the ``k`` vectors of this model closest to ``vector`` (cosine, best
    first), only among ``allowed`` when given."""
    if is_postgresql(conn):
        from dreamdepot.catalog.postgres import nearest as pg_nearest

        return pg_nearest(conn, embedder.model_id, kind, vector, k, allowed=allowed)
    return prompt_vectors(conn, embedder, kind).index.search(vector, k, allowed)


def _corrupt(conn: sqlite3.Connection, embedder: Embedder, kind: str) -> set[int]:
    """Owners whose stored vector cannot be read back (they are embedded again)."""
    if is_postgresql(conn):
        return {
            int(r[0])
            for r in conn.execute(
                "SELECT owner_id FROM embeddings WHERE model_id = ? AND owner_kind = ? AND "
                "(dim <> ? OR embedding IS NULL OR octet_length(vector) <> dim * "
                "CASE dtype WHEN 'float16' THEN 2 WHEN 'float32' THEN 4 ELSE 0 END)",
                (embedder.model_id, kind, embedder.dim),
            )
        }
    return set(prompt_vectors(conn, embedder, kind).corrupt)


def embed_pending(
    conn: sqlite3.Connection,
    embedder: Embedder | None = None,
    progress: Any = None,
    batch: int = 256,
) -> int:
    """Embed every prompt that has no vector for this model (and re-embed corrupt rows).

    Commits per batch, so an interrupted run resumes where it stopped.
    """
    embedder = embedder or library_embedder(conn)
    redo = _corrupt(conn, embedder, "prompt")
    rows = conn.execute(
        "SELECT id, text FROM prompts WHERE id NOT IN (SELECT owner_id FROM embeddings "
        "WHERE model_id = ? AND owner_kind = 'prompt') ORDER BY id",
        (embedder.model_id,),
    ).fetchall()
    if redo:
        rows += conn.execute(
            f"SELECT id, text FROM prompts WHERE id IN ({','.join('?' * len(redo))})", sorted(redo)
        ).fetchall()
    if not rows:
        return 0
    if progress is not None:
        progress.begin("Embedding prompts", len(rows))
    done = 0
    for i in range(0, len(rows), batch):
        part = rows[i : i + batch]
        ids = [int(r[0]) for r in part]
        _commit(conn, embedder, "prompt", ids, embedder.embed_texts([r[1] for r in part]))
        done += len(ids)
        if progress is not None:
            progress.advance(len(ids))
    if not is_postgresql(conn):
        pv = prompt_vectors(conn, embedder)
        pv.corrupt = [c for c in pv.corrupt if c not in redo]
    return done


def embed_images_pending(
    conn: sqlite3.Connection,
    embedder: Embedder | None = None,
    progress: Any = None,
    batch: int = 32,
) -> int:
    """Embed images' pixels when the embedder can (CLIP), so words find pictures by what
    they show; reads the grid thumbnail when there is one, else the original file."""

    from dreamdepot.catalog.paths import from_db

    embedder = embedder or library_embedder(conn)
    embed_images = getattr(embedder, "embed_images", None)
    if embed_images is None:
        return 0
    folder = library_dir(conn)
    rows = conn.execute(
        "SELECT i.id, i.thumb_key, r.path, f.rel_path FROM images i JOIN files f ON f.id = "
        "(SELECT id FROM files WHERE image_id = i.id AND state = 'present' LIMIT 1) "
        "JOIN roots r ON r.id = f.root_id WHERE i.id NOT IN (SELECT owner_id FROM embeddings "
        "WHERE model_id = ? AND owner_kind = 'image') ORDER BY i.id",
        (embedder.model_id,),
    ).fetchall()
    if not rows:
        return 0
    if progress is not None:
        progress.begin("Embedding images", len(rows))
    done = 0
    for i in range(0, len(rows), batch):
        ids, pictures = [], []
        for image_id, thumb, root, rel in rows[i : i + batch]:
            thumb_path = folder / "thumbs" / thumb if thumb else None
            source = (
                thumb_path if thumb_path and thumb_path.is_file() else Path(root) / from_db(rel)
            )
            try:
                im = decode_still(source, IMAGE_SIDE)
                im.thumbnail((IMAGE_SIDE * 2, IMAGE_SIDE * 2))
                pictures.append(im.convert("RGB"))
                ids.append(int(image_id))
            except (OSError, ValueError, SyntaxError):
                continue  # unreadable pixels: the thumbnail stage records why
        if ids:
            _commit(conn, embedder, "image", ids, embed_images(pictures))
            done += len(ids)
        if progress is not None:
            progress.advance(len(rows[i : i + batch]))
    return done


def neighbours(
    conn: sqlite3.Connection,
    text: str,
    k: int = 20,
    min_score: float = 0.0,
    embedder: Embedder | None = None,
    vector: np.ndarray | None = None,
    allowed: set[int] | None = None,
) -> list[tuple[int, float]]:
    """Prompt ids most similar to ``text`` (cosine), best first; only ids in ``allowed``
    when it is given (the filter is inside the search, so k results still come back)."""
    embedder = embedder or library_embedder(conn)
    if vector is None:
        vector = embedder.embed_texts([text])[0]
    return [
        (i, s) for i, s in nearest(conn, embedder, "prompt", vector, k, allowed) if s >= min_score
    ]


# how many unfiltered candidates a scoped search reads first, and at most (x4 each round;
# pgvector's HNSW scan returns at most 1,000 rows)
SCOPED_FIRST, SCOPED_MOST = 80, 1000


def neighbours_in_scope(
    conn: sqlite3.Connection,
    embedder: Embedder,
    vector: np.ndarray,
    k: int,
    where: str,
    params: list[Any],
    min_score: float = 0.0,
) -> list[tuple[int, float]]:
    """The ``k`` prompts nearest ``vector`` that have an image satisfying ``where`` (SQL over
    ``images``), best first; at least ``min_score`` when it is given.

    Why not "filter inside the search": on a shared instance the scope (what the requester
    may see) admits most of a million prompts, and listing them for an exact scan costs a
    second. So the index is searched unfiltered and its candidates are checked in SQL,
    reading 4x more while fewer than ``k`` pass and the candidates are still at least
    ``min_score`` (below that, nothing further could be kept either). Only a scope that
    rejects thousands of close candidates in a row — a narrow one — is ranked exactly
    among its own prompts instead.
    """
    fetch = min(max(SCOPED_FIRST, 4 * k), SCOPED_MOST)
    while True:
        found = nearest(conn, embedder, "prompt", vector, fetch)
        kept = _in_scope(conn, [i for i, _ in found], where, params)
        result = [(i, s) for i, s in found if i in kept and s >= min_score][:k]
        exhausted = len(found) < fetch or (found and found[-1][1] < min_score)
        if len(result) >= k or exhausted:
            return result
        if fetch >= SCOPED_MOST:
            break
        fetch = min(fetch * 4, SCOPED_MOST)
    allowed = prompts_in_scope(conn, where, params)
    return [
        (i, s) for i, s in nearest(conn, embedder, "prompt", vector, k, allowed) if s >= min_score
    ]


def prompts_in_scope(conn: sqlite3.Connection, where: str, params: list[Any]) -> set[int]:
    """Every prompt with an image satisfying ``where`` (linear in the library: the narrow
    scope's exact ranking only)."""
    return {
        int(r[0])
        for r in conn.execute(
            f"SELECT DISTINCT images.prompt_id FROM images WHERE ({where}) "
            "AND images.prompt_id IS NOT NULL",
            params,
        )
    }


def _in_scope(conn: sqlite3.Connection, ids: list[int], where: str, params: list[Any]) -> set[int]:
    """Which of these prompt ids have an image satisfying ``where``."""
    if not ids:
        return set()
    return {
        int(r[0])
        for r in conn.execute(
            f"SELECT DISTINCT images.prompt_id FROM images WHERE images.prompt_id IN "
            f"({','.join(str(int(i)) for i in ids)}) AND ({where})",
            params,
        )
    }


def prompt_vector(
    conn: sqlite3.Connection, prompt_id: int, embedder: Embedder | None = None
) -> np.ndarray | None:
    embedder = embedder or library_embedder(conn)
    if is_postgresql(conn):
        stored = conn.execute(
            "SELECT dim, dtype, vector FROM embeddings WHERE model_id = ? AND "
            "owner_kind = 'prompt' AND owner_id = ?",
            (embedder.model_id, prompt_id),
        ).fetchone()
        v = from_blob(bytes(stored[2]), stored[0], stored[1]) if stored else None
        if v is not None and v.shape == (embedder.dim,):
            return v
    else:
        pv = prompt_vectors(conn, embedder)
        pos = pv.index._position.get(prompt_id)
        if pos is not None:
            return pv.index._matrix[pos].copy()
    row = conn.execute("SELECT text FROM prompts WHERE id = ?", (prompt_id,)).fetchone()
    return None if row is None else embedder.embed_texts([row[0]])[0]


def similar_clause(conn: sqlite3.Connection, text: str) -> tuple[str, list[Any]]:
    """SQL for ``similar:"..."``: images whose prompt is among the nearest prompts."""
    embedder = library_embedder(conn)
    vector = embedder.embed_texts([text])[0]
    found = neighbours(conn, text, SIMILAR_K, SIMILAR_MIN_SCORE, embedder, vector)
    clauses = []
    if found:
        clauses.append(f"images.prompt_id IN ({','.join(str(i) for i, _ in found)})")
    if hasattr(embedder, "embed_images"):  # words find pictures by what they show
        pictures = [
            i
            for i, s in nearest(conn, embedder, "image", vector, SIMILAR_K)
            if s >= SIMILAR_IMAGE_MIN_SCORE
        ]
        if pictures:
            clauses.append(f"images.id IN ({','.join(map(str, pictures))})")
    return (" OR ".join(clauses) if clauses else "FALSE"), []
