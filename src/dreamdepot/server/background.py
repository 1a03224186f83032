"""Work the server does besides answering requests: scans, the thumbnail stage and the
watcher, each in its own thread with its own catalog connection, reporting over SSE."""

from __future__ import annotations

import threading
import time

from dreamdepot.catalog.db import Catalog
from dreamdepot.ingest.pipeline import Indexer
from dreamdepot.server.app import AppState

_scan_lock = threading.Lock()


class EventProgress:
    """The pipeline's Progress protocol, published as SSE events (throttled)."""

    def __init__(self, st: AppState, kind: str) -> None:
        self.st, self.kind = st, kind
        self.total = self.done = 0
        self.description = ""
        self._last = 0.0

    def begin(self, description: str, total: int) -> None:
        self.description, self.total, self.done = description, total, 0
        self.st.events.publish(self.kind, {"stage": description, "done": 0, "total": total})

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last > 0.25 or self.done >= self.total:
            self._last = now
            self.st.events.publish(
                self.kind, {"stage": self.description, "done": self.done, "total": self.total}
            )


def _indexer(st: AppState, kind: str) -> tuple[Catalog, Indexer]:
    catalog = st.open_catalog()
    return catalog, Indexer(
        catalog,
        workers=st.settings.workers,
        stealth_check=st.settings.stealth_check,
        progress=EventProgress(st, kind),
    )


def local_copies(st: AppState) -> dict[str, str]:
    """The object store's prefixes and where this server keeps its copies of them."""
    from dreamdepot.storage import S3Blobs

    if not isinstance(st.blobs, S3Blobs):
        return {}
    cache = st.library_path / "cache" / "blobs"
    return {st.blobs.root_url(p): str(cache / p) for p in ("uploads", "generated")}


def thumbnails(st: AppState) -> int:
    """Thumbnails for new images; with an object store, each one made here is put there
    too, so other servers fetch it instead of making it again."""
    from dreamdepot.storage import S3Blobs

    catalog, indexer = _indexer(st, "thumbnails")
    shared = isinstance(st.blobs, S3Blobs)
    try:
        before = set() if not shared else {
            r[0] for r in catalog.conn.execute("SELECT id FROM images WHERE thumb_key IS NULL")
        }  # fmt: skip
        n = indexer.media_pending(
            str(st.library_path / "thumbs"),
            (st.settings.thumb_size,),
            local_copies=local_copies(st),
        )
        if shared and n:
            _share_thumbnails(st, catalog, before)
    finally:
        catalog.close()
    if n:
        st.events.publish("thumbnails", {"stage": "done", "done": n, "total": n})
    return n


def _share_thumbnails(st: AppState, catalog: Catalog, ids: set[int]) -> None:
    from dreamdepot.catalog.engine import value_in
    from dreamdepot.storage import BlobError

    thumbs = st.library_path / "thumbs"
    where, params = value_in(catalog.conn, "id", sorted(ids))
    for (key,) in catalog.conn.execute(
        f"SELECT thumb_key FROM images WHERE {where} AND thumb_key IS NOT NULL", params
    ).fetchall():
        if (thumbs / key).is_file():
            try:
                st.blobs.put_file(f"thumbs/{key}", thumbs / key, "image/avif")
            except BlobError:
                return  # best effort: a server without it makes it again


def warm_dream_cache(st: AppState) -> bool:
    """Load what the first dream lookup needs — the embedding model, the word lexicon the
    alignment reads, the prompt vector index — before anyone asks. Loading them holds the
    interpreter (measured alone: the model 4.4 s, the rest of a first lookup 0.4 s of CPU),
    and every request on the server would wait while the first lookups did it. ``serve``
    does this on an instance with users; a one-person library loads them at its first
    lookup (and keeps the memory of the model, ~400 MB, until then). False without the
    semantic extra."""
    from dreamdepot.semantic.cache import DreamCache, DreamRequest
    from dreamdepot.semantic.embedders import EmbedderUnavailable, embedder_for_library
    from dreamdepot.semantic.terms import lexicon

    try:
        embedder = embedder_for_library(st.library_path)
        lexicon("warming")
        catalog = st.open_catalog()
        try:
            DreamCache(catalog.conn, embedder).lookup(DreamRequest("a warm up"), log=False)
        finally:
            catalog.close()
    except EmbedderUnavailable:
        return False
    return True


