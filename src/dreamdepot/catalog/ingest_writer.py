"""The single writer that turns probes into catalog rows, a batch per transaction.

Identity is by content: a probe whose content hash is already known links its file to
that image (a copy, a move or a rename keeps tags, rating and history). A file whose
content changed in place moves to a new image, and the user's tags, rating and favourite
follow it when nothing else still holds the old content.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from dreamdepot.ingest.paths import to_db
from dreamdepot.ingest.probe import Probe

_IMAGE_COLUMNS = (
    "content_hash", "bytes", "format", "width", "height", "created_at", "indexed_at",
    "generator", "generator_version", "model", "model_hash", "vae", "sampler", "scheduler",
    "steps", "cfg_scale", "seed", "denoise", "clip_skip", "prompt_id", "negative_prompt_id",
    "loras", "params", "raw_metadata", "metadata_source", "metadata_error",
)  # fmt: skip
_INSERT_IMAGE = (
    f"INSERT INTO images ({', '.join(_IMAGE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _IMAGE_COLUMNS)}) RETURNING id"
)
_FIELD_NAMES = _IMAGE_COLUMNS[7:19]


@dataclass
class Existing:
    """A file row the catalog already had for a path."""

    file_id: int
    image_id: int


@dataclass
class WriteCounts:
    new_images: int = 0
    linked: int = 0
    updated: int = 0
    errors: int = 0
    vanished: int = 0

    def add(self, other: WriteCounts) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class IngestWriter:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._prompt_ids: dict[str, int] = {}

    def prompt_id(self, text: str | None) -> int | None:
        if text is None:
            return None
        pid = self._prompt_ids.get(text)
        if pid is None:
            row = self.conn.execute(
                "INSERT INTO prompts(text) VALUES (?) ON CONFLICT(text) DO NOTHING RETURNING id",
                (text,),
            ).fetchone()
            if row is None:
                row = self.conn.execute("SELECT id FROM prompts WHERE text = ?", (text,)).fetchone()
            pid = int(row[0])
            if len(self._prompt_ids) > 200_000:
                self._prompt_ids.clear()
            self._prompt_ids[text] = pid
        return pid

    def apply(
        self,
        root_id: int,
        probes: list[Probe],
        existing: dict[str, Existing],
        error_paths: set[str],
    ) -> WriteCounts:
        """Write one batch in one transaction; the caller retries nothing on failure."""
        counts = WriteCounts()
        now = time.time()
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for p in probes:
                key = to_db(p.rel_path)
                known = existing.get(p.rel_path)
                if p.vanished:
                    counts.vanished += 1
                    if known:
                        conn.execute(
                            "UPDATE files SET state = 'missing' WHERE id = ?", (known.file_id,)
                        )
                    continue
                if p.error is not None:
                    counts.errors += 1
                    conn.execute(
                        "INSERT INTO scan_errors(root_id, rel_path, size, mtime_ns, reason, at) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(root_id, rel_path) DO UPDATE SET "
                        "size = excluded.size, mtime_ns = excluded.mtime_ns, "
                        "reason = excluded.reason, at = excluded.at",
                        (root_id, key, p.size, p.mtime_ns, p.error, now),
                    )
                    error_paths.add(p.rel_path)
                    if known:
                        conn.execute("DELETE FROM files WHERE id = ?", (known.file_id,))
                        self._release(known.image_id, None)
                        del existing[p.rel_path]
                    continue
                image_id = self._image_for(p, now, counts)
                if known:
                    conn.execute(
                        "UPDATE files SET size = ?, mtime_ns = ?, image_id = ?, state = 'present',"
                        " last_seen = ? WHERE id = ?",
                        (p.size, p.mtime_ns, image_id, now, known.file_id),
                    )
                    counts.updated += 1
                    if known.image_id != image_id:
                        self._release(known.image_id, image_id)
                    existing[p.rel_path] = Existing(known.file_id, image_id)
                else:
                    row = conn.execute(
                        "INSERT INTO files(root_id, rel_path, size, mtime_ns, image_id, state,"
                        " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, 'present', ?, ?) "
                        "ON CONFLICT(root_id, rel_path) DO UPDATE SET size = excluded.size, "
                        "mtime_ns = excluded.mtime_ns, image_id = excluded.image_id, "
                        "state = 'present', last_seen = excluded.last_seen RETURNING id",
                        (root_id, key, p.size, p.mtime_ns, image_id, now, now),
                    ).fetchone()
                    existing[p.rel_path] = Existing(int(row[0]), image_id)
                if p.rel_path in error_paths:
                    conn.execute(
                        "DELETE FROM scan_errors WHERE root_id = ? AND rel_path = ?",
                        (root_id, key),
                    )
                    error_paths.discard(p.rel_path)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._prompt_ids.clear()
            raise
        return counts

    def _image_for(self, p: Probe, now: float, counts: WriteCounts) -> int:
        row = self.conn.execute(
            "SELECT id FROM images WHERE content_hash = ?", (p.content_hash,)
        ).fetchone()
        if row is not None:
            counts.linked += 1
            return int(row[0])
        created = p.mtime_ns / 1e9
        f = p.fields or {}
        values = (
            p.content_hash, p.size, p.format, p.width, p.height, created, now,
            *(f.get(name) for name in _FIELD_NAMES),
            self.prompt_id(p.prompt), self.prompt_id(p.negative_prompt),
            f.get("loras"), f.get("params"), f.get("raw_metadata"), f.get("metadata_source"),
            p.metadata_error,
        )  # fmt: skip
        counts.new_images += 1
        return int(self.conn.execute(_INSERT_IMAGE, values).fetchone()[0])

    def _release(self, old_image: int, new_image: int | None) -> None:
        """The old image lost a file; if it has none left, hand its user data on and drop it
        (an image with user data and no successor stays, to be listed as missing)."""
        conn = self.conn
        if conn.execute("SELECT 1 FROM files WHERE image_id = ? LIMIT 1", (old_image,)).fetchone():
            return
        has_user_data = conn.execute(
            "SELECT (SELECT count(*) FROM image_tags WHERE image_id = :i) "
            "+ (SELECT coalesce(rating, 0) + favorite FROM images WHERE id = :i)",
            {"i": old_image},
        ).fetchone()[0]
        if new_image is None:
            if not has_user_data:
                conn.execute("DELETE FROM images WHERE id = ?", (old_image,))
            return
        if has_user_data:
            conn.execute(
                "INSERT OR IGNORE INTO image_tags(tag_id, image_id, source, confidence, created_at)"
                " SELECT tag_id, ?, source, confidence, created_at FROM image_tags"
                " WHERE image_id = ?",
                (new_image, old_image),
            )
            conn.execute(
                "UPDATE images SET"
                " rating = coalesce(rating, (SELECT rating FROM images WHERE id = :old)),"
                " favorite = max(favorite, (SELECT favorite FROM images WHERE id = :old))"
                " WHERE id = :new",
                {"old": old_image, "new": new_image},
            )
        conn.execute("DELETE FROM images WHERE id = ?", (old_image,))
