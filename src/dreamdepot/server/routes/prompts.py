"""Prompts: every prompt ever used, with counts, first/last use and typical outputs."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog.query import prompts_matching
from dreamdepot.catalog.visibility import visible_sql
from dreamdepot.server.accounts import principal, viewer_marks
from dreamdepot.server.app import state
from dreamdepot.server.routes.images import present

router = APIRouter(prefix="/api/prompts", tags=["prompts"])
SORTS = {
    "count": "p.image_count",
    "recent": "p.last_seen",
    "first": "p.first_seen",
    "text": "p.text",
}


def _cursor(value: Any, last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([value, last_id]).encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> tuple[Any, int]:
    try:
        value, last_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return value, int(last_id)
    except (ValueError, TypeError) as exc:
        raise HTTPException(400, "invalid cursor") from exc


@router.get("")
def list_prompts(
    request: Request,
    q: str = "",
    sort: str = "count",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    strip: Annotated[int, Query(ge=0, le=12)] = 6,
) -> dict[str, Any]:
    """Positive prompts with image counts, newest/most used first; each with a strip of its
    most recent (best rated first) outputs. ``q`` searches prompt words (FTS5, ``word*``)."""
    if sort not in SORTS:
        raise HTTPException(400, f"unknown sort {sort!r}; use one of {', '.join(SORTS)}")
    st = state(request)
    conn = st.store.read()
    expr = SORTS[sort]
    desc = sort != "text"
    where: list[str] = ["p.image_count > 0"]
    params: list[object] = []
    who = principal(request)
    mine, more = visible_sql(who)
    count = "p.image_count"
    if who is not None:  # a prompt shows when the caller sees one of its images
        where.append(f"EXISTS (SELECT 1 FROM images WHERE images.prompt_id = p.id AND {mine})")
        params.extend(more)
        count = f"(SELECT count(*) FROM images WHERE images.prompt_id = p.id AND {mine})"
    if q.strip():
        subquery, words = prompts_matching(conn, q)
        where.append(f"p.id IN ({subquery})")
        params.extend(words)
    if cursor:
        value, last_id = _uncursor(cursor)
        where.append(f"({expr}, p.id) {'<' if desc else '>'} (?, ?)")
        params += [value, last_id]
    order = "DESC" if desc else "ASC"
    rows = conn.execute(
        f"SELECT p.id, p.text, {count} AS image_count, p.first_seen, p.last_seen, {expr} AS _k "
        f"FROM prompts p WHERE {' AND '.join(where)} ORDER BY _k {order}, p.id {order} LIMIT ?",
        [*(more if who is not None else []), *params, limit + 1],
    ).fetchall()
    items = []
    for r in rows[:limit]:
        item = {k: r[k] for k in ("id", "text", "image_count", "first_seen", "last_seen")}
        if strip:
            page = catalog_images.search(
                conn,
                "sort:rating",
                limit=strip,
                extra_where=(f"images.prompt_id = ? AND {mine}", [r["id"], *more]),
                marks=viewer_marks(request),
            )
            item["images"] = [present(i, st) for i in page.items]
        items.append(item)
    next_cursor = (
        _cursor(rows[limit - 1]["_k"], rows[limit - 1]["id"]) if len(rows) > limit else None
    )
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{prompt_id}")
def prompt_detail(
    request: Request,
    prompt_id: int,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> dict[str, Any]:
    """One prompt and its images (keyset pages, newest first)."""
    st = state(request)
    conn = st.store.read()
    row = conn.execute(
        "SELECT id, text, image_count, first_seen, last_seen FROM prompts WHERE id = ?",
        (prompt_id,),
    ).fetchone()
    who = principal(request)
    mine, more = visible_sql(who)
    if row is None or (
        who is not None
        and not conn.execute(
            f"SELECT 1 FROM images WHERE images.prompt_id = ? AND {mine} LIMIT 1",
            (prompt_id, *more),
        ).fetchone()
    ):
        raise HTTPException(404, f"no prompt {prompt_id}")
    page = catalog_images.search(
        conn,
        "",
        limit=limit,
        cursor=cursor,
        extra_where=(f"images.prompt_id = ? AND {mine}", [prompt_id, *more]),
        marks=viewer_marks(request),
    )
    negatives = [
        dict(r)
        for r in conn.execute(
            "SELECT n.text, count(*) AS count FROM images JOIN prompts n ON n.id = "
            f"images.negative_prompt_id WHERE images.prompt_id = ? AND {mine} GROUP BY n.id "
            "ORDER BY count DESC LIMIT 5",
            (prompt_id, *more),
        )
    ]
    detail = dict(row)
    if who is not None:
        detail["image_count"] = conn.execute(
            f"SELECT count(*) FROM images WHERE images.prompt_id = ? AND {mine}",
            (prompt_id, *more),
        ).fetchone()[0]
    return {
        **detail,
        "negatives": negatives,
        "images": [present(i, st) for i in page.items],
        "next_cursor": page.next_cursor,
    }
