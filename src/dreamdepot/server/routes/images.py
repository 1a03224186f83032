"""Images: list by query (keyset pages), detail, rating, favourite, original, thumbnails."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog.clauses import Words
from dreamdepot.catalog.engine import is_postgresql
from dreamdepot.catalog.engine import like as engine_like
from dreamdepot.catalog.marks import mark, marks_of
from dreamdepot.catalog.paths import from_db
from dreamdepot.catalog.query import fts_terms
from dreamdepot.catalog.visibility import can_see, visible_sql
from dreamdepot.errors import DreamDepotError
from dreamdepot.ingest.metadata.infotext import format_infotext
from dreamdepot.ingest.metadata.model import Generation
from dreamdepot.media.thumbs import (
    PREVIEW_SIZE,
    fallback_thumbnail,
    make_media,
    preview_key,
    thumb_key,
)
from dreamdepot.media.video import VIDEO_FORMATS
from dreamdepot.server.accounts import guard, only_visible, principal, viewer_marks
from dreamdepot.server.app import AppState, state
from dreamdepot.server.routes.files import confined, image_response

router = APIRouter(prefix="/api", tags=["images"], dependencies=[Depends(guard)])
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}


def thumbnail_url(content_hash: str, size: int) -> str:
    return f"/api/thumbs/{content_hash}/{size}.avif"


def present(item: dict[str, Any], st: AppState) -> dict[str, Any]:
    """Add the URLs a client needs; every list item carries its placeholder inline."""
    item = dict(item)
    item["thumbnail_url"] = thumbnail_url(item["content_hash"], st.settings.thumb_size)
    item["preview_url"] = thumbnail_url(item["content_hash"], PREVIEW_SIZE)
    item["file_url"] = f"/api/images/{item['id']}/file"
    fmt, preview = item.get("format"), item.pop("preview_key", None)
    if item.get("duration") is None:
        item["media"] = "image"
    else:
        item["media"] = "video" if fmt in VIDEO_FORMATS else "animation"
        if preview:  # the short muted MP4 the grid plays on hover
            item["clip_url"] = f"/api/clips/{item['content_hash']}.mp4"
    if item.get("placeholder") is None:
        item["placeholder"] = (
            "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciIHZpZXdCb3g9IjAgMCAxIDEiPjxyZWN0IHdpZHRoPSIxIiBoZWlnaHQ9IjEiIGZpbGw9IiMzMzMiLz48L3N2Zz4="
        )
    item.pop("thumb_key", None)
    return item


@router.get("/images")
def list_images(
    request: Request,
    q: str = "",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Images matching the query language, newest first unless ``sort:`` says otherwise.
    ``limit`` is capped at 1,000; pass ``next_cursor`` back as ``cursor`` for the next page."""
    st = state(request)
    page = catalog_images.search(
        st.store.read(),
        q,
        limit=limit,
        cursor=cursor,
        extra_where=visible_sql(principal(request)),
        marks=viewer_marks(request),
    )
    return {"items": [present(i, st) for i in page.items], "next_cursor": page.next_cursor}


@router.get("/images/count")
def count_images(request: Request, q: str = "") -> dict[str, int]:
    from dreamdepot.catalog.images import compile_query

    parsed = compile_query(state(request).store.read(), q).reading(viewer_marks(request))
    conn = state(request).store.read()
    where, params = parsed.sql_on(conn)
    mine, more = visible_sql(principal(request))
    n = conn.execute(
        f"SELECT count(*) FROM images WHERE ({where}) AND {mine}", [*params, *more]
    ).fetchone()
    return {"count": n[0]}


def _detail_or_404(st: AppState, image_id: int) -> dict[str, Any]:
    d = catalog_images.detail(st.store.read(), image_id)
    if d is None:
        raise HTTPException(404, f"no image {image_id}")
    return d


