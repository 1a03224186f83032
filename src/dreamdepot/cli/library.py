"""Library commands: folders in (add, scan, watch, demo), what is there (search, stats,
doctor, inspect), out (export) and housekeeping (prune, thumbnails)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog.engine import json_field
from dreamdepot.cli.common import (
    RichProgress,
    _scan_progress,
    app,
    console,
    err_console,
    fail,
    open_library,
    print_scan,
    run_scan,
)
from dreamdepot.errors import DreamDepotError, MetadataError, QueryError
from dreamdepot.library import redact
from dreamdepot.terminal import escape, json_text


@app.command()
def add(
    paths: Annotated[list[Path], typer.Argument(help="Folders to register and index.")],
    no_watch: Annotated[bool, typer.Option("--no-watch", help="Do not watch these.")] = False,
    no_scan: Annotated[bool, typer.Option("--no-scan", help="Register only.")] = False,
) -> None:
    """Register folders of images and index them."""
    with open_library() as lib:
        roots = []
        for p in paths:
            try:
                roots.append(lib.add_root(p, watch=not no_watch))
            except DreamDepotError as exc:
                fail(str(exc))
        for r in roots:
            console.print(f"Added {escape(r.path)}", highlight=False)
        if not no_scan:
            print_scan(run_scan(lib, roots))


@app.command()
def scan(
    retry_errors: Annotated[bool, typer.Option(help="Re-read files that failed before.")] = False,
    full_hash: Annotated[
        bool, typer.Option(help="Also complete full-content hashes after indexing.")
    ] = True,
) -> None:
    """Re-scan every registered folder: new, changed, moved and deleted files."""
    with open_library() as lib:
        print_scan(run_scan(lib, retry_errors=retry_errors, full_hash=full_hash))


@app.command()
def watch(
    no_scan: Annotated[bool, typer.Option("--no-scan", help="Skip the initial scan.")] = False,
) -> None:
    """Keep the catalog live while files are written into the folders (Ctrl-C stops)."""
    from dreamdepot.ingest.watcher import Watcher

    with open_library() as lib:
        if not no_scan:
            print_scan(run_scan(lib))
        roots = [r.path for r in lib.roots() if r.watch]
        if not roots:
            fail("no folders to watch: add one with `dreamdepot add FOLDER`")
        console.print(f"Watching {len(roots)} folder(s); Ctrl-C to stop.")

        def report(paths: list[str]) -> None:
            console.print(
                f"indexed {len(paths)} file(s): {escape(', '.join(paths[:5]))}"
                + (" …" if len(paths) > 5 else ""),
                highlight=False,
            )

        stop = threading.Event()
        try:
            Watcher(lib.indexer(workers=1), on_indexed=report).run_supervised(stop)
        except KeyboardInterrupt:
            stop.set()
            console.print("stopped")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Query, e.g. 'fox tag:best steps:20..30'.")] = "",
    limit: Annotated[int, typer.Option(help="At most this many results.", min=1, max=100_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """Search the catalog with the query language (see docs/query.md)."""
    with open_library() as lib:
        try:
            page = catalog_images.search(lib.conn, query, limit=limit)
        except QueryError as exc:
            fail(f"bad query: {exc}", 2)
        except DreamDepotError as exc:
            fail(str(exc), 2)
        if as_json:
            for item in page.items:
                item = dict(item)
                item["paths"] = [f["path"] for f in catalog_images.paths_of(lib.conn, item["id"])]
                item.pop("placeholder", None)
                sys.stdout.write(json_text(item, ensure_ascii=False) + "\n")
            return
        table = Table(show_lines=False)
        for col in ("id", "generator", "model", "seed", "steps", "prompt", "path"):
            table.add_column(col, overflow="fold")
        for item in page.items:
            paths = catalog_images.paths_of(lib.conn, item["id"])
            cells = (
                str(item["id"]), item["generator"] or "", item["model"] or "",
                "" if item["seed"] is None else str(item["seed"]),
                "" if item["steps"] is None else str(item["steps"]),
                (item["prompt"] or "")[:80], paths[0]["path"] if paths else "",
            )  # fmt: skip
            table.add_row(*(escape(c) for c in cells))
        console.print(table)
        console.print(
            f"{len(page.items)} shown" + (" (more: raise --limit)" if page.next_cursor else "")
        )


@app.command()
def stats(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Summarise the catalog: images, files, prompts, tags, generators, folders."""
    with open_library() as lib:
        s = catalog_images.stats(lib.conn)
        s["library"] = str(lib.path)
        s["catalog"] = redact(str(lib.catalog.where))
    if as_json:
        sys.stdout.write(json_text(s, ensure_ascii=False, indent=2) + "\n")
        return
    console.print(
        f"Library {escape(s['library'])} (catalog {escape(s['catalog'])})", highlight=False
    )
    console.print(
        f"{s['images']:,} images in {s['files']:,} files ({s['bytes'] / 1e6:,.1f} MB), "
        f"{s['prompts']:,} distinct prompts, {s['tags']:,} tags; "
        f"{s['missing_files']:,} missing, {s['offline_files']:,} offline, "
        f"{s['scan_errors']:,} unreadable, {s['pixel_errors']:,} with undecodable pixels"
    )
    live = s["live_updates"]
    if live.get("state") == "restarting":
        console.print(
            f"[yellow]live updates interrupted[/]: {escape(live.get('reason', ''))} "
            f"(restarted {live.get('restarts', 0)} time(s))",
            highlight=False,
        )
    for gen, n in s["generators"].items():
        console.print(f"  {escape(gen):<18} {n:>8,}", highlight=False)
    for r in s["roots"]:
        state = "online" if r["online"] else "OFFLINE"
        console.print(
            f"  folder {escape(r['path'])} ({state}, {r['files']:,} files)", highlight=False
        )


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List files that could not be read, and images whose metadata is broken, with reasons."""
    from dreamdepot.catalog.paths import display, from_db

    with open_library() as lib:
        errors = [
            {"path": f"{r['path']}/{display(from_db(r['rel_path']))}", "reason": r["reason"]}
            for r in lib.conn.execute(
                "SELECT ro.path, e.rel_path, e.reason FROM scan_errors e "
                "JOIN roots ro ON ro.id = e.root_id ORDER BY ro.path, e.rel_path"
            )
        ]
        warnings = [
            {
                "id": r["id"],
                "path": (catalog_images.paths_of(lib.conn, r["id"]) or [{}])[0].get("path"),
                "reason": r["metadata_error"],
            }
            for r in lib.conn.execute(
                "SELECT id, metadata_error FROM images WHERE metadata_error IS NOT NULL"
            )
        ]
        pixels = [  # metadata read, but the pixels do not decode (corrupt IDAT, JPEG scan)
            {
                "id": r["id"],
                "path": (catalog_images.paths_of(lib.conn, r["id"]) or [{}])[0].get("path"),
                "reason": r["media_error"],
            }
            for r in lib.conn.execute(
                "SELECT id, media_error FROM images WHERE media_error IS NOT NULL"
            )
        ]
        nodes = json_field(lib.conn, "params", "unresolved")
        unresolved = [  # ComfyUI nodes on the prompt's path whose text is not in the file
            {
                "id": r["id"],
                "path": (catalog_images.paths_of(lib.conn, r["id"]) or [{}])[0].get("path"),
                "nodes": json.loads(r["nodes"]),
            }
            for r in lib.conn.execute(
                f"SELECT id, {nodes} AS nodes FROM images "
                f"WHERE params LIKE '%\"unresolved\"%' AND {nodes} IS NOT NULL"
            )
        ]
        offline = [r.path for r in lib.roots() if not r.online]
    if as_json:
        report = {"unreadable": errors, "metadata": warnings, "pixels": pixels,
                  "unresolved": unresolved, "offline_roots": offline}  # fmt: skip
        sys.stdout.write(json_text(report) + "\n")
        return
    if not errors and not warnings and not pixels and not unresolved and not offline:
        console.print("All files were read. Nothing to report.")
        return
    for e in errors:
        console.print(
            f"[red]unreadable[/] {escape(e['path'])}: {escape(e['reason'])}", highlight=False
        )
    for w in warnings:
        console.print(
            f"[yellow]metadata[/] {escape(str(w['path']))}: {escape(str(w['reason']))}",
            highlight=False,
        )
    for p in pixels:
        console.print(
            f"[red]pixels[/] {escape(str(p['path']))}: {escape(str(p['reason']))}",
            highlight=False,
        )
    for u in unresolved:
        console.print(
            f"[yellow]unresolved[/] {escape(str(u['path']))}: prompt text made at run time by "
            f"{escape(', '.join(u['nodes']))}",
            highlight=False,
        )
    for path in offline:
        console.print(f"[yellow]offline[/] {escape(path)}", highlight=False)


INSPECT_KEYS = (
    "generator",
    "prompt",
    "negative_prompt",
    "seed",
    "steps",
    "sampler",
    "scheduler",
    "cfg_scale",
    "width",
    "height",
    "model",
    "model_hash",
    "loras",
    "params",
    "source",
)


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(help="An image or video file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    graph: Annotated[bool, typer.Option(help="Include the ComfyUI graph.")] = False,
) -> None:
    """Show the generation metadata embedded in one image or video file (no library needed);
    a video or animation also shows its duration (seconds), frame count and frame rate."""
    from dreamdepot.ingest.metadata import read_file

    if not file.is_file():
        fail(f"{file}: no such file")
    try:
        c, g = read_file(file)
    except MetadataError as exc:
        fail(f"{file}: unreadable metadata: {exc}")
    except DreamDepotError as exc:
        fail(f"{file}: {exc}")
    except OSError as exc:
        fail(f"{file}: {exc.strerror or exc}")
    if g is None:
        data: dict[str, Any] = {k: None for k in INSPECT_KEYS}
        data.update(width=c.width, height=c.height, loras=[], params={}, source=[])
    else:
        full = g.to_dict(include_graph=graph)
        data = {k: full[k] for k in INSPECT_KEYS}
        extra = {k: v for k, v in full.items() if k not in INSPECT_KEYS and k != "raw"}
        data["loras"] = [
            {"name": r["name"], "weight": r["weight"], "hash": r["hash"]} for r in full["loras"]
        ]
        data.update({k: v for k, v in extra.items() if v not in (None, [], {})})
        data["raw"] = full["raw"]
        if g.params.get("unresolved"):  # graph nodes whose values are only known at run time
            data["unresolved"] = g.params["unresolved"]
    data["format"] = c.format
    if c.video:  # the file's own size (its infotext may state the render's frame size)
        data["width"], data["height"] = c.width, c.height
    if c.duration is not None:
        data.update(duration=c.duration, frames=c.frames, fps=c.fps)
    if as_json:
        sys.stdout.write(json_text(data, ensure_ascii=False, default=str) + "\n")
        return
    table = Table(show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for k, v in data.items():
        if k == "raw" or v in (None, [], {}):
            continue
        table.add_row(k, escape(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)))
    console.print(table)


@app.command()
def export(
    query: Annotated[str, typer.Argument(help="Query selecting images (all if empty).")] = "",
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
    xmp: Annotated[
        bool, typer.Option("--xmp", help="Write NAME.EXT.xmp sidecars for photo tools instead.")
    ] = False,
    to: Annotated[
        Path | None, typer.Option("--to", help="With --xmp: under this folder, mirrored.")
    ] = None,
    include_auto: Annotated[
        bool, typer.Option(help="With --xmp: automatic tags too (default: yours only).")
    ] = False,
) -> None:
    """Export paths, hashes, parameters, prompts and tags as JSON Lines or CSV, or tags,
    ratings and prompts as XMP sidecars (--xmp; the images themselves are not touched)."""
    from dreamdepot.export import write_csv, write_jsonl

    if xmp:
        from dreamdepot.xmp import export_xmp

        with open_library() as lib:
            try:
                n = export_xmp(
                    lib.conn, query, to.expanduser().resolve() if to else None, include_auto
                )
            except QueryError as exc:
                fail(f"bad query: {exc}", 2)
            except OSError as exc:
                fail(f"cannot write a sidecar: {exc}", 1)
        console.print(
            f"Wrote {n:,} XMP sidecar(s)"
            + (f" under {escape(str(to))}" if to else " beside the images")
        )
        return
    if fmt not in ("jsonl", "csv"):
        fail("--format must be jsonl or csv", 2)
    writer = write_jsonl if fmt == "jsonl" else write_csv
    with open_library() as lib:
        try:
            catalog_images.compile_query(lib.conn, query)
        except QueryError as exc:
            fail(f"bad query: {exc}", 2)
        if output is None:
            if writer is write_csv and sys.stdout.isatty():
                n = write_csv(lib.conn, query, sys.stdout, for_terminal=True)
            else:
                n = writer(lib.conn, query, sys.stdout)
        else:
            with open(output, "w", encoding="utf-8", newline="") as out:
                n = writer(lib.conn, query, out)
    err_console.print(f"exported {n:,} image(s)")


@app.command("import")
def import_sidecars(
    folders: Annotated[
        list[Path] | None, typer.Argument(help="Where to look (default: every registered folder).")
    ] = None,
    xmp: Annotated[
        bool, typer.Option("--xmp", help="Read XMP sidecars (the only kind yet).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Read tags, ratings and favourites from XMP sidecars written by digiKam, Lightroom or
    darktable (or by `export --xmp`) into your tags; newer changes here win and are listed."""
    from dreamdepot.xmp import import_xmp

    if not xmp:
        fail("say what to import: --xmp", 2)
    for folder in folders or []:
        if not folder.is_dir():
            fail(f"{folder}: no such folder", 2)
    with open_library() as lib:
        places = (
            [f.expanduser().resolve() for f in folders]
            if folders
            else [Path(r[0]) for r in lib.conn.execute("SELECT path FROM roots WHERE online = 1")]
        )
        with lib.catalog.transaction() as conn:
            report = import_xmp(conn, places)
    if as_json:
        sys.stdout.write(json_text(report.__dict__) + "\n")
        return
    console.print(
        f"{report.sidecars:,} sidecar(s): {report.images_changed:,} image(s) changed, "
        f"{report.tags_added:,} tag(s) added, {report.ratings_set:,} rating(s) set; "
        f"{len(report.conflicts):,} conflict(s), {len(report.unmatched):,} without an image, "
        f"{len(report.errors):,} unreadable"
    )
    for line in report.conflicts + report.errors:
        console.print(f"  {escape(line)}", highlight=False)


