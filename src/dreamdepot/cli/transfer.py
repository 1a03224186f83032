"""Sending a local folder to a shared instance: ``dreamdepot push``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Annotated

import typer

from dreamdepot.cli.common import _scan_progress, app, console, err_console, fail
from dreamdepot.terminal import escape

CHECK_BATCH = 500


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _media(folder: Path) -> list[Path]:
    from dreamdepot.ingest.scanner import MEDIA_SUFFIXES

    found = []
    for d, _, names in os.walk(folder):
        for n in names:
            if Path(n).suffix.lower() in MEDIA_SUFFIXES and not n.startswith("."):
                found.append(Path(d) / n)
    return sorted(found)


@app.command()
def push(
    folder: Annotated[
        Path, typer.Argument(help="A folder of images (e.g. an A1111 outputs folder).")
    ],
    server: Annotated[str, typer.Option("--server", help="The instance's URL.")],
    api_key: Annotated[
        str,
        typer.Option("--api-key", envvar="DREAMDEPOT_API_KEY", help="A key with the write scope."),
    ],
) -> None:
    """Upload a folder's images and videos to a shared instance, skipping what it already
    has (by content), so a push that was interrupted simply runs again. Files are read, never
    changed."""
    import httpx

    if not folder.is_dir():
        fail(f"{folder} is not a folder", 2)
    paths = _media(folder)
    client = httpx.Client(
        base_url=server.rstrip("/"),
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=httpx.Timeout(30.0, write=300.0),
    )
    sent = skipped = refused = 0
    with client, _scan_progress() as progress:
        hashing = progress.add_task("Hashing", total=len(paths))
        digests: dict[Path, str] = {}
        for p in paths:
            digests[p] = _sha256(p)
            progress.advance(hashing)
        have: set[str] = set()
        values = list(dict.fromkeys(digests.values()))
        for start in range(0, len(values), CHECK_BATCH):
            r = client.post(
                "/api/uploads/check", json={"sha256": values[start : start + CHECK_BATCH]}
            )
            if r.status_code in (401, 403):
                fail(f"the server refused the key: {r.json().get('error')}", 2)
            r.raise_for_status()
            have.update(r.json()["have"])
        todo = [p for p in paths if digests[p] not in have]
        skipped = len(paths) - len(todo)
        uploading = progress.add_task("Uploading", total=sum(p.stat().st_size for p in todo))
        for p in todo:
            if digests[p] in have:  # the same content twice in the folder
                skipped += 1
                continue
            with open(p, "rb") as f:
                r = client.post("/api/uploads", files={"files": (p.name, f)})
            item = (
                (r.json().get("items") or [{}])[0]
                if r.headers.get("content-type", "").startswith("application/json")
                else {}
            )
            if "id" in item:
                sent += 1
                have.add(digests[p])
            else:
                refused += 1
                err_console.print(
                    f"{escape(str(p))}: {escape(str(item.get('error') or r.text[:200]))}",
                    highlight=False,
                )
            progress.advance(uploading, p.stat().st_size)
    console.print(f"Pushed {sent} file(s); {skipped} already there; {refused} refused")
    if refused:
        raise typer.Exit(1)
