"""The semantic layer: prompt embeddings, vector search, suggestions and the dream cache.

Importing it registers the ``similar:`` query field with the catalog (the model loads only
when a query uses it)."""

from __future__ import annotations

import sqlite3
from typing import Any

from dreamdepot.catalog.images import register_field


def _similar(conn: sqlite3.Connection, text: str) -> tuple[str, list[Any]]:
    from dreamdepot.semantic.service import similar_clause

    return similar_clause(conn, text)


register_field("similar", _similar)
