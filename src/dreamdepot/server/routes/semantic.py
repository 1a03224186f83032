"""Semantic endpoints: suggestions, the dream cache, more-like-this, prompt variants."""

from __future__ import annotations

import difflib
import functools
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog.query import prompts_matching
from dreamdepot.catalog.visibility import cache_sql, sees_prompt, visible_sql
from dreamdepot.semantic import service
from dreamdepot.semantic.cache import (
    DEFAULT_THRESHOLD,
    DreamRequest,
    cache_stats,
)
from dreamdepot.semantic.embedders import Embedder, EmbedderUnavailable, embedder_for_library
from dreamdepot.server.accounts import guard, principal, viewer_marks
from dreamdepot.server.app import AppState, state
from dreamdepot.server.routes.images import present

router = APIRouter(prefix="/api", tags=["semantic"], dependencies=[Depends(guard)])


def _embedder_or_503(st: AppState) -> Embedder:
    try:
        return embedder_for_library(st.library_path)
    except EmbedderUnavailable as exc:
        raise HTTPException(503, str(exc)) from exc


@router.get("/suggest")
def suggest(
    request: Request, q: str = "", limit: Annotated[int, Query(ge=1, le=50)] = 10
) -> dict[str, Any]:
    """Prompts for a search or generate box: full-text prefix matches first, then semantic
    neighbours (when the embedding model is installed), de-duplicated."""
    conn = state(request).store.read()
    text = q.strip()
    if not text:
        return {"items": []}
    words = text.split()
    subquery, params = prompts_matching(conn, " ".join([*words[:-1], words[-1] + "*"]), 200)
    rows = conn.execute(
        f"SELECT p.id, p.text, p.image_count FROM prompts p WHERE p.id IN ({subquery}) "
        "ORDER BY p.image_count DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    who = principal(request)
    items = [
        {"id": r[0], "text": r[1], "image_count": r[2], "source": "words"}
        for r in rows
        if sees_prompt(conn, who, int(r[0]))
    ]
    seen = {i["id"] for i in items}
    semantic_note = None
    try:
        for pid, score in service.neighbours(conn, text, limit * 2, min_score=0.5):
            if pid in seen or len(items) >= limit * 2 or not sees_prompt(conn, who, pid):
                continue
            row = conn.execute(
                "SELECT text, image_count FROM prompts WHERE id = ?", (pid,)
            ).fetchone()
            if row:
                items.append(
                    {
                        "id": pid,
                        "text": row[0],
                        "image_count": row[1],
                        "source": "similar",
                        "score": round(score, 3),
                    }
                )
                seen.add(pid)
    except EmbedderUnavailable as exc:
        semantic_note = str(exc)
    return {"items": items[: limit * 2], "semantic": semantic_note is None, "note": semantic_note}


class DreamBody(BaseModel):
    prompt: str = Field(..., max_length=20_000)
    negative_prompt: str | None = Field(None, max_length=20_000)
    model: str | None = None
    width: int | None = Field(None, ge=8, le=16_384)
    height: int | None = Field(None, ge=8, le=16_384)
    match_size: str = Field("aspect", pattern="^(aspect|exact|any)$")
    hold: dict[str, Any] = Field(default_factory=dict)
    threshold: float = Field(DEFAULT_THRESHOLD, ge=0.0, le=1.0)
    scope: str | None = Field(None, max_length=4000)
    force: bool = False  # "generate anyway": skip the lookup
    no_cache: bool = False  # the older name of force


def _label_owners(st: Any, who: Any, items: list[dict[str, Any]]) -> None:
    """A hit from someone else's shared image names whose picture answered."""
    if who is None or not items:
        return
    conn = st.store.read()
    marks = ",".join("?" * len(items))
    owners = {
        int(r[0]): (r[1], r[2])
        for r in conn.execute(
            f"SELECT i.id, i.owner_id, u.display_name FROM images i LEFT JOIN users u "
            f"ON u.id = i.owner_id WHERE i.id IN ({marks})",
            [i["id"] for i in items],
        )
    }
    for item in items:
        owner_id, name = owners.get(int(item["id"]), (None, None))
        item["owner"] = name
        item["from_someone_else"] = owner_id is not None and owner_id != who.user_id


# Dream lookups wait for the embedding model. They run on threads of their own, at most
# this many at once (the rest wait without a thread), so a burst of them cannot take every
# thread of the pool that serves pages, details, thumbnails and tags; the embedder runs
# those waiting together as one batch.
DREAM_THREADS = 8


@router.post("/dream")
async def dream(request: Request, body: DreamBody) -> dict[str, Any]:
    """Answer from the library when a past generation asked for the same picture; on a miss
    (or with ``force``: "generate anyway"), queue a generation with what the request held
    fixed. The decision says why (matched prompt, similarity, first contrasting difference)."""
    limiter = getattr(request.app.state, "dream_threads", None)
    if limiter is None:  # made inside the event loop that serves this app
        limiter = request.app.state.dream_threads = anyio.CapacityLimiter(DREAM_THREADS)
    return await anyio.to_thread.run_sync(functools.partial(_dream, request, body), limiter=limiter)


def _dream(request: Request, body: DreamBody) -> dict[str, Any]:
    from dreamdepot.catalog.query import QueryError
    from dreamdepot.semantic.dream import HoldError, normalise_hold
    from dreamdepot.semantic.dream import dream as decide

    st = state(request)
    force = body.force or body.no_cache
    embedder = None if force else _embedder_or_503(st)  # generating anyway needs no vectors
    try:
        held = normalise_hold(body.hold)
    except HoldError as exc:
        raise HTTPException(422, str(exc)) from None
    who = principal(request)
    req = DreamRequest(
        body.prompt,
        body.negative_prompt,
        body.model,
        body.width,
        body.height,
        body.match_size,
        held,
        body.threshold,
        scope=body.scope,
        # on a shared instance: the requester's own images and every shared one
        restrict=cache_sql(who) if who is not None else None,
        user_id=who.user_id if who is not None else None,
    )
    try:
        outcome = decide(
            st.store.read(),
            embedder,
            req,
            backend=st.settings.backend,
            force=force,
            writer=st.store.write,
        )
    except QueryError as exc:
        raise HTTPException(400, f"scope: {exc}") from None
    result = outcome.to_dict()
    result["images"] = [present(i, st) for i in result["images"]]
    _label_owners(st, who, result["images"])
    result["generated"] = None
    if outcome.generate is not None:
        from dreamdepot.server.routes.generate import queue_for, submit_or_422

        queue, wake = queue_for(st)
        job = submit_or_422(queue, outcome.generate, user_id=who.user_id if who else None)
        wake.set()
        result["generated"] = {"job": job}
    return result


@router.get("/cache/stats")
def stats(request: Request) -> dict[str, Any]:
    """The dream cache's figures; on a shared instance, the caller's own lookups, with the
    instance's totals beside them."""
    conn = state(request).store.read()
    who = principal(request)
    if who is None:
        return cache_stats(conn)
    everyone = cache_stats(conn)
    totals = ("lookups", "hits", "misses", "hit_rate", "gpu_seconds_saved")
    return {**cache_stats(conn, who.user_id), "instance": {k: everyone[k] for k in totals}}


def _prompt_neighbours(
    st: AppState, prompt_id: int, k: int, min_score: float
) -> list[tuple[int, float]]:
    conn = st.store.read()
    embedder = _embedder_or_503(st)
    vector = service.prompt_vector(conn, prompt_id, embedder)
    if vector is None:
        raise HTTPException(404, f"no prompt {prompt_id}")
    return [
        (p, s)
        for p, s in service.neighbours(conn, "", k + 1, min_score, embedder, vector)
        if p != prompt_id
    ][:k]


@router.get("/images/{image_id}/more-like-this")
def more_like_this(
    request: Request, image_id: int, limit: Annotated[int, Query(ge=1, le=200)] = 40
) -> dict[str, Any]:
    """Images whose prompts mean nearly the same as this image's prompt."""
    st = state(request)
    row = (
        st.store.read().execute("SELECT prompt_id FROM images WHERE id = ?", (image_id,)).fetchone()
    )
    if row is None:
        raise HTTPException(404, f"no image {image_id}")
    if row[0] is None:
        return {"items": [], "note": "this image has no prompt"}
    near = [row[0]] + [p for p, _ in _prompt_neighbours(st, row[0], 30, 0.6)]
    mine, more = visible_sql(principal(request))
    page = catalog_images.search(
        st.store.read(),
        "",
        limit=limit + 1,
        extra_where=(
            f"images.prompt_id IN ({','.join(map(str, near))}) AND images.id != ? AND {mine}",
            [image_id, *more],
        ),
        marks=viewer_marks(request),
    )
    return {"items": [present(i, st) for i in page.items[:limit]]}


def word_diff(a: str, b: str) -> list[dict[str, str]]:
    """Word-level diff: [{"op": "same"|"removed"|"added", "text": ...}]."""
    wa, wb = a.split(), b.split()
    out: list[dict[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=wa, b=wb).get_opcodes():
        if tag == "equal":
            out.append({"op": "same", "text": " ".join(wa[i1:i2])})
        else:
            if i2 > i1:
                out.append({"op": "removed", "text": " ".join(wa[i1:i2])})
            if j2 > j1:
                out.append({"op": "added", "text": " ".join(wb[j1:j2])})
    return out


@router.get("/prompts/{prompt_id}/variants")
def variants(
    request: Request,
    prompt_id: int,
    min_score: float = 0.85,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The prompt's family: prompts within ``min_score`` cosine, each with a word diff."""
    st = state(request)
    conn = st.store.read()
    base = conn.execute("SELECT text FROM prompts WHERE id = ?", (prompt_id,)).fetchone()
    who = principal(request)
    if base is None or not sees_prompt(conn, who, prompt_id):
        raise HTTPException(404, f"no prompt {prompt_id}")
    items = []
    for pid, score in _prompt_neighbours(st, prompt_id, limit, min_score):
        row = conn.execute("SELECT text, image_count FROM prompts WHERE id = ?", (pid,)).fetchone()
        if row and sees_prompt(conn, who, pid):
            items.append(
                {
                    "id": pid,
                    "text": row[0],
                    "image_count": row[1],
                    "score": round(score, 3),
                    "diff": word_diff(base[0], row[0]),
                }
            )
    return {"items": items}
