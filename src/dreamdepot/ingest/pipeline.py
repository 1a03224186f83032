"""The ingest pipeline: walk → diff → probe (worker processes) → write (one writer).

Stages, like beets' importer:
1. ``scanner.walk`` lists candidate files with (size, mtime_ns);
2. the diff against the catalog keeps only new or changed paths;
3. worker processes ``probe`` them in chunks (identity hash, container, metadata);
4. this process writes the probes in batches, one transaction each, so Ctrl-C or a kill
   loses at most the batch in flight and the next scan resumes where this one stopped;
5. reconcile: unseen files become *missing* (or *offline* when the root is unreachable),
   and a missing file whose content turned up elsewhere is recorded as a move.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from dreamdepot.catalog.db import Catalog
from dreamdepot.catalog.engine import value_in
from dreamdepot.catalog.ingest_writer import Existing, IngestWriter, WriteCounts
from dreamdepot.catalog.paths import from_db, to_db
from dreamdepot.catalog.records import Probe
from dreamdepot.ingest.probe import probe, probe_many
from dreamdepot.ingest.roots import Root
from dreamdepot.ingest.scanner import WalkProblems, walk
from dreamdepot.media.identity import full_hash
from dreamdepot.media.thumbs import MediaResult, make_media
from dreamdepot.workers import fork_pool, map_chunks

IN_PROCESS_BELOW = 48


class Progress(Protocol):
    """What the pipeline reports; the CLI draws it with rich, the server sends it as SSE."""

    def begin(self, description: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


class _NoProgress:
    def begin(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


@dataclass
class ScanStats:
    roots: int = 0
    seen: int = 0
    unchanged: int = 0
    probed: int = 0
    new_images: int = 0
    linked: int = 0
    updated: int = 0
    errors: int = 0
    missing: int = 0
    moved: int = 0
    offline_roots: list[str] = field(default_factory=list)
    folder_errors: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def files_per_second(self) -> float:
        return self.probed / self.seconds if self.seconds > 0 else 0.0

    def absorb(self, counts: WriteCounts) -> None:
        self.new_images += counts.new_images
        self.linked += counts.linked
        self.updated += counts.updated
        self.errors += counts.errors


class Indexer:
    """Runs scans for a catalog. One Indexer per process: it is the catalog's only writer."""

    def __init__(
        self,
        catalog: Catalog,
        workers: int | None = None,
        batch_size: int = 1000,
        stealth_check: bool = True,
        progress: Progress | None = None,
    ) -> None:
        self.catalog = catalog
        self.workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self.batch_size = batch_size
        self.stealth_check = stealth_check
        self.progress: Progress = progress or _NoProgress()
        self.writer = IngestWriter(catalog.conn)

    # -- roots -----------------------------------------------------------------------

    def roots(self) -> list[Root]:
        """The folders a scan walks (an object store's prefixes are written, not walked)."""
        rows = self.catalog.conn.execute(
            "SELECT id, path, watch, online FROM roots ORDER BY id"
        ).fetchall()
        return [
            Root(r["id"], r["path"], bool(r["watch"]), bool(r["online"]))
            for r in rows
            if "://" not in r["path"]
        ]

    # -- full scan ---------------------------------------------------------------------

    def scan(self, roots: Iterable[Root] | None = None, retry_errors: bool = False) -> ScanStats:
        started = time.perf_counter()
        stats = ScanStats()
        for root in roots if roots is not None else self.roots():
            stats.roots += 1
            self._scan_root(root, stats, retry_errors)
        stats.moved += self._record_moves()
        stats.seconds = time.perf_counter() - started
        return stats

    def _scan_root(self, root: Root, stats: ScanStats, retry_errors: bool) -> None:
        conn = self.catalog.conn
        if not os.path.isdir(root.path) or not os.access(root.path, os.R_OK | os.X_OK):
            with self.catalog.transaction():
                conn.execute("UPDATE roots SET online = 0 WHERE id = ?", (root.id,))
                conn.execute(
                    "UPDATE files SET state = 'offline' WHERE root_id = ? AND state = 'present'",
                    (root.id,),
                )
            stats.offline_roots.append(root.path)
            return
        existing, states, stat_of = self._load_files(root.id)
        error_stat = self._load_errors(root.id)
        problems = WalkProblems()
        todo: list[str] = []
        back_online: list[int] = []
        seen: set[str] = set()
        for s in walk(root.path, problems):
            seen.add(s.rel_path)
            stats.seen += 1
            known = stat_of.get(s.rel_path)
            if known == (s.size, s.mtime_ns):
                stats.unchanged += 1
                if states[s.rel_path] != "present":
                    back_online.append(existing[s.rel_path].file_id)
                continue
            err = error_stat.get(s.rel_path)
            if err == (s.size, s.mtime_ns) and not retry_errors:
                continue
            todo.append(s.rel_path)
        stats.folder_errors.extend((f"{root.path}/{p}", why) for p, why in problems.errors)
        del stat_of
        error_paths = set(error_stat)
        self._run_probes(root, todo, existing, error_paths, stats)
        missing = [
            e.file_id
            for rel, e in existing.items()
            if rel not in seen and states.get(rel, "present") != "missing"
        ]
        if self.writer.text_names:  # names reported escaped (not UTF-8) are seen as such
            seen |= {str(self.writer.stored_name(rel)) for rel in seen if not _utf8_clean(rel)}
        gone_errors = [rel for rel in error_paths if rel not in seen]
        with self.catalog.transaction():
            conn.execute(
                "UPDATE roots SET online = 1, last_scan_at = ? WHERE id = ?", (time.time(), root.id)
            )
            _update_many(conn, "UPDATE files SET state = 'present' WHERE id = ?", back_online)
            _update_many(conn, "UPDATE files SET state = 'missing' WHERE id = ?", missing)
            conn.executemany(
                "DELETE FROM scan_errors WHERE root_id = ? AND rel_path = ?",
                [(root.id, to_db(rel)) for rel in gone_errors],
            )
        stats.missing += len(missing)

    def _load_files(
        self, root_id: int
    ) -> tuple[dict[str, Existing], dict[str, str], dict[str, tuple[int, int]]]:
        existing: dict[str, Existing] = {}
        states: dict[str, str] = {}
        stat_of: dict[str, tuple[int, int]] = {}
        for fid, rel, size, mtime, image_id, state in self.catalog.conn.execute(
            "SELECT id, rel_path, size, mtime_ns, image_id, state FROM files WHERE root_id = ?",
            (root_id,),
        ):
            key = from_db(rel)
            existing[key] = Existing(fid, image_id)
            states[key] = state
            stat_of[key] = (size, mtime)
        return existing, states, stat_of

    def _load_errors(self, root_id: int) -> dict[str, tuple[int, int]]:
        return {
            from_db(rel): (size, mtime)
            for rel, size, mtime in self.catalog.conn.execute(
                "SELECT rel_path, size, mtime_ns FROM scan_errors WHERE root_id = ?", (root_id,)
            )
        }

    def _run_probes(
        self,
        root: Root,
        todo: list[str],
        existing: dict[str, Existing],
        error_paths: set[str],
        stats: ScanStats,
    ) -> None:
        if not todo:
            return
        self.progress.begin(f"Indexing {root.path}", len(todo))
        buffer: list[Probe] = []
        last_commit = time.perf_counter()

        def flush() -> None:
            nonlocal buffer, last_commit
            if buffer:
                self._confirm_identity(root, buffer)
                stats.absorb(self.writer.apply(root.id, buffer, existing, error_paths))
                stats.probed += len(buffer)
                self.progress.advance(len(buffer))
                buffer = []
            last_commit = time.perf_counter()

        def take(results: list[Probe]) -> None:
            buffer.extend(results)
            if len(buffer) >= self.batch_size or time.perf_counter() - last_commit > 0.5:
                flush()

        if self.workers <= 1 or len(todo) < IN_PROCESS_BELOW:
            step = 32
            for i in range(0, len(todo), step):
                take(probe_many(root.path, todo[i : i + step], self.stealth_check))
            flush()
            return
        chunk = max(16, min(256, len(todo) // (self.workers * 8) or 16))
        pool = fork_pool(self.workers)
        try:
            pending: set[cf.Future[list[Probe]]] = set()
            chunks = (todo[i : i + chunk] for i in range(0, len(todo), chunk))
            for part in chunks:
                pending.add(pool.submit(probe_many, root.path, part, self.stealth_check))
                if len(pending) >= self.workers * 3:
                    done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        take(fut.result())
            for fut in cf.as_completed(pending):
                take(fut.result())
            flush()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _confirm_identity(self, root: Root, probes: list[Probe]) -> None:
        """Read whole files where a sampled hash alone would decide identity: when it is
        already in the catalog, or shared inside this batch. The writer then links a file to
        an image only when the whole contents agree (outside any write transaction)."""
        live = [p for p in probes if p.content_hash and p.error is None and not p.vanished]
        if not live:
            return
        by_hash: dict[str, list[Probe]] = {}
        for p in live:
            by_hash.setdefault(p.content_hash or "", []).append(p)
        where, params = value_in(self.catalog.conn, "content_hash", list(by_hash))
        known = {
            r[0]: (r[1], r[2])
            for r in self.catalog.conn.execute(
                f"SELECT content_hash, id, full_hash FROM images WHERE {where}", params
            )
        }
        for content_hash, group in by_hash.items():
            image = known.get(content_hash)
            if image is None and len(group) == 1:
                continue  # new content: nothing to tell it from
            reference = image[1] if image else None
            if image is not None and reference is None:
                reference = self._hash_other_copy(image[0], root, {p.rel_path for p in group})
            if reference is None and len(group) == 1:
                # the image's only file is this path (re-read) or gone (a move): nothing to
                # compare with; a changed file at a known path refreshes its image instead
                continue
            for p in group:
                try:
                    p.full_hash = full_hash(os.path.join(root.path, p.rel_path))
                except OSError:
                    p.vanished = True

    def _hash_other_copy(self, image_id: int, root: Root, paths: set[str]) -> str | None:
        """The full hash of a present file of ``image_id`` other than ``paths`` (recorded on
        the image and the file), or None when no such file can be read."""
        for file_id, root_id, base, rel in self.catalog.conn.execute(
            "SELECT f.id, f.root_id, r.path, f.rel_path FROM files f JOIN roots r ON "
            "r.id = f.root_id WHERE f.image_id = ? AND f.state = 'present' ORDER BY f.id",
            (image_id,),
        ).fetchall():
            rel_path = from_db(rel)
            if root_id == root.id and rel_path in paths:
                continue
            try:
                h = full_hash(os.path.join(base, rel_path))
            except OSError:
                continue
            with self.catalog.transaction() as conn:
                conn.execute("UPDATE files SET full_hash = ? WHERE id = ?", (h, file_id))
                conn.execute(
                    "UPDATE images SET full_hash = coalesce(full_hash, ?) WHERE id = ?",
                    (h, image_id),
                )
            return h
        return None

    def _record_moves(self) -> int:
        """A missing file whose image is present elsewhere was moved or renamed: drop it."""
        with self.catalog.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM files WHERE state = 'missing' AND image_id IN "
                "(SELECT image_id FROM files WHERE state = 'present')"
            )
            return cur.rowcount

    # -- background stage: full content hashes ---------------------------------------------

    def hash_pending(self, batch: int = 256) -> int:
        """Fill the whole-file BLAKE2b of every present file that lacks one, then split any
        image whose files disagree (two different files that shared a sampled hash).

        The first pass identifies images by a sampled hash so it stays bound by header
        reads; this stage reads whole files afterwards, in worker processes, and commits per
        batch (resumable like the scan). Returns how many files were hashed.
        """
        rows = self.catalog.conn.execute(
            "SELECT f.id, r.path, f.rel_path FROM files f JOIN roots r ON r.id = f.root_id "
            "WHERE f.full_hash IS NULL AND f.state = 'present'"
        ).fetchall()
        work = [(r[0], os.path.join(r[1], from_db(r[2]))) for r in rows]
        if not work:
            return 0
        self.progress.begin("Hashing", len(work))
        done = 0

        def write(results: list[tuple[int, str | None]]) -> None:
            nonlocal done
            hashed = [(h, i) for i, h in results if h is not None]
            with self.catalog.transaction() as conn:
                conn.executemany("UPDATE files SET full_hash = ? WHERE id = ?", hashed)
                conn.executemany(
                    "UPDATE images SET full_hash = coalesce(full_hash, ?) WHERE id = "
                    "(SELECT image_id FROM files WHERE id = ?)",
                    hashed,
                )
            done += len(hashed)
            self.progress.advance(len(results))

        chunks = [work[i : i + batch] for i in range(0, len(work), batch)]
        small = self.workers <= 1 or len(work) < IN_PROCESS_BELOW
        for results in map_chunks(_hash_many, chunks, self.workers, in_process=small):
            write(results)
        self.split_mismatched()
        return done

    def split_mismatched(self) -> int:
        """Give each file whose whole content differs from its image's an image of its own,
        read afresh from the file, with the user's tags, rating, favourite and albums kept
        on both. Returns how many files moved to a new image."""
        rows = self.catalog.conn.execute(
            "SELECT f.id, f.image_id, r.path, f.rel_path, f.full_hash FROM files f "
            "JOIN images i ON i.id = f.image_id JOIN roots r ON r.id = f.root_id "
            "WHERE f.state = 'present' AND f.full_hash IS NOT NULL "
            "AND i.full_hash IS NOT NULL AND f.full_hash != i.full_hash"
        ).fetchall()
        moved = 0
        for file_id, image_id, root_path, rel, file_hash in rows:
            p = probe(root_path, from_db(rel), self.stealth_check)
            if p.error is not None or p.vanished or p.content_hash is None:
                continue  # the next scan re-reads it
            p.full_hash = file_hash
            if self.writer.split_file(file_id, image_id, p):
                moved += 1
        return moved

    # -- background stage: thumbnails, placeholders, perceptual hashes ----------------------

    def media_pending(
        self,
        thumbs_dir: str,
        sizes: tuple[int, ...],
        batch: int = 16,
        local_copies: dict[str, str] | None = None,
    ) -> int:
        """Make thumbnails, placeholders and perceptual hashes for images that lack them.

        Decoding is the expensive part, so it runs in worker processes; a file that cannot
        be decoded gets ``media_error`` (the API then serves a fallback tile). A file in an
        object store is read from its local copy (``local_copies``: root → folder) when this
        machine has one, and otherwise left for the thumbnail route to fetch on demand.
        """
        rows = self.catalog.conn.execute(
            "SELECT i.id, i.content_hash, r.path, f.rel_path,"
            " CASE WHEN i.duration IS NOT NULL THEN i.format END FROM images i JOIN files f"
            " ON f.id = (SELECT id FROM files WHERE image_id = i.id AND state = 'present' LIMIT 1)"
            " JOIN roots r ON r.id = f.root_id WHERE i.media_error IS NULL AND (i.thumb_key IS NULL"
            " OR (i.duration IS NOT NULL AND i.preview_key IS NULL)) ORDER BY i.created_at DESC"
        ).fetchall()
        work = []
        for image_id, content_hash, root, rel, animated in rows:
            if "://" in root:  # an object store's prefix: its local copy, if any
                folder = (local_copies or {}).get(root)
                path = os.path.join(folder, from_db(rel)) if folder else None
                if path is None or not os.path.isfile(path):
                    continue
            else:
                path = os.path.join(root, from_db(rel))
            work.append((image_id, content_hash, path, animated))
        if not work:
            return 0
        self.progress.begin("Thumbnails", len(work))
        done = 0

        def write(results: list[tuple[int, MediaResult]]) -> None:
            nonlocal done
            with self.catalog.transaction() as conn:
                conn.executemany(
                    "UPDATE images SET thumb_key = ?, placeholder = ?, phash = ?, media_error = ?,"
                    " preview_key = ? WHERE id = ?",
                    [
                        (m.thumb_key, m.placeholder, m.phash, m.error, m.preview_key, i)
                        for i, m in results
                    ],
                )
            done += len(results)
            self.progress.advance(len(results))

        chunks = [work[i : i + batch] for i in range(0, len(work), batch)]
        job = functools.partial(_media_many, thumbs_dir=thumbs_dir, sizes=sizes)
        small = self.workers <= 1 or len(work) < 8
        for results in map_chunks(job, chunks, self.workers, in_process=small):
            write(results)
        return done

    # -- a few paths (the watcher) -------------------------------------------------------

    def index_paths(
        self, root: Root, rel_paths: list[str], read_from: str | None = None
    ) -> tuple[ScanStats, list[Probe]]:
        """Index specific files of a root now; returns the stats and the probes. With
        ``read_from``, the files are read from that folder (a local copy of what an object
        store root holds) and recorded under ``root``."""
        stats = ScanStats(roots=1)
        started = time.perf_counter()
        existing: dict[str, Existing] = {}
        for rel in rel_paths:
            row = self.catalog.conn.execute(
                "SELECT id, image_id FROM files WHERE root_id = ? AND rel_path = ?",
                (root.id, to_db(rel)),
            ).fetchone()
            if row:
                existing[rel] = Existing(row[0], row[1])
        errors = {
            rel
            for rel in rel_paths
            if self.catalog.conn.execute(
                "SELECT 1 FROM scan_errors WHERE root_id = ? AND rel_path = ?",
                (root.id, to_db(rel)),
            ).fetchone()
        }
        probes = probe_many(read_from or root.path, rel_paths, self.stealth_check)
        stats.absorb(self.writer.apply(root.id, probes, existing, errors))
        stats.probed = len(probes)
        stats.moved = self._record_moves()
        stats.seconds = time.perf_counter() - started
        return stats, probes

    def mark_missing(self, root: Root, rel_paths: list[str]) -> int:
        with self.catalog.transaction() as conn:
            n = 0
            for rel in rel_paths:
                n += conn.execute(
                    "UPDATE files SET state = 'missing' WHERE root_id = ? AND rel_path = ?"
                    " AND state != 'missing'",
                    (root.id, to_db(rel)),
                ).rowcount
        self._record_moves()
        return n


def _media_many(
    items: list[tuple[int, str, str, str | None]], thumbs_dir: str, sizes: tuple[int, ...]
) -> list[tuple[int, MediaResult]]:
    return [(i, make_media(path, h, thumbs_dir, sizes, fmt)) for i, h, path, fmt in items]


def _hash_many(items: list[tuple[int, str]]) -> list[tuple[int, str | None]]:
    out: list[tuple[int, str | None]] = []
    for file_id, path in items:
        try:
            out.append((file_id, full_hash(path)))
        except OSError:
            out.append((file_id, None))  # vanished or unreadable: the next scan will tell
    return out


def _update_many(conn: sqlite3.Connection, sql: str, ids: list[int]) -> None:
    conn.executemany(sql, [(i,) for i in ids])


def _utf8_clean(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
