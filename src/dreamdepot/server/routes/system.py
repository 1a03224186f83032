"""Library-wide endpoints: stats, scan, server-sent events."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from dreamdepot import __version__
from dreamdepot.catalog import images as catalog_images
from dreamdepot.server.accounts import principal
from dreamdepot.server.app import state

router = APIRouter(prefix="/api", tags=["library"])


@router.get("/folders")
def folders(request: Request) -> list[dict[str, Any]]:
    """The folder tree: each registered folder with its subfolders and how many files are at
    or below each (kept by the catalog, not counted per request); offline roots say so."""
    from dreamdepot.catalog.folders import folder_tree

    return folder_tree(state(request).store.read())


@router.get("/stats")
def stats(request: Request) -> dict[str, Any]:
    st = state(request)
    s = catalog_images.stats(st.store.read())
    s["library"] = str(st.library_path)
    s["version"] = __version__
    s["thumbnails_pending"] = (
        st.store.read()
        .execute("SELECT count(*) FROM images WHERE thumb_key IS NULL AND media_error IS NULL")
        .fetchone()[0]
    )
    return s


@router.post("/scan", status_code=202)
def start_scan(request: Request) -> dict[str, Any]:
    """Re-scan every folder in the background; progress arrives as ``scan`` events."""
    from dreamdepot.server.background import scan_in_background

    st = state(request)
    started = scan_in_background(st)
    return {"started": started}


@router.get("/events")
async def events(request: Request) -> StreamingResponse:
    """Server-sent events: ``scan`` progress, ``indexed`` images, ``thumbnails``, ``job``.
    On a shared instance a member or viewer hears only about their own jobs."""
    st = state(request)
    who = principal(request)
    allowed = None
    if who is not None and not who.is_admin:
        owners: dict[int, Any] = {}

        def allowed(kind: str, data: dict[str, Any]) -> bool:
            if kind != "job":
                return False  # folder paths and library-wide progress: admins only
            job_id = int(data.get("id") or 0)
            if job_id not in owners:  # runs in the publishing thread: its own reader
                row = (
                    st.store.read()
                    .execute("SELECT user_id FROM jobs WHERE id = ?", (job_id,))
                    .fetchone()
                )
                owners[job_id] = row[0] if row else None
            return bool(owners[job_id] == who.user_id)

    return StreamingResponse(
        st.events.stream(allowed=allowed),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