@app.command()
def prune(
    yes: Annotated[bool, typer.Option("--yes", help="Do it without asking.")] = False,
) -> None:
    """Forget missing files, and images left with no file (their tags go with them)."""
    with open_library() as lib:
        conn = lib.conn
        n_files = conn.execute("SELECT count(*) FROM files WHERE state = 'missing'").fetchone()[0]
        if not yes and not typer.confirm(f"Forget {n_files:,} missing file(s) and their images?"):
            raise typer.Exit(1)
        with lib.catalog.transaction():
            conn.execute("DELETE FROM files WHERE state = 'missing'")
            n_images = conn.execute(
                "DELETE FROM images WHERE NOT EXISTS "
                "(SELECT 1 FROM files WHERE files.image_id = images.id)"
            ).rowcount
            conn.execute(
                "DELETE FROM prompts WHERE NOT EXISTS (SELECT 1 FROM images WHERE "
                "images.prompt_id = prompts.id) AND NOT EXISTS (SELECT 1 FROM images WHERE "
                "images.negative_prompt_id = prompts.id)"
            )
    console.print(f"Forgot {n_files:,} missing file(s) and {n_images:,} image(s).")


@app.command()
def thumbnails() -> None:
    """Make missing grid thumbnails, placeholders and perceptual hashes now (``serve`` does
    this in the background; the web UI also makes any missing one on demand)."""
    failed_sql = "SELECT count(*) FROM images WHERE media_error IS NOT NULL"
    with open_library() as lib, _scan_progress() as progress:
        failed_before = lib.conn.execute(failed_sql).fetchone()[0]
        n = lib.make_thumbnails(progress=RichProgress(progress))
        failed = lib.conn.execute(failed_sql).fetchone()[0] - failed_before
    console.print(f"Made thumbnails for {n - failed:,} image(s); {failed:,} failed.")
    if failed:
        console.print("Run [bold]dreamdepot doctor[/] to see why each one failed.")


