"""Getting images in over HTTP: multipart uploads, and the check ``dreamdepot push`` makes
first so a folder's files already on the instance are not sent again."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dreamdepot.server.accounts import principal
from dreamdepot.server.app import state
from dreamdepot.uploads import UploadRefused, have, receive, store

router = APIRouter(prefix="/api", tags=["uploads"])


@router.post("/uploads")
def upload(request: Request, files: list[UploadFile] = File(...)) -> Any:  # noqa: B008
    """Store and index each file in the ``files`` fields exactly as a scan reads it, owned by
    the sender. Each item is ``{"id", "name", "duplicate"}`` or ``{"name", "error",
    "status"}``; 200 when some file was kept, else the first refusal's status."""
    st = state(request)
    who = principal(request)
    limit = st.settings.max_upload_mb << 20
    quota = st.settings.upload_quota_mb << 20
    items: list[dict[str, Any]] = []
    catalog = st.open_catalog()
    try:
        for f in files:
            name = f.filename or "upload"
            try:
                tmp, sha, size = receive(f.file, st.library_path / "uploads", limit, name)
                kept = store(catalog, st.library_path, tmp, sha, size, name, who, quota, st.blobs)
            except UploadRefused as exc:
                items.append({"name": name, "error": str(exc), "status": exc.status})
                continue
            items.append(
                {"id": kept.image_id, "name": name, "duplicate": kept.duplicate, "sha256": sha}
            )
    finally:
        with contextlib.suppress(Exception):
            catalog.close()
    if any("id" in i and not i["duplicate"] for i in items):  # thumbnails, vectors, tags
        from dreamdepot.server.background import stages_soon

        stages_soon(st)
    if any("id" in i for i in items):
        return {"items": items}
    first = items[0] if items else {"error": "no files", "status": 422}
    return JSONResponse(
        {"error": first["error"], "items": items}, status_code=int(str(first["status"]))
    )


class HaveBody(BaseModel):
    sha256: list[str] = Field(max_length=10_000)


@router.post("/uploads/check")
def uploaded(request: Request, body: HaveBody) -> dict[str, list[str]]:
    """Which of these SHA-256 digests the instance already holds for the caller."""
    if any(len(h) != 64 or not h.isalnum() for h in body.sha256):
        raise HTTPException(422, {"message": "sha256: 64 hex digits each", "field": "sha256"})
    catalog = state(request).open_catalog()
    try:
        return {"have": have(catalog, principal(request), [h.lower() for h in body.sha256])}
    finally:
        catalog.close()
