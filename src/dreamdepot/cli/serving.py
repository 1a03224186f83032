"""Serving the library over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dreamdepot.catalog import images as catalog_images
from dreamdepot.cli.common import (
    app,
    console,
    fail,
    open_library,
    print_scan,
    run_scan,
)
from dreamdepot.errors import DreamDepotError


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8765).")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Access token (16+ characters); required off loopback. Prefer "
            "DREAMDEPOT_TOKEN or --token-file: an argument shows in `ps`.",
            envvar="DREAMDEPOT_TOKEN",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option("--token-file", help="Read the access token from this file."),
    ] = None,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Do not open a browser.")
    ] = False,
    no_demo: Annotated[bool, typer.Option("--no-demo", help="Never create demo images.")] = False,
    behind_proxy: Annotated[
        bool,
        typer.Option(
            "--behind-proxy",
            help="An HTTPS reverse proxy is in front: serve plain HTTP off loopback, and "
            "believe X-Forwarded-* from [server] trusted_proxies only.",
        ),
    ] = False,
) -> None:
    """Serve the library over HTTP (web UI and API); an empty library gets demo images."""
    from dreamdepot.server.run import resolve_token, run_server

    with open_library() as lib:
        try:
            chosen_token = resolve_token(token, token_file, lib.settings.server)
        except DreamDepotError as exc:
            fail(str(exc), 2)
        if not lib.roots() and not no_demo:
            from dreamdepot.demo import make_demo_images

            console.print("The library is empty: creating demo images (labelled DEMO).")
            root = lib.add_root(make_demo_images(lib.path))
            print_scan(run_scan(lib, [root]))
        s = catalog_images.stats(lib.conn)
        console.print(
            f"Library {lib.path}: {s['images']:,} images, {s['prompts']:,} prompts, "
            f"{s['tags']:,} tags",
            highlight=False,
        )
        settings = lib.settings.server
        lib_path = lib.path
    try:
        run_server(
            lib_path,
            host or settings.host,
            port or settings.port,
            chosen_token,
            open_browser=not no_browser,
            behind_proxy=behind_proxy,
        )
    except DreamDepotError as exc:
        fail(str(exc), 2)
