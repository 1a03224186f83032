"""Files people send to a shared instance (``POST /api/uploads``, ``dreamdepot push``).

An upload is checked before anything is kept: its size (``max_upload_mb``), the sender's
quota (``upload_quota_mb``), that it is an image or video ingest can read, and that its
pixel count is not a decompression bomb. Then it is stored once per content — under
``uploads/`` in the library folder, named by the SHA-256 of its bytes — and indexed exactly
as a scanned file is (the same probe and metadata readers), owned by its sender. The same
bytes sent again are answered with the image they already are.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dreamdepot.catalog.db import Catalog
from dreamdepot.catalog.visibility import can_see
from dreamdepot.ingest.pipeline import Indexer, Root
from dreamdepot.ingest.probe import probe
from dreamdepot.ingest.scanner import MEDIA_SUFFIXES
from dreamdepot.media.decode import MAX_DECODE_PIXELS
from dreamdepot.storage import BlobError, BlobStore, S3Blobs

CHUNK = 1 << 20
NOT_SHARED = "this file is already on the instance, not shared with you"


class UploadRefused(Exception):
    """An upload that was not kept, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Stored:
    image_id: int
    duplicate: bool
    sha256: str


@contextlib.contextmanager
def _removed_afterwards(path: Path) -> Iterator[None]:
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def uploads_root(catalog: Catalog, library_dir: Path, blobs: BlobStore | None = None) -> Root:
    """Where uploads live, registered as a root (not watched: only uploads write there):
    the library's ``uploads/`` folder, or the object store's ``uploads/`` prefix."""
    if isinstance(blobs, S3Blobs):
        return ensure_root(catalog, blobs.root_url("uploads"))
    path = (library_dir / "uploads").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return ensure_root(catalog, str(path))


def ensure_root(catalog: Catalog, path: str) -> Root:
    """The root at ``path`` (a folder or an object-store URL), registered unwatched."""
    with catalog.transaction() as conn:
        conn.execute(
            "INSERT INTO roots(path, watch, added_at) VALUES (?, 0, ?) "
            "ON CONFLICT(path) DO NOTHING",
            (path, time.time()),
        )
    row = catalog.conn.execute("SELECT id FROM roots WHERE path = ?", (path,)).fetchone()
    return Root(int(row[0]), path)


def receive(
    stream: IO[bytes], folder: Path, max_bytes: int, name: str = ""
) -> tuple[Path, str, int]:
    """Copy ``stream`` into a temporary file under ``folder`` (named with the upload's
    suffix), hashing as it goes; refused (and removed) past ``max_bytes`` or when empty."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".incoming-{uuid.uuid4().hex}{Path(name).suffix.lower()[:10]}"
    digest, size = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadRefused(
                        413, f"larger than the {max_bytes // (1 << 20)} MiB an upload may be"
                    )
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise UploadRefused(422, "the file is empty")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest.hexdigest(), size


def store(
    catalog: Catalog,
    library_dir: Path,
    tmp: Path,
    sha256: str,
    size: int,
    name: str,
    who: Any,
    quota_bytes: int = 0,
    blobs: BlobStore | None = None,
) -> Stored:
    """Keep a received file (see the module docstring); the temporary file is always gone
    afterwards. ``who`` is the sender (accounts.Principal, or None in a library without
    accounts). With an object store, the file goes there first (a failure is a retryable
    503 and nothing reaches the catalog), and a local copy is kept as the server's cache."""
    with _removed_afterwards(tmp):
        user_id = getattr(who, "user_id", None)
        conn = catalog.conn
        known = conn.execute("SELECT image_id FROM uploads WHERE sha256 = ?", (sha256,)).fetchone()
        if known and known[0] is not None:
            if not can_see(conn, who, int(known[0])):
                raise UploadRefused(409, NOT_SHARED)
            return Stored(int(known[0]), True, sha256)
        if quota_bytes and user_id is not None:
            used = conn.execute(
                "SELECT coalesce(sum(bytes), 0) FROM uploads WHERE user_id = ?", (user_id,)
            ).fetchone()[0]
            if int(used) + size > quota_bytes:
                raise UploadRefused(413, f"over your upload quota of {quota_bytes >> 20} MiB")
        suffix = Path(name).suffix.lower()
        if suffix not in MEDIA_SUFFIXES:
            raise UploadRefused(
                422, f"not an image or video ingest reads ({suffix or 'no suffix'})"
            )
        checked = probe(str(tmp.parent), tmp.name)
        if checked.error:
            raise UploadRefused(422, f"cannot be read: {checked.error}")
        if (checked.width or 0) * (checked.height or 0) > MAX_DECODE_PIXELS:
            raise UploadRefused(
                422, f"{checked.width}×{checked.height} pixels: more than an image may decode to"
            )
        root = uploads_root(catalog, library_dir, blobs)
        rel = f"{sha256[:2]}/{sha256}{suffix}"
        remote = isinstance(blobs, S3Blobs)
        local = library_dir / "cache" / "blobs" / "uploads" if remote else Path(root.path)
        if remote:
            assert blobs is not None
            try:
                blobs.put_file(f"uploads/{rel}", tmp)
            except BlobError as exc:
                raise UploadRefused(503, f"{exc}: nothing was kept; try again") from exc
        target = local / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)  # whole, under its final name: never half a file there

        def forget() -> None:
            target.unlink(missing_ok=True)
            if remote and blobs is not None:
                blobs.delete(f"uploads/{rel}")

        _, probes = Indexer(catalog, workers=1).index_paths(
            root, [rel], read_from=str(local) if remote else None
        )
        if probes[0].error:
            forget()
            raise UploadRefused(422, f"cannot be indexed: {probes[0].error}")
        image_id = int(
            conn.execute(
                "SELECT image_id FROM files WHERE root_id = ? AND rel_path = ?", (root.id, rel)
            ).fetchone()[0]
        )
        others = conn.execute(
            "SELECT count(*) FROM files WHERE image_id = ? AND NOT (root_id = ? AND rel_path = ?)",
            (image_id, root.id, rel),
        ).fetchone()[0]
        if others and not can_see(conn, who, image_id):  # the library holds it, privately
            with catalog.transaction() as tx:
                tx.execute("DELETE FROM files WHERE root_id = ? AND rel_path = ?", (root.id, rel))
            forget()
            raise UploadRefused(409, NOT_SHARED)
        with catalog.transaction() as tx:
            if not others:
                tx.execute("UPDATE images SET owner_id = ? WHERE id = ?", (user_id, image_id))
            tx.execute(
                "INSERT INTO uploads(sha256, image_id, user_id, bytes, name, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(sha256) DO NOTHING",
                (sha256, image_id, user_id, size, name[:500], time.time()),
            )
        return Stored(image_id, bool(others), sha256)


def have(catalog: Catalog, who: Any, hashes: list[str]) -> list[str]:
    """Which of these SHA-256s the instance already holds for ``who`` (push skips them)."""
    out = []
    for h in hashes:
        row = catalog.conn.execute("SELECT image_id FROM uploads WHERE sha256 = ?", (h,)).fetchone()
        if row and row[0] is not None and can_see(catalog.conn, who, int(row[0])):
            out.append(h)
    return out
