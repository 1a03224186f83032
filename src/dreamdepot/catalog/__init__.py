"""The catalog: one SQLite file (WAL) holding everything derived from the user's images."""

from dreamdepot.catalog.db import Catalog, connect

__all__ = ["Catalog", "connect"]
