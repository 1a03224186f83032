"""The single writer that turns probes into catalog rows, a batch per transaction.

Identity is by content: a probe whose content hash is already known links its file to
that image (a copy, a move or a rename keeps tags, rating and history). A file whose
content changed in place moves to a new image, and the user's tags, rating and favourite
follow it when nothing else still holds the old content.

The content hash is sampled (media/identity.py), so two different files can share it. The
pipeline reads the whole file whenever a sampled hash is already taken and passes its full
hash in the probe: a link is made only when the full hashes agree; when they differ the file
gets an image of its own, keyed by :func:`distinct_key`. A known path whose file changed but
kept its samples (an equal-size in-place edit), or one read again because a newer schema
asked for it, refreshes its image's fields.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from dreamdepot.catalog.engine import is_postgresql, value_in
from dreamdepot.catalog.paths import to_db
from dreamdepot.catalog.records import Probe

_IMAGE_COLUMNS = (
    "content_hash", "bytes", "format", "width", "height", "created_at", "indexed_at",
    "generator", "generator_version", "model", "model_hash", "vae", "sampler", "scheduler",
    "steps", "cfg_scale", "seed", "denoise", "clip_skip", "prompt_id", "negative_prompt_id",
    "loras", "params", "raw_metadata", "metadata_source", "metadata_error", "model_raw",
    "full_hash", "duration", "frame_count", "fps",
)  # fmt: skip
_INSERT_IMAGE = (
    f"INSERT INTO images ({', '.join(_IMAGE_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _IMAGE_COLUMNS)}) RETURNING id"
)
_FIELD_NAMES = _IMAGE_COLUMNS[7:19]
_REFRESHED = (
    *_IMAGE_COLUMNS[1:5],
    *_IMAGE_COLUMNS[7:],
)  # all but hash and dates


def distinct_key(content_hash: str, full_hash: str) -> str:
    """The key of an image whose sampled hash is another's: still 32 hex characters (URLs and
    thumbnail names keep their shape), derived from both hashes so it is stable.

    >>> len(distinct_key("ab" * 16, "cd" * 32)), distinct_key("a", "b") == distinct_key("a", "b")
    (32, True)
    """
    return hashlib.blake2b(f"{content_hash}:{full_hash}".encode(), digest_size=16).hexdigest()


# PostgreSQL types of the columns the bulk path inserts (as in migrations/postgresql/0001)
_PG_IMAGE_TYPES = (
    "text", "bigint", "text", "integer", "integer", "double precision", "double precision",
    "text", "text", "text", "text", "text", "text", "text", "integer", "double precision",
    "bigint", "double precision", "integer", "bigint", "bigint", "text", "text", "text", "text",
    "text", "text", "text", "double precision", "integer", "double precision",
)  # fmt: skip
_PG_FILE_TYPES = (
    "bigint", "text", "bigint", "bigint", "bigint", "double precision", "double precision", "text"
)  # fmt: skip
_PY_TYPES: dict[str, type] = {"text": str, "bigint": int, "integer": int}


def _columns_as_arrays(
    rows: list[tuple[object, ...]], types: tuple[str, ...]
) -> tuple[list[list[object]], str]:
    """Rows as one array per column, and the ``unnest(...)`` that reads them back as rows:
    a batch becomes one statement whose text is the same whatever its size."""
    arrays = []
    for values, pg_type in zip(zip(*rows, strict=True), types, strict=True):
        cast = _PY_TYPES.get(pg_type, float)
        arrays.append([None if v is None else cast(v) for v in values])
    unnest = "unnest(" + ", ".join(f"?::{t}[]" for t in types) + ")"
    return arrays, unnest


NOT_UTF8 = (
    "its name is not valid UTF-8, which a PostgreSQL catalog cannot store (names are text "
    "there): rename the file to index it"
)


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
        # images named by the sampled hashes of the batch being written (None: no image)
        self._batch_images: dict[str, tuple[int, str | None] | None] = {}
        # PostgreSQL text holds only valid UTF-8: other names are reported, not indexed
        self.text_names = is_postgresql(conn)

    def stored_name(self, rel: str) -> str | bytes:
        """How the catalog keeps a file's relative name: as it is, or its raw bytes when it
        is not UTF-8 (SQLite); on PostgreSQL such a name is kept, escaped, only in the
        report of files that could not be indexed."""
        key = to_db(rel)
        if isinstance(key, bytes) and self.text_names:
            return key.decode("utf-8", errors="backslashreplace")
        return key

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
            self._look_up_images(p.content_hash for p in probes if p.content_hash)
            bulk: list[Probe] = []
            for p in probes:
                key = self.stored_name(p.rel_path)
                if isinstance(key, str) and key != p.rel_path:  # not UTF-8, on PostgreSQL
                    p = replace(p, vanished=False, error=NOT_UTF8)
                known = existing.get(p.rel_path)
                if p.vanished:
                    counts.vanished += 1
                    if known:
                        conn.execute(
                            "UPDATE files SET state = 'missing' WHERE id = ?", (known.file_id,)
                        )
                    continue
                if self.text_names and known is None and p.error is None:
                    bulk.append(p)  # a new file: written with the others, below
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
                image_id = self._image_for(p, now, counts, known)
                if known:
                    conn.execute(
                        "UPDATE files SET size = ?, mtime_ns = ?, image_id = ?, state = 'present',"
                        " last_seen = ?, full_hash = ? WHERE id = ?",
                        (p.size, p.mtime_ns, image_id, now, p.full_hash, known.file_id),
                    )
                    counts.updated += 1
                    if known.image_id != image_id:
                        self._release(known.image_id, image_id)
                    existing[p.rel_path] = Existing(known.file_id, image_id)
                else:
                    row = conn.execute(
                        "INSERT INTO files(root_id, rel_path, size, mtime_ns, image_id, state,"
                        " first_seen, last_seen, full_hash) VALUES (?, ?, ?, ?, ?, 'present', ?,"
                        " ?, ?) ON CONFLICT(root_id, rel_path) DO UPDATE SET size = excluded.size,"
                        " mtime_ns = excluded.mtime_ns, image_id = excluded.image_id, "
                        "state = 'present', last_seen = excluded.last_seen, "
                        "full_hash = excluded.full_hash RETURNING id",
                        (root_id, key, p.size, p.mtime_ns, image_id, now, now, p.full_hash),
                    ).fetchone()
                    existing[p.rel_path] = Existing(int(row[0]), image_id)
                if p.rel_path in error_paths:
                    conn.execute(
                        "DELETE FROM scan_errors WHERE root_id = ? AND rel_path = ?",
                        (root_id, key),
                    )
                    error_paths.discard(p.rel_path)
            if bulk:
                self._add_new_files(root_id, bulk, existing, error_paths, counts, now)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._prompt_ids.clear()
            raise
        finally:
            self._batch_images.clear()
        return counts

    def _add_new_files(
        self,
        root_id: int,
        probes: list[Probe],
        existing: dict[str, Existing],
        error_paths: set[str],
        counts: WriteCounts,
        now: float,
    ) -> None:
        """PostgreSQL: a batch's new files in two statements — one INSERT of the images
        their content needs, one of the files — rather than two round trips per file (the
        counters are then kept once per statement, migrations/postgresql/0003). The files
        link exactly as one by one: to an image that holds the same content, or one that an
        earlier file of the batch brought."""
        new_images: dict[str, tuple[object, ...]] = {}
        new_full: dict[str, str | None] = {}  # key of a new image -> its full hash
        image_of: dict[str, int | str] = {}  # path -> image id, or the key of a new image
        for p in probes:
            assert p.content_hash is not None
            key = p.content_hash
            row = self._image_row(key)
            held = row[1] if row is not None else new_full.get(key)
            taken = row is not None or key in new_images
            if taken and p.full_hash and held and held != p.full_hash:
                # same samples, different bytes: never the same image
                key = distinct_key(p.content_hash, p.full_hash)
                row = self._image_row(key)
            if row is None and key not in new_images:
                new_full[key] = p.full_hash
                values = self._values(p)
                new_images[key] = (key, *values[:4], p.mtime_ns / 1e9, now, *values[4:])
                counts.new_images += 1
                image_of[p.rel_path] = key
                continue
            counts.linked += 1
            if row is None:  # content an earlier file of this batch brought
                image_of[p.rel_path] = key
                continue
            if p.full_hash and not row[1]:
                self.conn.execute(
                    "UPDATE images SET full_hash = ? WHERE id = ?", (p.full_hash, row[0])
                )
                self._batch_images[key] = (row[0], p.full_hash)
            image_of[p.rel_path] = row[0]
        made: dict[str, int] = {}
        if new_images:
            arrays, unnest = _columns_as_arrays(list(new_images.values()), _PG_IMAGE_TYPES)
            for r in self.conn.execute(
                f"INSERT INTO images ({', '.join(_IMAGE_COLUMNS)}) SELECT * FROM {unnest} "
                "RETURNING content_hash, id",
                arrays,
            ):
                made[r[0]] = int(r[1])
                self._batch_images[r[0]] = (int(r[1]), None)
        files: list[tuple[object, ...]] = []
        for p in probes:
            image = image_of[p.rel_path]
            image_id = made[image] if isinstance(image, str) else image
            files.append((root_id, p.rel_path, p.size, p.mtime_ns, image_id, now, now, p.full_hash))
        arrays, unnest = _columns_as_arrays(files, _PG_FILE_TYPES)
        for r in self.conn.execute(
            "INSERT INTO files(root_id, rel_path, size, mtime_ns, image_id, first_seen, "
            f"last_seen, full_hash, state) SELECT *, 'present' FROM {unnest} "
            "ON CONFLICT(root_id, rel_path) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, image_id = excluded.image_id, state = 'present', "
            "last_seen = excluded.last_seen, full_hash = excluded.full_hash "
            "RETURNING rel_path, id, image_id",
            arrays,
        ):
            existing[r[0]] = Existing(int(r[1]), int(r[2]))
        cleared = [p.rel_path for p in probes if p.rel_path in error_paths]
        if cleared:
            self.conn.executemany(
                "DELETE FROM scan_errors WHERE root_id = ? AND rel_path = ?",
                [(root_id, rel) for rel in cleared],
            )
            error_paths.difference_update(cleared)

    def _look_up_images(self, hashes: Iterable[str]) -> None:
        """The images a batch's sampled hashes already name, in one query (not one per
        file: on PostgreSQL each statement is a round trip)."""
        wanted = list(set(hashes))
        self._batch_images = dict.fromkeys(wanted)
        if wanted:
            where, params = value_in(self.conn, "content_hash", wanted)
            for r in self.conn.execute(
                f"SELECT content_hash, id, full_hash FROM images WHERE {where}", params
            ):
                self._batch_images[r[0]] = (int(r[1]), r[2])

    def _image_row(self, key: str) -> tuple[int, str | None] | None:
        """(id, full hash) of the image keyed ``key``, if there is one."""
        if key in self._batch_images:
            return self._batch_images[key]
        row = self.conn.execute(
            "SELECT id, full_hash FROM images WHERE content_hash = ?", (key,)
        ).fetchone()
        return (int(row[0]), row[1]) if row is not None else None

    def _image_for(
        self, p: Probe, now: float, counts: WriteCounts, known: Existing | None = None
    ) -> int:
        """The image this probe's content belongs to, made when there is none."""
        assert p.content_hash is not None
        key = p.content_hash
        row = self._image_row(key)
        if row is not None and p.full_hash and row[1] and row[1] != p.full_hash:
            # same samples, different bytes: never the same image
            key = distinct_key(p.content_hash, p.full_hash)
            row = self._image_row(key)
        if row is not None:
            image_id = row[0]
            if known is not None and known.image_id == image_id:
                # this path's file was read again (it changed but kept its samples, or a
                # newer schema asked for it): the file as it is read now is the image
                p.full_hash = p.full_hash or row[1]
                self._refresh(image_id, p)
            elif p.full_hash and not row[1]:
                self.conn.execute(
                    "UPDATE images SET full_hash = ? WHERE id = ?", (p.full_hash, image_id)
                )
            if key in self._batch_images:
                self._batch_images[key] = (image_id, p.full_hash or row[1])
            counts.linked += 1
            return image_id
        values = self._values(p)
        counts.new_images += 1
        insert = (key, *values[:4], p.mtime_ns / 1e9, now, *values[4:])
        image_id = int(self.conn.execute(_INSERT_IMAGE, insert).fetchone()[0])
        self._batch_images[key] = (image_id, p.full_hash)
        return image_id

    def _values(self, p: Probe) -> tuple[object, ...]:
        """The probe's values for every image column but the key and the two dates."""
        f = p.fields or {}
        return (
            p.size, p.format, p.width, p.height,
            *(f.get(name) for name in _FIELD_NAMES),
            self.prompt_id(p.prompt), self.prompt_id(p.negative_prompt),
            f.get("loras"), f.get("params"), f.get("raw_metadata"), f.get("metadata_source"),
            p.metadata_error, f.get("model_raw"), p.full_hash, p.duration, p.frames, p.fps,
        )  # fmt: skip

    def _refresh(self, image_id: int, p: Probe) -> None:
        assignments = ", ".join(f"{c} = ?" for c in _REFRESHED)
        self.conn.execute(
            f"UPDATE images SET {assignments} WHERE id = ?", (*self._values(p), image_id)
        )

    def split_file(self, file_id: int, old_image: int, p: Probe) -> bool:
        """Move one file to the image its own content belongs to (``p`` carries its full
        hash), keeping the user's data on both images; False when it already is there."""
        counts = WriteCounts()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            new_image = self._image_for(p, time.time(), counts)
            if new_image != old_image:
                self.conn.execute(
                    "UPDATE files SET image_id = ? WHERE id = ?", (new_image, file_id)
                )
                self._copy_user_data(old_image, new_image)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            self._prompt_ids.clear()
            raise
        finally:
            self._batch_images.clear()
        return new_image != old_image

    def _copy_user_data(self, old_image: int, new_image: int) -> None:
        """Tags (with their sources), rating, favourite and albums of ``old_image`` also on
        ``new_image`` (what the new image already has wins)."""
        conn = self.conn
        conn.execute(
            "INSERT INTO image_tags(tag_id, image_id, source, confidence, created_at)"
            " SELECT tag_id, ?, source, confidence, created_at FROM image_tags"
            " WHERE image_id = ? ON CONFLICT DO NOTHING",
            (new_image, old_image),
        )
        conn.execute(
            "UPDATE images SET"
            " rating = coalesce(rating, (SELECT rating FROM images WHERE id = :old)),"
            " favorite = CASE WHEN (SELECT favorite FROM images WHERE id = :old) = 1"
            " THEN 1 ELSE favorite END"
            " WHERE id = :new",
            {"old": old_image, "new": new_image},
        )
        conn.execute(
            "INSERT INTO album_images(album_id, image_id, added_at) "
            "SELECT album_id, ?, added_at FROM album_images WHERE image_id = ? "
            "ON CONFLICT DO NOTHING",
            (new_image, old_image),
        )

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
            self._copy_user_data(old_image, new_image)
        conn.execute("DELETE FROM images WHERE id = ?", (old_image,))
