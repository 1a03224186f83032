"""Keep the catalog live: index files as they appear, retry half-written ones.

A generator may write a file slowly (or in pieces). A changed path waits until its size
and mtime hold still for ``settle`` seconds and its structure is complete (PNG IEND,
JPEG EOI, WebP RIFF size, GIF trailer); until then it is retried, never indexed broken.
A file still incomplete after ``give_up`` seconds is recorded in ``scan_errors``.

The file-system watcher (watchfiles) can die — it cannot turn a non-UTF-8 file name into a
string, for one. :meth:`Watcher.run_supervised` then records why in the catalog's ``meta``
table (key ``watcher``: shown by ``stats`` and the UI), re-scans the folders so nothing that
happened meanwhile is missed (the scanner handles any name), and starts watching again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from watchfiles import Change, watch

from dreamdepot.catalog.images import WATCH_STATUS_KEY
from dreamdepot.ingest.pipeline import Indexer, Root
from dreamdepot.ingest.probe import probe
from dreamdepot.ingest.scanner import WalkProblems, is_candidate, walk

log = logging.getLogger("dreamdepot.watch")
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass
class _Pending:
    root: Root
    rel: str
    first_seen: float
    last_change: float
    stat: tuple[int, int] | None


class Watcher:
    def __init__(
        self,
        indexer: Indexer,
        settle: float = 0.25,
        give_up: float = 120.0,
        on_indexed: Callable[[list[str]], None] | None = None,
        on_status: Callable[[dict[str, object]], None] | None = None,
    ) -> None:
        self.indexer = indexer
        self.settle = settle
        self.give_up = give_up
        self.on_indexed = on_indexed
        self.on_status = on_status
        self.pending: dict[str, _Pending] = {}

    def _locate(self, roots: list[Root], path: str) -> tuple[Root, str] | None:
        for root in roots:
            prefix = root.path.rstrip(os.sep) + os.sep
            if path.startswith(prefix):
                rel = path[len(prefix) :]
                if any(part.startswith(".") for part in rel.split(os.sep)):
                    return None
                return root, rel.replace(os.sep, "/")
        return None

    def _stat(self, path: str) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns

    def handle(self, roots: list[Root], changes: set[tuple[Change, str]]) -> None:
        now = time.monotonic()
        deleted: dict[int, tuple[Root, list[str]]] = {}
        for change, path in changes:
            found = self._locate(roots, path)
            if found is None:
                continue
            root, rel = found
            if change == Change.deleted and not os.path.exists(path):
                self.pending.pop(path, None)
                deleted.setdefault(root.id, (root, []))[1].append(rel)
                continue
            if os.path.isdir(path):
                for seen in walk(path, WalkProblems()):
                    full = os.path.join(path, seen.rel_path)
                    self._queue(root, f"{rel}/{seen.rel_path}", full, now)
                continue
            if is_candidate(os.path.basename(path)):
                self._queue(root, rel, path, now)
        for root, rels in deleted.values():
            self.indexer.mark_missing(root, rels)

    def _queue(self, root: Root, rel: str, path: str, now: float) -> None:
        item = self.pending.get(path)
        if item is None:
            self.pending[path] = _Pending(root, rel, now, now, self._stat(path))
        else:
            item.last_change = now

    def process_pending(self) -> list[str]:
        """Index whatever settled and is complete; returns the relative paths indexed."""
        now = time.monotonic()
        ready: dict[int, tuple[Root, list[str]]] = {}
        for path, item in list(self.pending.items()):
            current = self._stat(path)
            if current is None:
                del self.pending[path]
                continue
            if current != item.stat:
                item.stat, item.last_change = current, now
                continue
            if now - item.last_change < self.settle:
                continue
            check = probe(item.root.path, item.rel, stealth_check=False)
            if check.incomplete and now - item.first_seen < self.give_up:
                item.last_change = now  # wait for the writer to finish
                continue
            del self.pending[path]
            ready.setdefault(item.root.id, (item.root, []))[1].append(item.rel)
        indexed: list[str] = []
        for root, rels in ready.values():
            self.indexer.index_paths(root, rels)
            indexed.extend(rels)
        if indexed and self.on_indexed:
            self.on_indexed(indexed)
        return indexed

    def _set_status(self, state: str, reason: str = "", restarts: int = 0) -> None:
        status: dict[str, object] = {"state": state, "reason": reason, "restarts": restarts,
                                     "pid": os.getpid(), "since": time.time()}  # fmt: skip
        with self.indexer.catalog.transaction() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (WATCH_STATUS_KEY, json.dumps(status)),
            )
        if self.on_status is not None:
            self.on_status(status)

    def run_supervised(self, stop: threading.Event | None = None) -> None:
        """:meth:`run`, restarted whenever it dies (with a logged and recorded reason and a
        re-scan in between), until ``stop`` is set."""
        stop = stop or threading.Event()
        restarts = 0
        while not stop.is_set():
            self._set_status("live", restarts=restarts)
            try:
                self.run(stop)
                break
            except Exception as exc:  # the watcher died: say why, catch up, start again
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("live updates stopped (%s); re-scanning and restarting", reason)
                self._set_status("restarting", reason, restarts)
                delay = RESTART_DELAYS[min(restarts, len(RESTART_DELAYS) - 1)]
                restarts += 1
                if stop.wait(delay):
                    break
                try:
                    stats = self.indexer.scan()
                    if stats.new_images and self.on_indexed:
                        self.on_indexed([f"{stats.new_images} file(s) found by the re-scan"])
                except Exception as scan_exc:  # keep trying: the next round scans again
                    log.warning("re-scan after a watcher failure failed: %s", scan_exc)
        self._set_status("off", "stopped", restarts)

    def run(self, stop: threading.Event | None = None) -> None:
        """Watch every root with its watch flag set until ``stop`` is set (or Ctrl-C)."""
        roots = [r for r in self.indexer.roots() if r.watch and os.path.isdir(r.path)]
        if not roots:
            return
        stop = stop or threading.Event()
        for changes in watch(
            *[r.path for r in roots],
            debounce=100,
            step=50,
            rust_timeout=200,
            yield_on_timeout=True,
            stop_event=stop,
            recursive=True,
        ):
            if changes:
                self.handle(roots, changes)
            if self.pending:
                self.process_pending()
