"""Albums: named, hand-picked sets of images (``album:NAME`` in queries). On a shared
instance an album has an owner and is private until shared; it shows each caller only the
images they may see, and only its owner changes it."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog.engine import same_name
from dreamdepot.catalog.visibility import visible_sql
from dreamdepot.server.accounts import only_visible, principal, restricted
from dreamdepot.server.app import state

router = APIRouter(prefix="/api/albums", tags=["albums"])


class AlbumBody(BaseModel):
    name: str = Field(..., min_length=1, max_length=200)


class AlbumImages(BaseModel):
    ids: list[int] | None = Field(None, max_length=1_000_000)
    q: str | None = None


class SharingBody(BaseModel):
    shared: bool


def _album_sql(request: Request, own: bool = False) -> tuple[str, list[Any]]:
    """Albums the caller sees (or, with ``own``, may change): theirs, shared ones, and —
    admins — the library's own (no owner)."""
    who = principal(request)
    if who is None:
        return "1 = 1", []
    library = " OR a.owner_id IS NULL" if who.is_admin else ""
    shared = "" if own else " OR a.shared = 1"
    return f"(a.owner_id = ?{shared}{library})", [who.user_id]


def _album_or_404(request: Request, conn: Any, album_id: int, own: bool) -> None:
    seen, args = _album_sql(request)
    if not conn.execute(f"SELECT 1 FROM albums a WHERE a.id = ? AND {seen}",
                        (album_id, *args)).fetchone():  # fmt: skip
        raise HTTPException(404, f"no album {album_id}")
    mine, args = _album_sql(request, own=True)
    if own and not conn.execute(f"SELECT 1 FROM albums a WHERE a.id = ? AND {mine}",
                                (album_id, *args)).fetchone():  # fmt: skip
        raise HTTPException(403, "only the album's owner may change it")


@router.get("")
def list_albums(request: Request) -> dict[str, Any]:
    """The albums the caller sees, each counted over the images the caller sees."""
    conn = state(request).store.read()
    seen, args = _album_sql(request)
    visible, more = visible_sql(principal(request))
    rows = conn.execute(
        "SELECT a.id, a.name, a.created_at, a.owner_id, a.shared, count(images.id) AS count "
        "FROM albums a LEFT JOIN album_images ai ON ai.album_id = a.id LEFT JOIN images ON "
        f"images.id = ai.image_id AND {visible} WHERE {seen} GROUP BY a.id ORDER BY a.name",
        (*more, *args),
    ).fetchall()
    return {"albums": [{**dict(r), "shared": bool(r["shared"])} for r in rows]}


@router.post("", status_code=201)
def create_album(request: Request, body: AlbumBody) -> dict[str, Any]:
    name = " ".join(body.name.split())
    if not name:
        raise HTTPException(422, "an album name cannot be blank")
    who = principal(request)
    with state(request).store.write() as conn:
        if conn.execute(f"SELECT 1 FROM albums WHERE {same_name(conn)}", (name,)).fetchone():
            raise HTTPException(409, f"an album named {name!r} exists")
        aid = conn.execute(
            "INSERT INTO albums(name, created_at, owner_id) VALUES (?, ?, ?) RETURNING id",
            (name, time.time(), who.user_id if who else None),
        ).fetchone()[0]
    return {"id": aid, "name": name, "count": 0}


def _target_ids(request: Request, body: AlbumImages) -> list[int]:
    """The images named (each must be one the caller sees), or those matching ``q``."""
    if (body.ids is None) == (body.q is None):
        raise HTTPException(422, "give either ids or q")
    conn = state(request).store.read()
    if body.q is not None:
        return catalog_images.matching_ids(
            conn, restricted(request, catalog_images.compile_query(conn, body.q))
        )
    return only_visible(request, body.ids or [])


@router.post("/{album_id}/images")
def add_to_album(request: Request, album_id: int, body: AlbumImages) -> dict[str, Any]:
    _album_or_404(request, state(request).store.read(), album_id, own=True)
    ids = _target_ids(request, body)
    with state(request).store.write() as conn:
        n = conn.executemany(
            "INSERT INTO album_images(album_id, image_id, added_at) "
            "SELECT ?, id, ? FROM images WHERE id = ? ON CONFLICT DO NOTHING",
            [(album_id, time.time(), i) for i in ids],
        ).rowcount
    return {"added": n}


@router.delete("/{album_id}/images")
def remove_from_album(request: Request, album_id: int, body: AlbumImages) -> dict[str, Any]:
    _album_or_404(request, state(request).store.read(), album_id, own=True)
    ids = _target_ids(request, body)
    with state(request).store.write() as conn:
        n = conn.executemany(
            "DELETE FROM album_images WHERE album_id = ? AND image_id = ?",
            [(album_id, i) for i in ids],
        ).rowcount
    return {"removed": n}


@router.put("/{album_id}/sharing")
def share_album(request: Request, album_id: int, body: SharingBody) -> dict[str, Any]:
    """Show the album to everyone on the instance (each still sees only images they may)."""
    _album_or_404(request, state(request).store.read(), album_id, own=True)
    with state(request).store.write() as conn:
        conn.execute("UPDATE albums SET shared = ? WHERE id = ?", (int(body.shared), album_id))
    return {"id": album_id, "shared": body.shared}


@router.delete("/{album_id}")
def delete_album(request: Request, album_id: int) -> dict[str, Any]:
    _album_or_404(request, state(request).store.read(), album_id, own=True)
    with state(request).store.write() as conn:
        if conn.execute("DELETE FROM albums WHERE id = ?", (album_id,)).rowcount == 0:
            raise HTTPException(404, f"no album {album_id}")
    return {"deleted": album_id}
