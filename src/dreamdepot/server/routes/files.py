"""Original files by folder path, confined to the registered roots.

A path is joined to its root and resolved (symlinks included); anything that lands outside
the root — ``..``, an absolute path, encoded traversal, a symlink pointing out — is a 404,
exactly like a file that does not exist, so probing learns nothing.
"""

from __future__ import annotations

import os

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from dreamdepot.server.app import AppState, state

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


@router.get("/files/{root_id}/{rel_path:path}")
def file_by_path(request: Request, root_id: int, rel_path: str) -> Response:
    real = confined(state(request), root_id, rel_path)
    if real is None:
        raise HTTPException(404, "not found")
    return FileResponse(real, headers={"Cache-Control": "private, max-age=60"})
