"""Whose ratings and favourites a query reads and a change writes.

An image's row holds its owner's marks (in an embedded library, the one user's). On a
shared instance anyone who sees an image may rate or favourite it: a colleague's marks on
someone else's shared image live in ``user_marks``, private to them, and every face that
reads ``rating`` or ``fav`` (the query language, sorting, lists, detail) reads the
viewer's own marks. The viewer's id is an integer from the catalog, written into the SQL
as a literal so a clause needs no extra parameters (both forms of a node keep binding the
same ones).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dreamdepot.catalog.visibility import Principal

MARK_COLUMNS = ("rating", "favorite")


@dataclass(frozen=True)
class Marks:
    """The viewer whose marks are read: ``user_id`` None reads the image rows' (an
    embedded library, or a script over the whole catalog)."""

    user_id: int | None = None
    admin: bool = False

    @classmethod
    def of(cls, who: Principal | None) -> Marks:
        if who is None or who.user_id is None:
            return ROW_MARKS
        return cls(int(who.user_id), bool(who.is_admin))

    @property
    def per_user(self) -> bool:
        return self.user_id is not None

    def owns(self, table: str = "images") -> str:
        """True for the images whose row marks are this viewer's (their own; an admin's,
        also the library's)."""
        library = f" OR {table}.owner_id IS NULL" if self.admin else ""
        return f"({table}.owner_id = {int(self.user_id or 0)}{library})"

    def column(self, name: str, table: str = "images") -> str:
        """The SQL for ``table.name`` as this viewer sees it (other columns unchanged)."""
        if not self.per_user or name not in MARK_COLUMNS:
            return f"{table}.{name}"
        theirs = (
            f"(SELECT m.{name} FROM user_marks m WHERE m.user_id = {int(self.user_id or 0)} "
            f"AND m.image_id = {table}.id)"
        )
        if name == "favorite":
            theirs = f"coalesce({theirs}, 0)"
        return f"(CASE WHEN {self.owns(table)} THEN {table}.{name} ELSE {theirs} END)"

    def favourite_sql(self, table: str = "images") -> str:
        """True for the viewer's favourites, in a form that starts from an index (the
        row's flag, or the viewer's few marks) rather than testing a subquery per row."""
        if not self.per_user:
            return f"{table}.favorite = 1"
        return (
            f"(({self.owns(table)} AND {table}.favorite = 1) OR ({table}.id IN "
            f"(SELECT m.image_id FROM user_marks m WHERE m.user_id = {int(self.user_id or 0)} "
            f"AND m.favorite = 1) AND NOT {self.owns(table)}))"
        )


ROW_MARKS = Marks()


def mark(conn: Any, marks: Marks, image_ids: Iterable[int], **values: Any) -> int:
    """Set ``rating`` and/or ``favorite`` on images the viewer sees (the caller checked):
    on the rows of those they own, in their own marks for the rest. Returns how many."""
    unknown = set(values) - set(MARK_COLUMNS)
    if unknown or not values:
        raise ValueError(f"marks are {MARK_COLUMNS}, not {sorted(unknown)}")
    ids = list(dict.fromkeys(int(i) for i in image_ids))
    if not ids:
        return 0
    names = sorted(values)
    row_set = ", ".join(f"{n} = ?" for n in names)
    row_values = [values[n] for n in names]
    if not marks.per_user:
        return conn.executemany(
            f"UPDATE images SET {row_set} WHERE id = ?", [(*row_values, i) for i in ids]
        ).rowcount
    owned: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        holes = ", ".join("?" * len(chunk))
        owned.update(
            r[0]
            for r in conn.execute(
                f"SELECT id FROM images WHERE id IN ({holes}) AND {marks.owns()}", chunk
            )
        )
    mine = [i for i in ids if i in owned]
    theirs = [i for i in ids if i not in owned]
    if mine:
        conn.executemany(
            f"UPDATE images SET {row_set} WHERE id = ?", [(*row_values, i) for i in mine]
        )
    if theirs:
        update = ", ".join(f"{n} = excluded.{n}" for n in names)
        conn.executemany(
            f"INSERT INTO user_marks(user_id, image_id, {', '.join(names)}, changed_at) "
            f"VALUES (?, ?, {', '.join('?' * len(names))}, ?) "
            f"ON CONFLICT (user_id, image_id) DO UPDATE SET {update}, "
            "changed_at = excluded.changed_at",
            [(marks.user_id, i, *row_values, time.time()) for i in theirs],
        )
    return len(ids)


def marks_of(conn: Any, marks: Marks, image_id: int) -> dict[str, Any] | None:
    """The viewer's own marks of one image they do not own (None: the row's are theirs)."""
    if not marks.per_user:
        return None
    owned = conn.execute(
        f"SELECT 1 FROM images WHERE id = ? AND {marks.owns()}", (image_id,)
    ).fetchone()
    if owned is not None:
        return None
    row = conn.execute(
        "SELECT rating, favorite FROM user_marks WHERE user_id = ? AND image_id = ?",
        (marks.user_id, image_id),
    ).fetchone()
    return {"rating": row[0] if row else None, "favorite": bool(row[1]) if row else False}
