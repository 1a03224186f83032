"""A small hierarchy of specific errors, so callers can catch exactly what they handle."""

from __future__ import annotations


class DreamDepotError(Exception):
    """Base class of every error Dream Depot raises on purpose."""


class MetadataError(DreamDepotError):
    """An image's embedded metadata is malformed, hostile or beyond our safety caps."""


class UnsupportedImageError(DreamDepotError):
    """The file is not an image format we read (judged by its magic bytes)."""


class CorruptImageError(DreamDepotError):
    """The file claims to be an image but its structure is broken or truncated."""


class CatalogError(DreamDepotError):
    """The catalog cannot be opened or used."""


class SchemaTooNewError(CatalogError):
    """The catalog was written by a newer Dream Depot than this one."""


class QueryError(DreamDepotError):
    """A query string does not parse; carries the position of the problem."""

    def __init__(self, message: str, position: int, query: str) -> None:
        self.position = position
        self.query = query
        super().__init__(f"{message} (at position {position})")
