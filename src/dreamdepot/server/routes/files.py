"""Original files by folder path, confined to the registered roots.

A path is joined to its root and resolved (symlinks included); anything that lands outside
the root — ``..``, an absolute path, encoded traversal, a symlink pointing out — is a 404,
exactly like a file that does not exist, so probing learns nothing.

Only files the catalog indexed as images are served, with the content type of the format
their bytes show *now* (never guessed from the name), so a dotfile, a text file, or an HTML or
SVG page placed in a registered folder is never served, let alone run on the app's origin.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from dreamdepot.catalog.paths import to_db
from dreamdepot.ingest.metadata.containers import sniff_format
from dreamdepot.media.video import MEDIA_TYPES as VIDEO_TYPES
from dreamdepot.server.app import AppState, state

MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "avif": "image/avif",
    **VIDEO_TYPES,
}

router = APIRouter(tags=["files"])


def confined(st: AppState, root_id: int, rel_path: str) -> str | None:
    """The real path of ``rel_path`` inside root ``root_id``, or None if it escapes or is absent."""
    root = st.roots.get(root_id)
    if root is None:
        st.refresh_roots()
        root = st.roots.get(root_id)
    if root is None or "\x00" in rel_path or os.path.isabs(rel_path):
        return None
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, rel_path))
    if not real.startswith(real_root.rstrip(os.sep) + os.sep) or not os.path.isfile(real):
        return None
    return real


def image_response(real: str) -> Response:
    """The file as the image or video its bytes say it is; 404 for anything else. Range
    requests are answered (206), so a video seeks without being downloaded whole."""
    try:
        with open(real, "rb") as f:
            kind = sniff_format(f.read(16))
    except OSError:
        kind = None
    if kind not in MEDIA_TYPES:
        raise HTTPException(404, "not found")
    return FileResponse(
        real,
        media_type=MEDIA_TYPES[kind],
        headers={"Cache-Control": "private, max-age=60"},  # nosniff: server/security.py
        content_disposition_type="inline",
    )


@router.get("/files/{root_id}/{rel_path:path}")
def file_by_path(request: Request, root_id: int, rel_path: str) -> Response:
    st = state(request)
    real = confined(st, root_id, rel_path)
    indexed = (
        real is not None
        and st.store.read()
        .execute(
            "SELECT 1 FROM files WHERE root_id = ? AND rel_path = ? AND state = 'present'",
            (root_id, to_db(rel_path)),
        )
        .fetchone()
    )
    if real is None or not indexed:
        raise HTTPException(404, "not found")
    return image_response(real)
