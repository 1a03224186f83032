"""Which images a user may see and change, as SQL over ``images`` (one rule for every face).

A user sees their own images, every image shared with the instance, and — admins — the
library's own images (no owner: indexed from its folders). Viewers own nothing, so they see
shared images only. Only an image's owner (or an admin, for the library's own) changes it.
``None`` for the viewer means an embedded library: no accounts, no restriction.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol


class Principal(Protocol):
    """Who is asking (accounts.Principal; the catalog needs only these two facts)."""

    @property
    def user_id(self) -> int | None: ...

    @property
    def is_admin(self) -> bool: ...


def visible_sql(who: Principal | None, table: str = "images") -> tuple[str, list[Any]]:
    """A condition over ``table`` (an alias of ``images``) true for the images ``who`` sees."""
    if who is None or who.user_id is None:
        return "1 = 1", []
    library = f" OR {table}.owner_id IS NULL" if who.is_admin else ""
    return f"({table}.shared = 1 OR {table}.owner_id = ?{library})", [who.user_id]


def cache_sql(who: Principal | None, table: str = "images") -> tuple[str, list[Any]]:
    """The images a dream cache lookup of ``who`` may answer with: what they see, less the
    shared images of users who keep theirs out of other people's answers."""
    if who is None or who.user_id is None:
        return "1 = 1", []
    library = f" OR {table}.owner_id IS NULL" if who.is_admin else ""
    kept_out = (
        f"EXISTS (SELECT 1 FROM users u WHERE u.id = {table}.owner_id AND u.cache_opt_out = 1)"
    )
    return (
        f"({table}.owner_id = ? OR ({table}.shared = 1 AND NOT {kept_out}){library})",
        [who.user_id],
    )


def owned_sql(who: Principal | None, table: str = "images") -> tuple[str, list[Any]]:
    """A condition true for the images ``who`` may change (tag, rate, share, delete)."""
    if who is None or who.user_id is None:
        return "1 = 1", []
    library = f" OR {table}.owner_id IS NULL" if who.is_admin else ""
    return f"({table}.owner_id = ?{library})", [who.user_id]


def _any(conn: sqlite3.Connection, where: str, params: list[Any], key: str, value: Any) -> bool:
    sql = f"SELECT 1 FROM images WHERE images.{key} = ? AND {where} LIMIT 1"
    return conn.execute(sql, (value, *params)).fetchone() is not None


def can_see(conn: sqlite3.Connection, who: Principal | None, image_id: int) -> bool:
    return _any(conn, *visible_sql(who), "id", image_id)


def can_change(conn: sqlite3.Connection, who: Principal | None, image_id: int) -> bool:
    return _any(conn, *owned_sql(who), "id", image_id)


def can_see_hash(conn: sqlite3.Connection, who: Principal | None, content_hash: str) -> bool:
    """Whether ``who`` sees some image with this content (thumbnails and clips by hash)."""
    return _any(conn, *visible_sql(who), "content_hash", content_hash)


def sees_prompt(conn: sqlite3.Connection, who: Principal | None, prompt_id: int) -> bool:
    """Whether ``who`` sees some image made from this prompt (prompts are shown by them)."""
    if who is None or who.user_id is None:
        return True
    return _any(conn, *visible_sql(who), "prompt_id", prompt_id)