@router.get("/images/{image_id}")
def image_detail(request: Request, image_id: int) -> dict[str, Any]:
    """Every parameter of one image, its files, tags, albums and lineage."""
    st = state(request)
    d = present(_detail_or_404(st, image_id), st)
    who = principal(request)
    d["can_reveal"] = st.token is None and who is None  # the browser runs on this machine
    d["owner"] = _owner(st, d.get("owner_id"))
    d["shared"] = bool(d.get("shared"))
    conn = st.store.read()
    d.update(marks_of(conn, viewer_marks(request), image_id) or {})
    mine, more = visible_sql(who)
    d["albums"] = (
        []
        if who is not None and not who.is_admin
        else [
            r[0]
            for r in conn.execute(
                "SELECT a.name FROM album_images ai JOIN albums a ON a.id = ai.album_id "
                "WHERE ai.image_id = ? ORDER BY a.name",
                (image_id,),
            )
        ]
    )
    d["children"] = [
        r[0]
        for r in conn.execute(
            f"SELECT id FROM images WHERE parent_id = ? AND {mine} ORDER BY id", (image_id, *more)
        )
    ]
    d.pop("raw_metadata", None)
    if who is not None and not who.is_admin:  # where the server keeps files is its business
        d["files"] = [{**f, "path": os.path.basename(str(f.get("path", "")))} for f in d["files"]]
    return d


def _owner(st: AppState, owner_id: int | None) -> str | None:
    """The display name of an image's owner (None: the library's own)."""
    if owner_id is None:
        return None
    row = (
        st.store.read()
        .execute("SELECT display_name FROM users WHERE id = ?", (owner_id,))
        .fetchone()
    )
    return str(row[0]) if row else None


class SharingBody(BaseModel):
    shared: bool


@router.put("/images/{image_id}/sharing")
def set_sharing(request: Request, image_id: int, body: SharingBody) -> dict[str, Any]:
    """Share an image with everyone on the instance, or make it private again (its owner)."""
    with state(request).store.write() as conn:
        n = conn.execute("UPDATE images SET shared = ? WHERE id = ?", (int(body.shared), image_id))
        if not n.rowcount:
            raise HTTPException(404, f"no image {image_id}")
    return {"id": image_id, "shared": body.shared}


def workflow_text(container: Any) -> str | None:
    """The ComfyUI UI graph an image carries: a PNG ``workflow`` chunk, an EXIF
    ``workflow:`` value (WebP, as ComfyUI saves it), or a SaveImagePlus UserComment."""
    import json

    text = container.texts.get("workflow")
    if text:
        return str(text)
    for value in container.exif.values():
        if isinstance(value, str) and value.startswith("workflow:"):
            return value.removeprefix("workflow:")
        if isinstance(value, str) and value.lstrip().startswith("{") and '"workflow"' in value:
            try:
                doc = json.loads(value)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("workflow"):
                wf = doc["workflow"]
                return wf if isinstance(wf, str) else json.dumps(wf)
    return None


@router.get("/images/{image_id}/workflow")
def image_workflow(request: Request, image_id: int) -> dict[str, Any]:
    """The ComfyUI workflow embedded in the image's file, to paste onto ComfyUI's canvas."""
    from dreamdepot.ingest.metadata.containers import read_container

    st = state(request)
    d = _detail_or_404(st, image_id)
    for f in d["files"]:
        if f["state"] != "present":
            continue
        try:
            with open(f["path"], "rb") as fh:
                text = workflow_text(read_container(fh, os.fstat(fh.fileno()).st_size))
        except (OSError, DreamDepotError):
            continue
        if text:
            return {"workflow": text}
    raise HTTPException(404, "this image carries no ComfyUI workflow")


COMPARED = (
    "model", "sampler", "scheduler", "steps", "cfg_scale", "seed", "width", "height",
    "denoise", "clip_skip", "vae", "generator", "negative_prompt",
)  # fmt: skip


