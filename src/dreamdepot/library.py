"""``Library.open(path)``: the façade tying a library folder's catalog, settings and files.

A library is a folder::

    catalog.sqlite    the catalog (SQLite, WAL), unless the settings name a PostgreSQL one
    dreamdepot.toml   settings
    thumbs/           thumbnails, content-addressed
    generated/        images Dream Depot generates (indexed like any other root)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import dreamdepot.semantic  # noqa: F401  (registers the similar: query field)
from dreamdepot.catalog.db import Catalog
from dreamdepot.config import DEFAULT_TOML, Settings, load_settings
from dreamdepot.errors import DreamDepotError
from dreamdepot.ingest.roots import Root

if TYPE_CHECKING:  # the pipeline (every reader, Pillow) is imported when a scan needs it
    from dreamdepot.ingest.pipeline import Indexer, Progress


def default_library_path() -> Path:
    env = os.environ.get("DREAMDEPOT_LIBRARY")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "dreamdepot" / "library"


class Library:
    def __init__(self, path: Path, catalog: Catalog, settings: Settings) -> None:
        self.path = path
        self.catalog = catalog
        self.settings = settings

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        create: bool = True,
        embedded: bool = False,
    ) -> Library:
        """Open (or make) the library at ``path``: its catalog is the SQLite file in it, or
        the PostgreSQL database its settings name (``database`` /
        ``DREAMDEPOT_DATABASE_URL``). ``embedded`` opens the SQLite catalog even then (what
        ``migrate`` copies from)."""
        lib_path = Path(path).expanduser() if path is not None else default_library_path()
        if not lib_path.exists():
            if not create:
                raise DreamDepotError(f"no library at {lib_path}")
            lib_path.mkdir(parents=True)
        elif not lib_path.is_dir():
            raise DreamDepotError(f"{lib_path} is not a folder")
        for sub in ("thumbs", "generated"):
            (lib_path / sub).mkdir(exist_ok=True)
        toml = lib_path / "dreamdepot.toml"
        if not toml.exists():
            toml.write_text(DEFAULT_TOML, encoding="utf-8")
        settings = load_settings(lib_path)
        if settings.database and not embedded:
            catalog = Catalog.open(settings.database, library_dir=lib_path.resolve())
        else:
            catalog = Catalog.open(lib_path / "catalog.sqlite")
        return cls(lib_path.resolve(), catalog, settings)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def conn(self):  # type: ignore[no-untyped-def]
        return self.catalog.conn

    # -- roots ---------------------------------------------------------------------

    def add_root(self, folder: str | os.PathLike[str], watch: bool = True) -> Root:
        p = Path(folder).expanduser()
        if not p.is_dir():
            raise DreamDepotError(f"{folder} is not a folder")
        resolved = str(p.resolve())
        lib, thumbs = str(self.path), str(self.path / "thumbs")
        if resolved in (lib, thumbs) or resolved.startswith(thumbs + os.sep):
            raise DreamDepotError(
                f"{folder} holds the library's own files; add a folder of images instead"
            )
        with self.catalog.transaction() as conn:
            conn.execute(
                "INSERT INTO roots(path, watch, added_at) VALUES (?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET watch = excluded.watch",
                (resolved, int(watch), time.time()),
            )
        row = self.conn.execute("SELECT id FROM roots WHERE path = ?", (resolved,)).fetchone()
        return Root(row[0], resolved, watch)

    def roots(self) -> list[Root]:
        return self.indexer().roots()

    @property
    def thumbs_dir(self) -> Path:
        return self.path / "thumbs"

    def make_thumbnails(self, progress: Progress | None = None) -> int:
        """Background stage after indexing: grid thumbnails, placeholders, perceptual hashes.
        (Preview-size thumbnails are made on demand, when a detail view asks.)"""
        return self.indexer(progress=progress).media_pending(
            str(self.thumbs_dir), (self.settings.thumb_size,)
        )

    def indexer(self, progress: Progress | None = None, workers: int | None = None) -> Indexer:
        from dreamdepot.ingest.pipeline import Indexer

        return Indexer(
            self.catalog,
            workers=workers if workers is not None else self.settings.workers,
            stealth_check=self.settings.stealth_check,
            progress=progress,
        )


def redact(url: str) -> str:
    """A database URL without its password, for messages.

    >>> redact("postgresql://dd:secret@db.example/dd")
    'postgresql://dd:***@db.example/dd'
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
