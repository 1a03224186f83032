"""Prompt vectors for a catalog: the embedding stage, neighbours, ``similar:`` and
"more like this". One index per (catalog file, model) per process, shared by threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dreamdepot.media.video import decode_still
from dreamdepot.semantic.embedders import Embedder, embedder_for_library
from dreamdepot.semantic.vectors import PromptVectors, store

SIMILAR_K = 300
SIMILAR_MIN_SCORE = 0.45
SIMILAR_IMAGE_MIN_SCORE = 0.15  # CLIP text-to-image cosines are low; this keeps the top ones
IMAGE_SIDE = 224

_indexes: dict[tuple[str, str, str], PromptVectors] = {}
_lock = threading.Lock()


def library_embedder(conn: sqlite3.Connection) -> Embedder:
    """The embedder this catalog's library is configured with."""
    return embedder_for_library(Path(catalog_file(conn)).parent)


def catalog_file(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2])


def prompt_vectors(
    conn: sqlite3.Connection, embedder: Embedder, kind: str = "prompt"
) -> PromptVectors:
    """The loaded prompt (or image) index of this catalog, loaded from the table once."""
    key = (catalog_file(conn), embedder.model_id, kind)
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
    conn: sqlite3.Connection, pv: PromptVectors, ids: list[int], vectors: np.ndarray
) -> None:
    """Store one batch of vectors (its own transaction: resumable) and add it to the index."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        store(conn, pv.model_id, pv.kind, ids, vectors)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    pv.index.add(ids, vectors)


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
    pv = prompt_vectors(conn, embedder)
    redo = set(pv.corrupt)
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
        _commit(conn, pv, ids, embedder.embed_texts([r[1] for r in part]))
        done += len(ids)
        if progress is not None:
            progress.advance(len(ids))
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
    iv = prompt_vectors(conn, embedder, "image")
    library_dir = Path(catalog_file(conn)).parent
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
            thumb_path = library_dir / "thumbs" / thumb if thumb else None
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
            _commit(conn, iv, ids, embed_images(pictures))
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
    pv = prompt_vectors(conn, embedder)
    if vector is None:
        vector = embedder.embed_texts([text])[0]
    return [(i, s) for i, s in pv.index.search(vector, k, allowed) if s >= min_score]


def prompt_vector(
    conn: sqlite3.Connection, prompt_id: int, embedder: Embedder | None = None
) -> np.ndarray | None:
    embedder = embedder or library_embedder(conn)
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
        iv = prompt_vectors(conn, embedder, "image")
        pictures = [
            i for i, s in iv.index.search(vector, SIMILAR_K) if s >= SIMILAR_IMAGE_MIN_SCORE
        ]
        if pictures:
            clauses.append(f"images.id IN ({','.join(map(str, pictures))})")
    return (" OR ".join(clauses) if clauses else "0"), []