@app.command()
def demo(
    count: Annotated[int, typer.Option(help="How many demo images.")] = 300,
) -> None:
    """Create demo images (clearly labelled) in the library and index them."""
    from dreamdepot.demo import make_demo_images

    with open_library() as lib:
        folder = make_demo_images(lib.path, count)
        root = lib.add_root(folder)
        print_scan(run_scan(lib, [root]))


@app.command()
def migrate(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="The PostgreSQL catalog, postgresql://user@host/db (default: the library's "
            "database setting).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Copy this library's catalog into PostgreSQL (pgvector not needed yet): every table,
    in one transaction, replacing what the target held (so running it again is safe); then
    both sides are read back and compared, table by table, by row count and SHA-256."""
    from dreamdepot.catalog.postgres import copy_library

    with open_library(embedded=True) as lib:
        url = to or lib.settings.database
        if not url or not url.startswith(("postgresql://", "postgres://")):
            fail(f"--to takes a postgresql:// URL, got {url!r}")
        try:
            reports = copy_library(lib.conn, url)
        except DreamDepotError as exc:
            fail(str(exc))
    same = all(r.same for r in reports)
    if as_json:
        rows = [{**vars(r), "same": r.same} for r in reports]
        sys.stdout.write(json_text({"same": same, "tables": rows}) + "\n")
    else:
        table = Table("table", "rows here", "rows there", "sha-256 here", "sha-256 there", "")
        for r in reports:
            verdict = "same" if r.same else "DIFFERENT"
            table.add_row(r.name, f"{r.source_rows:,}", f"{r.target_rows:,}",
                          r.source_sha256[:16], r.target_sha256[:16], verdict)  # fmt: skip
        console.print(table)
        console.print("Every table arrived unchanged." if same else "Some tables differ!")
    if not same:
        raise typer.Exit(1)
