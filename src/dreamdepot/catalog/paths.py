"""Relative paths as stored in the catalog.

Names that are valid UTF-8 are stored as TEXT; others (possible on Linux) as a BLOB of
their raw bytes, so every file round-trips exactly and nothing is silently renamed.
"""

from __future__ import annotations

import os


def to_db(rel: str) -> str | bytes:
    """UTF-8-clean names stay text; others become their raw bytes.

    >>> to_db("a/b.png"), to_db("bad\\udcff.png")
    ('a/b.png', b'bad\\xff.png')
    """
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(rel)
    return rel


def from_db(value: str | bytes) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else value


def display(rel: str) -> str:
    """A printable form of a path whose name may hold undecodable bytes."""
    return os.fsencode(rel).decode("utf-8", errors="replace")
