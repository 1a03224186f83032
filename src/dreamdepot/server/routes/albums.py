"""Albums: named, hand-picked sets of images (``album:NAME`` in queries)."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog.engine import same_name
from dreamdepot.server.app import state

router = APIRouter(prefix="/api/albums", tags=["albums"])


class AlbumBody(BaseModel):
    name: str = Field(..., min_length=1, max_length=200)


class AlbumImages(BaseModel):
    ids: list[int] | None = Field(None, max_length=1_000_000)
    q: str | None = None


@router.get("")
def list_albums(request: Request) -> dict[str, Any]:
    rows = (
        state(request)
        .store.read()
        .execute(
            "SELECT a.id, a.name, a.created_at, count(ai.image_id) AS count FROM albums a "
            "LEFT JOIN album_images ai ON ai.album_id = a.id GROUP BY a.id ORDER BY a.name"
        )
        .fetchall()
    )
    return {"albums": [dict(r) for r in rows]}


@router.post("", status_code=201)
def create_album(request: Request, body: AlbumBody) -> dict[str, Any]:
    name = " ".join(body.name.split())
    if not name:
        raise HTTPException(422, "an album name cannot be blank")
    with state(request).store.write() as conn:
        if conn.execute(f"SELECT 1 FROM albums WHERE {same_name(conn)}", (name,)).fetchone():
            raise HTTPException(409, f"an album named {name!r} exists")
        aid = conn.execute(
            "INSERT INTO albums(name, created_at) VALUES (?, ?) RETURNING id", (name, time.time())
        ).fetchone()[0]
    return {"id": aid, "name": name, "count": 0}


def _target_ids(request: Request, body: AlbumImages) -> list[int]:
    if (body.ids is None) == (body.q is None):
        raise HTTPException(422, "give either ids or q")
    if body.q is not None:
        return catalog_images.matching_ids(state(request).store.read(), body.q)
    return body.ids or []


@router.post("/{album_id}/images")
def add_to_album(request: Request, album_id: int, body: AlbumImages) -> dict[str, Any]:
    ids = _target_ids(request, body)
    with state(request).store.write() as conn:
        if not conn.execute("SELECT 1 FROM albums WHERE id = ?", (album_id,)).fetchone():
            raise HTTPException(404, f"no album {album_id}")
        n = conn.executemany(
            "INSERT INTO album_images(album_id, image_id, added_at) "
            "SELECT ?, id, ? FROM images WHERE id = ? ON CONFLICT DO NOTHING",
            [(album_id, time.time(), i) for i in ids],
        ).rowcount
    return {"added": n}


@router.delete("/{album_id}/images")
def remove_from_album(request: Request, album_id: int, body: AlbumImages) -> dict[str, Any]:
    ids = _target_ids(request, body)
    with state(request).store.write() as conn:
        if not conn.execute("SELECT 1 FROM albums WHERE id = ?", (album_id,)).fetchone():
            raise HTTPException(404, f"no album {album_id}")
        n = conn.executemany(
            "DELETE FROM album_images WHERE album_id = ? AND image_id = ?",
            [(album_id, i) for i in ids],
        ).rowcount
    return {"removed": n}


@router.delete("/{album_id}")
def delete_album(request: Request, album_id: int) -> dict[str, Any]:
    with state(request).store.write() as conn:
        if conn.execute("DELETE FROM albums WHERE id = ?", (album_id,)).rowcount == 0:
            raise HTTPException(404, f"no album {album_id}")
    return {"deleted": album_id}