def embeddings(st: AppState) -> int:
    """Embed new prompts when the semantic extra is installed; otherwise note it once. With
    workers, a worker serving the ``embed`` queue does it (one waiting request at a time)."""
    if st.settings.job_runner == "workers" and st.settings.database:
        from dreamdepot.generate.dispatch import EMBED_TASK, defer_library_task

        defer_library_task(st.settings.database, EMBED_TASK, "embed")
        st.events.publish("embed", {"stage": "queued", "note": "a worker embeds new prompts"})
        return 0
    from dreamdepot.semantic.embedders import EmbedderUnavailable, embedder_for_library
    from dreamdepot.semantic.service import embed_pending

    try:
        embedder = embedder_for_library(st.library_path)
    except EmbedderUnavailable as exc:
        st.events.publish("embed", {"stage": "unavailable", "note": str(exc)})
        return 0
    catalog = st.open_catalog()
    try:
        from dreamdepot.semantic.service import embed_images_pending

        n = embed_pending(catalog.conn, embedder, progress=EventProgress(st, "embed"))
        return n + embed_images_pending(catalog.conn, embedder, progress=EventProgress(st, "embed"))
    except EmbedderUnavailable as exc:
        st.events.publish("embed", {"stage": "unavailable", "note": str(exc)})
        return 0
    finally:
        catalog.close()


def autotags(st: AppState) -> int:
    from dreamdepot.tagging.stage import autotag, build_taggers

    catalog = st.open_catalog()
    try:
        taggers, problems = build_taggers(st.settings, st.library_path)
        for p in problems:
            st.events.publish("autotag", {"stage": "unavailable", "note": p})
        if not taggers:
            return 0
        result = autotag(
            catalog.conn,
            taggers,
            workers=st.settings.workers,
            progress=EventProgress(st, "autotag"),
        )
        st.events.publish(
            "autotag",
            {
                "stage": "done",
                "done": result.images,
                "total": result.images,
                "tags": result.tags_added,
            },
        )
        return result.images
    finally:
        catalog.close()


_autotag_lock = threading.Lock()


def autotag_in_background(st: AppState) -> bool:
    if not _autotag_lock.acquire(blocking=False):
        return False

    def run() -> None:
        try:
            autotags(st)
        finally:
            _autotag_lock.release()

    st.start(run, "dreamdepot-autotag")
    return True


def after_indexing(st: AppState) -> None:
    """The background stages, in order: thumbnails first (what users see), then vectors,
    then automatic tags."""
    thumbnails(st)
    if st.stop.is_set():
        return
    embeddings(st)
    if st.stop.is_set():
        return
    with _autotag_lock:
        autotags(st)


_stages_lock = threading.Lock()
_stages_again = threading.Event()


def stages_soon(st: AppState) -> None:
    """Run the background stages for files that just arrived (uploads): one run at a time;
    arrivals during a run make it go round once more."""
    _stages_again.set()
    if not _stages_lock.acquire(blocking=False):
        return

    def run() -> None:
        try:
            while _stages_again.is_set() and not st.stop.is_set():
                _stages_again.clear()
                after_indexing(st)
        finally:
            _stages_lock.release()

    st.start(run, "dreamdepot-stages-uploads")


def scan_in_background(st: AppState) -> bool:
    if not _scan_lock.acquire(blocking=False):
        return False

    def run() -> None:
        try:
            catalog, indexer = _indexer(st, "scan")
            try:
                stats = indexer.scan()
                st.refresh_roots()
                st.events.publish(
                    "scan",
                    {
                        "stage": "done",
                        "new_images": stats.new_images,
                        "missing": stats.missing,
                        "errors": stats.errors,
                    },
                )
            finally:
                catalog.close()
            after_indexing(st)
        finally:
            _scan_lock.release()

    st.start(run, "dreamdepot-scan")
    return True


def start_watcher(st: AppState) -> threading.Thread:
    from dreamdepot.ingest.watcher import Watcher

    def on_indexed(paths: list[str]) -> None:
        st.events.publish("indexed", {"count": len(paths), "paths": paths[:20]})
        after_indexing(st)

    def run() -> None:
        catalog, indexer = _indexer(st, "scan")
        indexer.workers = 1
        try:
            Watcher(
                indexer,
                on_indexed=on_indexed,
                on_status=lambda status: st.events.publish("watcher", status),
            ).run_supervised(st.stop)
        finally:
            catalog.close()

    return st.start(run, "dreamdepot-watch")
