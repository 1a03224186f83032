"""Tags: counts for the current query, and bulk add/remove by ids or by query."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field, model_validator

from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog import tags as catalog_tags
from dreamdepot.catalog.engine import like
from dreamdepot.catalog.images import compile_query
from dreamdepot.catalog.visibility import visible_sql
from dreamdepot.server.accounts import only_owned, owned, principal, restricted
from dreamdepot.server.app import state

router = APIRouter(prefix="/api", tags=["tags"])


@router.get("/tags")
def tag_counts(
    request: Request, q: str = "", limit: Annotated[int, Query(ge=1, le=5000)] = 200
) -> dict[str, Any]:
    """Tags with how many of the images matching ``q`` carry each, most used first
    (``partial``: counted over the newest 10,000 matches of a larger result)."""
    conn = state(request).store.read()
    return catalog_tags.tag_counts(conn, restricted(request, compile_query(conn, q)), limit)


@router.get("/tags/suggest")
def tag_suggest(
    request: Request, prefix: str = "", limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, Any]:
    """Tag names starting with ``prefix`` (autocomplete)."""
    conn = state(request).store.read()
    esc = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    who = principal(request)
    if who is None:
        rows = conn.execute(
            "SELECT t.name, count(it.image_id) AS count FROM tags t LEFT JOIN image_tags it "
            f"ON it.tag_id = t.id WHERE t.name {like(conn)} ? ESCAPE '\\' GROUP BY t.id "
            "ORDER BY count DESC, t.name LIMIT ?",
            (esc + "%", limit),
        ).fetchall()
    else:  # only tags on images the caller sees, counted over those
        mine, more = visible_sql(who)
        rows = conn.execute(
            "SELECT t.name, count(*) AS count FROM tags t JOIN image_tags it ON it.tag_id = "
            f"t.id JOIN images ON images.id = it.image_id WHERE t.name {like(conn)} ? "
            f"ESCAPE '\\' AND {mine} GROUP BY t.id, t.name ORDER BY count DESC, t.name LIMIT ?",
            (esc + "%", *more, limit),
        ).fetchall()
    return {"tags": [dict(r) for r in rows]}


class TagReview(BaseModel):
    """Accept (the tag becomes the user's) or reject (removed, never proposed again)."""

    tags: list[str] = Field(..., min_length=1, max_length=100)
    action: str = Field(..., pattern="^(accept|reject)$")
    ids: list[int] | None = Field(None, max_length=1_000_000)
    q: str | None = None


@router.post("/tags/review")
def review_tags(request: Request, body: TagReview) -> dict[str, Any]:
    from dreamdepot.tagging.stage import review

    st = state(request)
    if (body.ids is None) == (body.q is None):
        raise HTTPException(422, "give either ids or q")
    ids = (
        catalog_images.matching_ids(st.store.read(), owned(request, body.q))
        if body.q is not None
        else only_owned(request, body.ids or [])
    )
    with st.store.write() as conn:
        n = sum(review(conn, tag, ids, body.action) for tag in body.tags)
    return {"changed": n, "action": body.action}


@router.post("/autotag", status_code=202)
def run_autotag(request: Request) -> dict[str, Any]:
    """Run the enabled taggers in the background; progress arrives as ``autotag`` events."""
    from dreamdepot.server.background import autotag_in_background

    return {"started": autotag_in_background(state(request))}


class TagChange(BaseModel):
    """Which images: ``ids``, or every image matching ``q``. One transaction either way."""

    tags: list[str] = Field(..., min_length=1, max_length=100)
    ids: list[int] | None = Field(None, max_length=1_000_000)
    q: str | None = None
    remove: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> TagChange:
        if (self.ids is None) == (self.q is None):
            raise ValueError("give either ids or q")
        return self


@router.post("/tags")
def change_tags(request: Request, body: TagChange) -> dict[str, Any]:
    st = state(request)
    if body.q is not None:
        ids = catalog_images.matching_ids(st.store.read(), owned(request, body.q))
    else:
        ids = only_owned(request, body.ids or [])
    changed_ids: dict[str, list[int]] = {}
    with st.store.write() as conn:
        for tag in body.tags:
            had = catalog_tags.images_with_tag(conn, tag, ids)
            if body.remove:
                catalog_tags.remove_tag(conn, tag, ids)
                changed_ids[tag] = sorted(had)
            else:
                catalog_tags.add_tag(conn, tag, ids)
                changed_ids[tag] = sorted(set(ids) - had)
    return {
        "images": len(ids),
        "changed": sum(len(v) for v in changed_ids.values()),
        "changed_ids": changed_ids,
        "tags": body.tags,
        "removed": body.remove,
    }