@router.get("/compare")
def compare(
    request: Request, ids: Annotated[str, Query(pattern=r"^\d+(,\d+){1,3}$")]
) -> dict[str, Any]:
    """Two to four images side by side: each image, the word diff of each prompt against
    the first one's, and the parameters whose values differ."""
    from dreamdepot.server.routes.semantic import word_diff

    st = state(request)
    who = principal(request)
    wanted = [int(i) for i in ids.split(",")]
    if any(not can_see(st.store.read(), who, i) for i in wanted):
        raise HTTPException(404, "no such image")
    details = [present(_detail_or_404(st, i), st) for i in wanted]
    first = details[0].get("prompt") or ""
    for d in details:
        d.pop("raw_metadata", None)
        d["prompt_diff"] = word_diff(first, d.get("prompt") or "")
    differing = [
        {"name": name, "values": [d.get(name) for d in details]}
        for name in COMPARED
        if len({repr(d.get(name)) for d in details}) > 1
    ]
    return {"images": details, "differing": differing}


@router.get("/duplicates")
def duplicates(
    request: Request,
    kind: Annotated[str, Query(pattern="^(near|exact)$")] = "near",
    max_distance: Annotated[int, Query(ge=0, le=16)] = 6,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Groups of exact copies (one image, several files) or near-duplicates (perceptual
    hashes within ``max_distance`` bits), largest first, each with a keep-best suggestion."""
    from dreamdepot.catalog.duplicates import duplicate_groups

    st = state(request)
    conn = st.store.read()
    groups = duplicate_groups(conn, kind, max_distance)[:limit]
    wanted = sorted({i["id"] for g in groups for i in g["images"]})
    by_id: dict[int, dict[str, Any]] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        page = catalog_images.search(
            conn,
            "id:" + ",".join(map(str, chunk)),
            limit=len(chunk),
            extra_where=visible_sql(principal(request)),
            marks=viewer_marks(request),
        )
        by_id.update({it["id"]: present(it, st) for it in page.items})
    kept = []
    for g in groups:
        before = len(g["images"])  # an exact group is one image with several files
        g["images"] = [{**by_id[i["id"]], **i} for i in g["images"] if i["id"] in by_id]
        if g["images"] and (len(g["images"]) > 1 or before == 1):
            kept.append(g)  # a pair half of which is someone else's private image is not one
    groups = kept
    return {"groups": groups, "kind": kind, "max_distance": max_distance}


@router.get("/images/{image_id}/raw")
def image_raw(request: Request, image_id: int) -> dict[str, Any]:
    """The metadata text exactly as embedded (A1111 infotext, ComfyUI graph JSON, …)."""
    row = (
        state(request)
        .store.read()
        .execute("SELECT raw_metadata, metadata_source FROM images WHERE id = ?", (image_id,))
        .fetchone()
    )
    if row is None:
        raise HTTPException(404, f"no image {image_id}")
    return {"raw": row[0], "source": row[1].split(",") if row[1] else []}


@router.get("/images/{image_id}/infotext")
def image_infotext(request: Request, image_id: int) -> dict[str, str]:
    """The image's parameters as A1111 infotext, for pasting into any A1111-style UI."""
    d = _detail_or_404(state(request), image_id)
    g = Generation(
        generator=d["generator"] or "unknown",
        prompt=d["prompt"],
        negative_prompt=d["negative_prompt"],
        steps=d["steps"],
        sampler=d["sampler"],
        scheduler=d["scheduler"],
        cfg_scale=d["cfg_scale"],
        seed=d["seed"],
        width=d["width"],
        height=d["height"],
        model=d["model"],
        model_hash=d["model_hash"],
        denoise=d["denoise"],
        clip_skip=d["clip_skip"],
    )
    return {"infotext": format_infotext(g)}


VALUE_COLUMNS = {
    "model": "model",
    "sampler": "sampler",
    "generator": "generator",
    "scheduler": "scheduler",
}


@router.get("/values/{field}")
def field_values(
    request: Request, field: str, prefix: str = "", limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    """Autocomplete: known values of model, sampler, generator, scheduler, lora, or prompt
    words (``word``), starting with ``prefix``, most used first."""
    conn = state(request).store.read()
    who = principal(request)
    mine, more = visible_sql(who)
    if field == "word" and who is not None and not who.is_admin:
        raise HTTPException(403, "prompt words span every prompt: admins only on a shared instance")
    like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    like_op = engine_like(conn)
    if field in VALUE_COLUMNS:
        col = VALUE_COLUMNS[field]
        rows = conn.execute(
            f"SELECT {col} AS name, count(*) AS count FROM images "
            f"WHERE {col} {like_op} ? ESCAPE '\\' AND {mine} "
            f"GROUP BY {col} ORDER BY count DESC LIMIT ?",
            (like, *more, limit),
        ).fetchall()
    elif field == "lora":
        if is_postgresql(conn):
            names = "jsonb_array_elements(images.loras::jsonb) j", "j.value ->> 'name'"
        else:
            names = "json_each(images.loras) j", "json_extract(j.value, '$.name')"
        rows = conn.execute(
            f"SELECT {names[1]} AS name, count(*) AS count FROM images, {names[0]} "
            f"WHERE images.loras IS NOT NULL AND {names[1]} {like_op} ? ESCAPE '\\' AND {mine} "
            f"GROUP BY {names[1]} ORDER BY count DESC LIMIT ?",
            (like, *more, limit),
        ).fetchall()
    elif field == "word" and is_postgresql(conn):
        rows = conn.execute(
            "SELECT word AS name, ndoc AS count FROM ts_stat(?) WHERE word >= ? AND word < ? "
            "ORDER BY ndoc DESC LIMIT ?",
            (prompt_words_sql(prefix), prefix.lower(), prefix.lower() + "\uffff", limit),
        ).fetchall()
    elif field == "word":
        rows = conn.execute(
            "SELECT term AS name, doc AS count FROM prompts_vocab WHERE term >= ? AND term < ? "
            "ORDER BY doc DESC LIMIT ?",
            (prefix.lower(), prefix.lower() + "\uffff", limit),
        ).fetchall()
    else:
        raise HTTPException(404, f"no values for {field!r}")
    return {"values": [dict(r) for r in rows]}


def prompt_words_sql(prefix: str) -> str:
    """PostgreSQL: the statement ``ts_stat`` counts words over: the prompts holding a word
    that starts with ``prefix`` (found through the GIN index), or all prompts.

    >>> prompt_words_sql("it's")
    "SELECT tsv FROM prompts WHERE tsv @@ to_tsquery('simple', '''it''''s'':*')"
    """
    words = fts_terms(prefix)
    if not words:
        return "SELECT tsv FROM prompts"
    tsquery = Words(((words[0][0], True),)).tsquery().replace("'", "''")
    return f"SELECT tsv FROM prompts WHERE tsv @@ to_tsquery('simple', '{tsquery}')"


class RatingBody(BaseModel):
    rating: int | None = Field(None, ge=0, le=5)


class FavoriteBody(BaseModel):
    favorite: bool


class BulkRatingBody(BaseModel):
    ids: list[int] = Field(..., max_length=100_000)
    rating: int | None = Field(None, ge=0, le=5)


@router.put("/images/{image_id}/rating")
def set_rating(request: Request, image_id: int, body: RatingBody) -> dict[str, Any]:
    """The caller's rating: on their own image's row, else in their own marks (a shared
    image's owner keeps theirs)."""
    with state(request).store.write() as conn:
        if not mark(conn, viewer_marks(request), [image_id], rating=body.rating):
            raise HTTPException(404, f"no image {image_id}")
    return {"id": image_id, "rating": body.rating}


@router.put("/images/{image_id}/favorite")
def set_favorite(request: Request, image_id: int, body: FavoriteBody) -> dict[str, Any]:
    with state(request).store.write() as conn:
        if not mark(conn, viewer_marks(request), [image_id], favorite=int(body.favorite)):
            raise HTTPException(404, f"no image {image_id}")
    return {"id": image_id, "favorite": body.favorite}


@router.post("/ratings")
def bulk_rating(request: Request, body: BulkRatingBody) -> dict[str, int]:
    """Rate many images at once; each is the caller's to see (404 names those it is not)."""
    if principal(request) is not None:
        only_visible(request, body.ids)
    with state(request).store.write() as conn:
        n = mark(conn, viewer_marks(request), body.ids, rating=body.rating)
    return {"updated": n}


def _present_file(st: AppState, image_id: int) -> str:
    rows = (
        st.store.read()
        .execute(
            "SELECT root_id, rel_path FROM files WHERE image_id = ? AND state = 'present'"
            " ORDER BY id",
            (image_id,),
        )
        .fetchall()
    )
    for root_id, rel in rows:
        path = confined(st, root_id, from_db(rel)) or _from_store(st, root_id, from_db(rel))
        if path is not None:
            return path
    raise HTTPException(404, f"image {image_id} has no readable file")


def _from_store(st: AppState, root_id: int, rel: str) -> str | None:
    """A file kept in the object store, through this server's local cache of it (fetched
    once, after the caller's access was checked)."""
    from dreamdepot.storage import BlobError, key_of

    root = st.roots.get(root_id)
    key = key_of(st.blobs, root, rel) if root else None
    if key is None:
        return None
    cached = st.library_path / "cache" / "blobs" / key
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        part = cached.with_name(f".{cached.name}.part")
        try:
            st.blobs.download(key, part)
        except BlobError as exc:
            part.unlink(missing_ok=True)
            raise HTTPException(503, str(exc), {"Retry-After": "5"}) from exc
        part.replace(cached)
    return str(cached)


@router.get("/images/{image_id}/file")
def original_file(request: Request, image_id: int) -> Response:
    """The original file, from inside a registered folder only."""
    st = state(request)
    _detail_or_404(st, image_id)
    return image_response(_present_file(st, image_id))


@router.post("/images/{image_id}/reveal")
def reveal_file(request: Request, image_id: int) -> dict[str, Any]:
    """Show the image's file in this machine's file manager. Local mode only: with an access
    token the browser is elsewhere, and a window would open on the server instead."""
    from dreamdepot.reveal import reveal

    st = state(request)
    if st.token is not None:
        raise HTTPException(403, "reveal in folder works in local mode only (no access token)")
    _detail_or_404(st, image_id)
    path = _present_file(st, image_id)
    try:
        reveal(path)
    except (DreamDepotError, OSError) as exc:
        raise HTTPException(501, str(exc)) from exc
    return {"revealed": path}


# at most this many on-demand decodes at once (each within media.decode's pixel budget)
_decoding = threading.BoundedSemaphore(2)


@router.get("/thumbs/{content_hash}/{size}.avif")
def thumbnail(request: Request, content_hash: str, size: int) -> Response:
    """Content-addressed AVIF thumbnail; made on demand when missing; a fallback tile (and the
    reason recorded) when the image cannot be decoded."""
    st = state(request)
    if (
        size not in (st.settings.thumb_size, PREVIEW_SIZE)
        or not content_hash.isalnum()
        or not content_hash.isascii()
        or len(content_hash) > 128
    ):
        raise HTTPException(404, "no such thumbnail size")
    key = thumb_key(content_hash, size)
    path = st.library_path / "thumbs" / key
    if path.is_file() or _thumb_from_store(st, key, path):
        return FileResponse(path, media_type="image/avif", headers=IMMUTABLE)
    row = (
        st.store.read()
        .execute("SELECT id FROM images WHERE content_hash = ?", (content_hash,))
        .fetchone()
    )
    if row is None:
        raise HTTPException(404, "unknown image")
    try:
        source = _present_file(st, row[0])
    except HTTPException:
        return Response(
            fallback_thumbnail(), media_type="image/avif", headers={"Cache-Control": "no-store"}
        )
    with _decoding:  # a queue, not parallel decodes: memory stays bounded under load
        if path.is_file():  # made by a request that held the slot before us
            return FileResponse(path, media_type="image/avif", headers=IMMUTABLE)
        result = make_media(source, content_hash, str(st.library_path / "thumbs"), (size,))
    with st.store.write() as conn:
        if result.error:
            conn.execute("UPDATE images SET media_error = ? WHERE id = ?", (result.error, row[0]))
        elif size == st.settings.thumb_size:
            conn.execute(
                "UPDATE images SET thumb_key = ?, placeholder = ?, phash = ? WHERE id = ?",
                (result.thumb_key, result.placeholder, result.phash, row[0]),
            )
    if not result.error and path.is_file():
        _thumb_to_store(st, key, path)
    if result.error or not path.is_file():
        return Response(
            fallback_thumbnail(), media_type="image/avif", headers={"Cache-Control": "no-store"}
        )
    return FileResponse(path, media_type="image/avif", headers=IMMUTABLE)


def _thumb_from_store(st: AppState, key: str, path: Any) -> bool:
    """A thumbnail another server made, from the object store (False: none there)."""
    from dreamdepot.storage import BlobError, S3Blobs

    if not isinstance(st.blobs, S3Blobs):
        return False
    try:
        if st.blobs.size(f"thumbs/{key}") is None:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.part")
        st.blobs.download(f"thumbs/{key}", part)
        part.replace(path)
    except BlobError:
        return False  # made here instead
    return True


def _thumb_to_store(st: AppState, key: str, path: Any) -> None:
    """Share a thumbnail this server made with the others (best effort: it can be made
    again)."""
    from dreamdepot.storage import BlobError, S3Blobs

    if isinstance(st.blobs, S3Blobs):
        with contextlib.suppress(BlobError):
            st.blobs.put_file(f"thumbs/{key}", path, "image/avif")


@router.get("/clips/{content_hash}.mp4")
def clip(request: Request, content_hash: str) -> Response:
    """The hover preview of a video or animation (made by the background media stage)."""
    if not content_hash.isalnum() or not content_hash.isascii() or len(content_hash) > 128:
        raise HTTPException(404, "no such clip")
    path = state(request).library_path / "thumbs" / preview_key(content_hash)
    if not path.is_file():
        raise HTTPException(404, "no clip for this image (yet)")
    return FileResponse(path, media_type="video/mp4", headers=IMMUTABLE)


@router.get("/images/{image_id}/similar")
def similar_by_look(
    request: Request,
    image_id: int,
    max_distance: Annotated[int, Query(ge=0, le=64)] = 10,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Images that look alike (perceptual-hash Hamming distance), closest first."""
    import numpy as np

    st = state(request)
    conn = st.store.read()
    row = conn.execute("SELECT phash FROM images WHERE id = ?", (image_id,)).fetchone()
    if row is None:
        raise HTTPException(404, f"no image {image_id}")
    if row[0] is None:
        return {"items": [], "note": "no perceptual hash yet: thumbnails are still being made"}
    ids, hashes = [], []
    mine, more = visible_sql(principal(request))
    for i, h in conn.execute(
        f"SELECT id, phash FROM images WHERE phash IS NOT NULL AND id != ? AND {mine}",
        (image_id, *more),
    ):
        ids.append(i)
        hashes.append(h)
    if not ids:
        return {"items": []}
    arr = np.array(hashes, dtype=np.int64).view(np.uint64) ^ np.uint64(row[0] & (2**64 - 1))
    bits = np.unpackbits(arr.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
    order = np.argsort(bits, kind="stable")
    chosen = [(ids[k], int(bits[k])) for k in order[:limit] if bits[k] <= max_distance]
    by_id = {i: d for i, d in chosen}
    items = []
    if chosen:
        page = catalog_images.search(
            conn,
            "id:" + ",".join(str(i) for i, _ in chosen),
            limit=len(chosen),
            marks=viewer_marks(request),
        )
        for item in sorted(page.items, key=lambda it: by_id[it["id"]]):
            item = present(item, st)
            item["distance"] = by_id[item["id"]]
            items.append(item)
    return {"items": items}
