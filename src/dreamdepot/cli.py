"""The ``dreamdepot`` command line. Each command is a few lines calling the library."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from dreamdepot import __version__
from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog import tags as catalog_tags
from dreamdepot.errors import DreamDepotError, MetadataError, QueryError
from dreamdepot.ingest.pipeline import Root, ScanStats
from dreamdepot.library import Library
from dreamdepot.terminal import escape, json_text

app = typer.Typer(
    name="dreamdepot",
    help="Dream Depot: a local-first library for AI-generated images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
tag_app = typer.Typer(
    help="Add or remove tags on the images a query matches.", no_args_is_help=True
)
app.add_typer(tag_app, name="tag")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
_state: dict[str, Any] = {"library": None}

LibraryOption = Annotated[
    Path | None,
    typer.Option(
        "--library",
        "-L",
        help="Library folder (default: $DREAMDEPOT_LIBRARY or the XDG data dir).",
        envvar="DREAMDEPOT_LIBRARY",
    ),
]


@app.callback()
def _main(
    library: LibraryOption = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        console.print(f"dreamdepot {__version__}")
        raise typer.Exit()
    _state["library"] = library


def open_library() -> Library:
    try:
        return Library.open(_state["library"])
    except DreamDepotError as exc:
        fail(str(exc))


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


class RichProgress:
    """Adapts the pipeline's Progress protocol to a rich progress bar (files/s, ETA)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def begin(self, description: str, total: int) -> None:
        self.task = self.progress.add_task(description, total=total)

    def advance(self, n: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)


class _RateProgress(Progress):
    def get_renderables(self):  # type: ignore[no-untyped-def]
        for task in self.tasks:
            speed = task.speed or 0
            task.fields["rate"] = f"{speed:,.0f} files/s"
        yield from super().get_renderables()


def _scan_progress() -> _RateProgress:
    return _RateProgress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )


def run_scan(
    lib: Library,
    roots: list[Root] | None = None,
    retry_errors: bool = False,
    full_hash: bool = True,
) -> ScanStats:
    """Index (first pass: headers and sampled hashes), then complete full content hashes."""
    with _scan_progress() as progress:
        indexer = lib.indexer(progress=RichProgress(progress))
        stats = indexer.scan(roots, retry_errors=retry_errors)
        if full_hash:
            indexer.hash_pending()
        return stats


def print_scan(stats: ScanStats) -> None:
    console.print(
        f"Scanned {stats.roots} folder(s): {stats.seen:,} files seen, {stats.probed:,} read "
        f"({stats.files_per_second:,.0f} files/s), {stats.new_images:,} new images, "
        f"{stats.updated:,} updated, {stats.missing:,} missing, {stats.moved:,} moved, "
        f"{stats.errors:,} unreadable in {stats.seconds:.2f} s",
        highlight=False,
    )
    for path in stats.offline_roots:
        console.print(
            f"[yellow]offline:[/] {escape(path)} is unreachable; its files are kept as offline"
        )
    if stats.errors:
        console.print("Run [bold]dreamdepot doctor[/] to see the files that could not be read.")


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
    if as_json:
        sys.stdout.write(json_text(s, ensure_ascii=False, indent=2) + "\n")
        return
    console.print(f"Library {escape(s['library'])}", highlight=False)
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
    from dreamdepot.ingest.paths import display, from_db

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
        offline = [r.path for r in lib.roots() if not r.online]
    if as_json:
        report = {"unreadable": errors, "metadata": warnings, "pixels": pixels,
                  "offline_roots": offline}  # fmt: skip
        sys.stdout.write(json_text(report) + "\n")
        return
    if not errors and not warnings and not pixels and not offline:
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
    file: Annotated[Path, typer.Argument(help="An image file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    graph: Annotated[bool, typer.Option(help="Include the ComfyUI graph.")] = False,
) -> None:
    """Show the generation metadata embedded in one file (no library needed)."""
    from dreamdepot.ingest.metadata import read_generation

    if not file.is_file():
        fail(f"{file}: no such file")
    try:
        g = read_generation(file)
    except MetadataError as exc:
        fail(f"{file}: unreadable metadata: {exc}")
    except DreamDepotError as exc:
        fail(f"{file}: {exc}")
    except OSError as exc:
        fail(f"{file}: {exc.strerror or exc}")
    if g is None:
        from PIL import Image

        with Image.open(file) as im:
            w, h = im.size
        data: dict[str, Any] = {k: None for k in INSPECT_KEYS}
        data.update(width=w, height=h, loras=[], params={}, source=[])
    else:
        full = g.to_dict(include_graph=graph)
        data = {k: full[k] for k in INSPECT_KEYS}
        extra = {k: v for k, v in full.items() if k not in INSPECT_KEYS and k != "raw"}
        data["loras"] = [
            {"name": r["name"], "weight": r["weight"], "hash": r["hash"]} for r in full["loras"]
        ]
        data.update({k: v for k, v in extra.items() if v not in (None, [], {})})
        data["raw"] = full["raw"]
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


def _tag_change(tag: str, query: str, remove: bool) -> None:
    with open_library() as lib:
        try:
            ids = catalog_images.matching_ids(lib.conn, query)
        except QueryError as exc:
            fail(f"bad query: {exc}", 2)
        try:
            with lib.catalog.transaction() as conn:
                if remove:
                    n = catalog_tags.remove_tag(conn, tag, ids)
                else:
                    n = catalog_tags.add_tag(conn, tag, ids)
        except DreamDepotError as exc:
            fail(str(exc), 2)
    verb = "Removed" if remove else "Tagged"
    console.print(
        f"{verb} '{escape(tag)}' on {n:,} of {len(ids):,} matching image(s)", highlight=False
    )


@tag_app.command("add")
def tag_add(
    tag: Annotated[str, typer.Argument(help="Tag name.")],
    query: Annotated[str, typer.Argument(help="Query selecting the images (all if empty).")] = "",
) -> None:
    """Add TAG to every image QUERY matches."""
    _tag_change(tag, query, remove=False)


@tag_app.command("accept")
def tag_accept(
    tag: Annotated[str, typer.Argument(help="An auto tag.")],
    query: Annotated[str, typer.Argument(help="Query selecting the images (all if empty).")] = "",
) -> None:
    """Make an auto tag the user's own on the images QUERY matches."""
    _review(tag, query, "accept")


@tag_app.command("reject")
def tag_reject(
    tag: Annotated[str, typer.Argument(help="An auto tag.")],
    query: Annotated[str, typer.Argument(help="Query selecting the images (all if empty).")] = "",
) -> None:
    """Remove an auto tag from the images QUERY matches; re-runs never propose it again."""
    _review(tag, query, "reject")


def _review(tag: str, query: str, action: str) -> None:
    from dreamdepot.tagging.stage import review

    with open_library() as lib:
        try:
            ids = catalog_images.matching_ids(lib.conn, query)
        except QueryError as exc:
            fail(f"bad query: {exc}", 2)
        with lib.catalog.transaction() as conn:
            n = review(conn, tag, ids, action)
    verb = "Accepted" if action == "accept" else "Rejected"
    console.print(f"{verb} auto tag '{escape(tag)}' on {n:,} image(s)", highlight=False)


@tag_app.command("remove")
def tag_remove(
    tag: Annotated[str, typer.Argument(help="Tag name.")],
    query: Annotated[str, typer.Argument(help="Query selecting the images (all if empty).")] = "",
) -> None:
    """Remove TAG from every image QUERY matches."""
    _tag_change(tag, query, remove=True)


@app.command()
def export(
    query: Annotated[str, typer.Argument(help="Query selecting images (all if empty).")] = "",
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
) -> None:
    """Export paths, hashes, parameters, prompts and tags as JSON Lines or CSV."""
    from dreamdepot.export import write_csv, write_jsonl

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
def autotag(
    query: Annotated[str, typer.Argument(help="Only images this query matches.")] = "",
    tagger: Annotated[list[str] | None, typer.Option(help="Run only these taggers.")] = None,
    force: Annotated[bool, typer.Option(help="Run again even where up to date.")] = False,
) -> None:
    """Run the automatic taggers (enabled in dreamdepot.toml) where they have not run yet, or
    ran an older version; rejected tags never come back."""
    from dreamdepot.tagging.stage import autotag as run_autotag
    from dreamdepot.tagging.stage import build_taggers

    with open_library() as lib:
        taggers, problems = build_taggers(lib.settings, lib.path, tagger)
        for problem in problems:
            err_console.print(f"[yellow]skipped[/] {escape(problem)}", highlight=False)
        if not taggers:
            fail("no tagger can run: see the messages above", 2)
        try:
            with _scan_progress() as progress:
                result = run_autotag(
                    lib.conn, taggers, query, force, lib.settings.workers, RichProgress(progress)
                )
        except QueryError as exc:
            fail(f"bad query: {exc}", 2)
    per = ", ".join(f"{k} {v:,}" for k, v in sorted(result.per_tagger.items()))
    console.print(
        f"Tagged {result.images:,} image(s) in {result.seconds:.1f} s: "
        f"{result.tags_added:,} tag(s) added ({per or 'nothing to do'}); "
        f"{result.errors:,} error(s)",
        highlight=False,
    )


BackendOption = Annotated[
    str | None, typer.Option("--backend", help="Back end: a1111, comfyui or diffusers.")
]
BackendUrlOption = Annotated[
    str | None,
    typer.Option("--backend-url", help="A1111 or ComfyUI URL (for diffusers, use --model)."),
]
dev_app = typer.Typer(help="Tools for developers and tryouts.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")


@dev_app.command("tiny-model")
def tiny_model(folder: Annotated[Path, typer.Argument(help="Where to write it.")]) -> None:
    """Write a tiny randomly initialised Stable Diffusion pipeline (offline). Its images are
    noise: it is for trying the diffusers back end without a real checkpoint."""
    try:
        from dreamdepot.generate.diffusers_local import write_tiny_model

        write_tiny_model(folder)
    except ImportError as exc:
        fail(
            f"needs the 'diffusers' extra: pip install -c constraints.txt "
            f"'dreamdepot[diffusers]' ({exc})"
        )
    console.print(
        f"Wrote a tiny random pipeline to {escape(str(folder))} (its images are "
        f"noise). Try: dreamdepot generate 'a cat' --backend diffusers "
        f"--backend-url {escape(str(folder))} --size 64x64 --steps 2 --no-cache"
    )


ApiAuthOption = Annotated[
    str | None, typer.Option("--api-auth", help="user:password for the back end's HTTP Basic auth.")
]


def _generate_now(
    lib: Library,
    req: Any,
    backend: str | None,
    url: str | None,
    auth: str | None,
    model: str | None = None,
) -> dict[str, Any]:
    """Queue a request and run it in this process with a progress bar; the finished job."""
    from dreamdepot.generate.jobs import JobQueue, job_row
    from dreamdepot.generate.service import NoBackend, make_backend

    try:
        engine = make_backend(lib.settings, backend, url, auth, model=model)
    except NoBackend as exc:
        fail(str(exc), 2)
    queue = JobQueue(lib.path, engine, lib.settings.max_batch)
    try:
        try:
            job_id = queue.submit(req)
        except ValueError as exc:
            fail(f"invalid request: {exc}", 2)
        with _scan_progress() as progress:
            task = progress.add_task(f"Generating (job {job_id})", total=100)

            def show(kind: str, data: dict[str, Any]) -> None:
                if data.get("progress") is not None:
                    progress.update(task, completed=float(data["progress"]) * 100)

            queue.notify = show
            job = queue.run(job_id)
            while job.get("status") in ("queued", "running"):  # a server claimed it first
                time.sleep(0.2)
                job = job_row(queue.conn, job_id) or {}
                progress.update(task, completed=float(job.get("progress") or 0) * 100)
    finally:
        queue.close()
    job["paths"] = [
        f["path"] for i in job["image_ids"] for f in catalog_images.paths_of(lib.conn, i)
    ]
    return job


def _print_job(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(
            json_text(
                {
                    "job": job,
                    "images": [
                        {"id": i, "path": p}
                        for i, p in zip(job["image_ids"], job["paths"], strict=False)
                    ],
                },
                default=str,
            )
            + "\n"
        )
        if job["status"] != "done":
            raise typer.Exit(1)
        return
    if job["status"] != "done":
        fail(f"job {job['id']} {job['status']}: {job.get('error')}")
    console.print(f"Job {job['id']} done in {job['backend_seconds']:.1f} s:")
    for path in job["paths"]:
        console.print(f"  {escape(path)}", highlight=False)


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt.")],
    n: Annotated[int, typer.Option("--n", help="How many images.")] = 1,
    steps: Annotated[int, typer.Option(help="Sampling steps.")] = 20,
    cfg: Annotated[float, typer.Option(help="CFG scale.")] = 7.0,
    seed: Annotated[int, typer.Option(help="Seed (-1: random).")] = -1,
    size: Annotated[str, typer.Option(help="WxH.")] = "512x512",
    model: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint: an A1111 checkpoint title, a ComfyUI ckpt_name, or for diffusers "
            "a folder, a .safetensors file or a name under models_dir (default: the back end's)."
        ),
    ] = None,
    negative: Annotated[str, typer.Option(help="Negative prompt.")] = "",
    sampler: Annotated[str | None, typer.Option(help="Sampler name.")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Scheduler name (e.g. Karras).")] = None,
    backend: BackendOption = None,
    backend_url: BackendUrlOption = None,
    api_auth: ApiAuthOption = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not answer from the library.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job and image paths.")] = False,
) -> None:
    """Generate images through the configured back end (the dream cache answers first)."""
    from dreamdepot.generate.base import GenerateRequest
    from dreamdepot.ingest.metadata.model import parse_size

    width, height = parse_size(size)
    if not width or not height:
        fail("--size must look like 512x768", 2)
    with open_library() as lib:
        if not no_cache:
            from dreamdepot.semantic.cache import DreamCache, DreamRequest
            from dreamdepot.semantic.embedders import EmbedderUnavailable
            from dreamdepot.semantic.service import embed_pending

            try:
                embedder = _embedder_or_fail(lib)
                embed_pending(lib.conn, embedder)
                hit = DreamCache(lib.conn, embedder).lookup(
                    DreamRequest(prompt, negative or None, model, width, height, limit=n)
                )
            except EmbedderUnavailable:
                hit = None
            if hit is not None and hit.hit:
                if as_json:
                    sys.stdout.write(
                        json_text(
                            {
                                "cache": hit.to_dict(),
                                "job": None,
                                "images": [
                                    {"id": i["id"], "path": i["paths"][0]} for i in hit.images
                                ],
                            },
                            default=str,
                        )
                        + "\n"
                    )
                else:
                    console.print(
                        f"[green]dream cache hit[/] ({hit.similarity:.3f}): "
                        f"{escape(hit.matched_prompt or '')}"
                    )
                    for img in hit.images:
                        console.print(f"  {escape(img['paths'][0])}", highlight=False)
                return
        req = GenerateRequest(
            prompt=prompt,
            negative_prompt=negative,
            n=n,
            steps=steps,
            cfg_scale=cfg,
            seed=seed,
            width=width,
            height=height,
            model=model,
            sampler=sampler,
            scheduler=scheduler,
        )
        _print_job(_generate_now(lib, req, backend, backend_url, api_auth, model), as_json)


@app.command()
def upscale(
    image: Annotated[str, typer.Argument(help="An image id or a file in the library.")],
    scale: Annotated[float, typer.Option(help="Upscale factor.")] = 2.0,
    upscaler: Annotated[str | None, typer.Option(help="Upscaler name.")] = None,
    backend: BackendOption = None,
    backend_url: BackendUrlOption = None,
    api_auth: ApiAuthOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Upscale an image; the result is linked to it (lineage)."""
    _from_image(
        image,
        "upscale",
        {"scale": scale, "upscaler": upscaler},
        (backend, backend_url, api_auth),
        as_json,
    )


@app.command()
def variations(
    image: Annotated[str, typer.Argument(help="An image id or a file in the library.")],
    strength: Annotated[float, typer.Option(help="Denoising strength (0-1).")] = 0.5,
    n: Annotated[int, typer.Option("--n", help="How many.")] = 2,
    backend: BackendOption = None,
    backend_url: BackendUrlOption = None,
    api_auth: ApiAuthOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Variations of an image (img2img with its own prompt and parameters)."""
    _from_image(
        image, "img2img", {"denoise": strength, "n": n}, (backend, backend_url, api_auth), as_json
    )


def _from_image(
    image: str,
    kind: str,
    overrides: dict[str, Any],
    backend: tuple[str | None, str | None, str | None],
    as_json: bool,
) -> None:
    from dreamdepot.generate.base import request_for_image

    with open_library() as lib:
        detail = catalog_images.detail(lib.conn, _image_ref(lib, image)) or {}
        req = request_for_image(detail, kind, **overrides)
        _print_job(_generate_now(lib, req, *backend), as_json)


def _image_ref(lib: Library, ref: str) -> int:
    if (
        ref.isdigit()
        and lib.conn.execute("SELECT 1 FROM images WHERE id = ?", (int(ref),)).fetchone()
    ):
        return int(ref)
    path = Path(ref).expanduser()
    if path.is_file():
        from dreamdepot.ingest.metadata.containers import read_container
        from dreamdepot.media.identity import sampled_hash

        with open(path, "rb") as f:
            size = path.stat().st_size
            read_container(f, size)
            h = sampled_hash(f, size)
        row = lib.conn.execute("SELECT id FROM images WHERE content_hash = ?", (h,)).fetchone()
        if row:
            return int(row[0])
        fail(f"{ref} is not in the library: add its folder first")
    fail(f"{ref}: no such image id or file")


@app.command()
def jobs(
    job_id: Annotated[int | None, typer.Argument(help="One job to show.")] = None,
    run: Annotated[
        bool, typer.Option("--run", help="Run the queued jobs now, in this process.")
    ] = False,
    backend: BackendOption = None,
    backend_url: BackendUrlOption = None,
    api_auth: ApiAuthOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent generation jobs and their state. Jobs left running by a process that has
    ended are queued again first (a running job of a live process is left alone)."""
    from dreamdepot.generate.jobs import JobQueue, job_row, recover_jobs

    with open_library() as lib:
        recovered = recover_jobs(lib.catalog)
        if recovered and not as_json:
            console.print(f"{recovered} job(s) of ended processes queued again")
        if run:
            from dreamdepot.generate.service import NoBackend, make_backend

            try:
                engine = make_backend(lib.settings, backend, backend_url, api_auth)
            except NoBackend as exc:
                fail(str(exc), 2)
            queue = JobQueue(lib.path, engine, lib.settings.max_batch)
            try:
                queue.run_pending()
            finally:
                queue.close()
        if job_id is not None:
            one = job_row(lib.conn, job_id)
            if one is None:
                fail(f"no job {job_id}", 2)
            if as_json:
                sys.stdout.write(json_text(one, default=str) + "\n")
                return
            rows = [one]
        else:
            ids = [r[0] for r in lib.conn.execute("SELECT id FROM jobs ORDER BY id DESC LIMIT 50")]
            rows = [j for j in (job_row(lib.conn, i) for i in ids) if j is not None]
    if as_json:
        sys.stdout.write(json_text(rows, default=str) + "\n")
        return
    for j in rows:
        console.print(
            f"#{j['id']} {j['kind']} {j['status']} {j['progress']:.0%} "
            f"{escape(j['request'].get('prompt', '')[:60])} {escape(j['error'] or '')}",
            highlight=False,
        )


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


cache_app = typer.Typer(help="The dream cache: statistics.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _embedder_or_fail(lib: Library) -> Any:
    from dreamdepot.semantic.embedders import EmbedderUnavailable, embedder_for_library

    try:
        embedder = embedder_for_library(lib.path)
        embedder.embed_texts(["warm up"])
        return embedder
    except EmbedderUnavailable as exc:
        fail(str(exc), 2)


@app.command()
def embed() -> None:
    """Embed every prompt that has no vector yet (``serve`` does this in the background)."""
    from dreamdepot.semantic.service import embed_images_pending, embed_pending

    with open_library() as lib:
        embedder = _embedder_or_fail(lib)
        with _scan_progress() as progress:
            n = embed_pending(lib.conn, embedder, progress=RichProgress(progress))
            m = embed_images_pending(lib.conn, embedder, progress=RichProgress(progress))
    images = f" and {m:,} image(s)" if hasattr(embedder, "embed_images") else ""
    console.print(f"Embedded {n:,} prompt(s){images} with {embedder.model_id}.")


@app.command()
def dream(
    prompt: Annotated[str, typer.Argument(help="What you want to see.")],
    negative: Annotated[str | None, typer.Option(help="Negative prompt.")] = None,
    model: Annotated[str | None, typer.Option(help="Hold the model fixed.")] = None,
    size: Annotated[
        str | None, typer.Option(help="WxH; matches the aspect unless --exact-size.")
    ] = None,
    exact_size: Annotated[bool, typer.Option(help="Require the exact size.")] = False,
    hold: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE to hold fixed, e.g. sampler=Euler a")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Cosine threshold (default 0.80).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Skip the cache.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Answer a prompt from the library when a past generation asked for the same picture;
    otherwise generate it (needs a configured back end)."""
    from dreamdepot.ingest.metadata.model import parse_size, to_float, to_int
    from dreamdepot.semantic.cache import DEFAULT_THRESHOLD, DreamCache, DreamRequest
    from dreamdepot.semantic.service import embed_pending

    width, height = parse_size(size) if size else (None, None)
    if size and not width:
        fail("--size must look like 1024x768", 2)
    held: dict[str, Any] = {}
    for item in hold or []:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--hold {item!r}: use KEY=VALUE", 2)
        held[key.strip()] = (
            to_int(value)
            if to_int(value) is not None
            else (to_float(value) if to_float(value) is not None else value.strip())
        )
    with open_library() as lib:
        result: dict[str, Any]
        if no_cache:
            lib.conn.execute(
                "INSERT INTO cache_events(at, prompt, decision, reason) "
                "VALUES (strftime('%s','now'), ?, 'bypass', '--no-cache')",
                (prompt,),
            )
            result = {"hit": False, "reason": "cache bypassed (--no-cache)", "images": []}
        else:
            embedder = _embedder_or_fail(lib)
            embed_pending(lib.conn, embedder)
            req = DreamRequest(
                prompt,
                negative,
                model,
                width,
                height,
                "exact" if exact_size else "aspect",
                held,
                threshold if threshold is not None else DEFAULT_THRESHOLD,
            )
            result = DreamCache(lib.conn, embedder).lookup(req).to_dict()
        if not result["hit"]:
            result["generated"] = None
            result["backend"] = lib.settings.backend
            if lib.settings.backend and not no_cache:
                from dreamdepot.generate.base import GenerateRequest

                req_gen = GenerateRequest(
                    "txt2img",
                    prompt,
                    negative or "",
                    1,
                    width=width or 512,
                    height=height or 512,
                    model=model,
                )
                job = _generate_now(lib, req_gen, None, None, None)
                result["generated"] = job
                result["images"] = [
                    {"id": i, "paths": [p]}
                    for i, p in zip(job["image_ids"], job["paths"], strict=False)
                ]
                result["error"] = None if job["status"] == "done" else job.get("error")
            else:
                result["error"] = (
                    "no generation back end is configured, so a miss cannot "
                    "be generated: set backend in dreamdepot.toml"
                )
    if as_json:
        sys.stdout.write(json_text(result, ensure_ascii=False, default=str) + "\n")
        return
    if result["hit"]:
        console.print(
            f"[green]hit[/] (similarity {result['similarity']:.3f}) — "
            f"matched prompt: {escape(result['matched_prompt'])}",
            highlight=False,
        )
        for img in result["images"]:
            console.print(
                f"  #{img['id']}  {img['paths'][0] if img['paths'] else ''}", highlight=False
            )
        console.print(f"about {result['seconds_saved']:.0f} GPU-seconds saved")
    else:
        console.print(f"[yellow]miss[/]: {escape(result['reason'])}", highlight=False)
        if result.get("generated"):
            for img in result["images"]:
                console.print(
                    f"  generated #{img['id']}  {escape(img['paths'][0])}", highlight=False
                )
        if result.get("error"):
            console.print(escape(result["error"]))


@cache_app.command("stats")
def cache_stats_command(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Hit rate and GPU-seconds saved by the dream cache."""
    from dreamdepot.semantic.cache import cache_stats

    with open_library() as lib:
        s = cache_stats(lib.conn)
    if as_json:
        sys.stdout.write(json_text(s) + "\n")
        return
    console.print(
        f"{s['lookups']:,} lookups: {s['hits']:,} hits, {s['misses']:,} misses, "
        f"{s['bypassed']:,} bypassed; hit rate {s['hit_rate']:.0%}; "
        f"{s['gpu_seconds_saved']:,.0f} GPU-seconds saved"
    )
    for r in s["top_miss_reasons"]:
        console.print(f"  miss x{r['count']}: {escape(r['reason'])}", highlight=False)


@app.command()
def prefill(
    file: Annotated[Path, typer.Argument(help=".txt, .csv, .jsonl or .parquet of prompts")],
    column: Annotated[str | None, typer.Option(help="Column or key holding prompts.")] = None,
    min_chars: Annotated[int, typer.Option(help="Skip shorter prompts.")] = 30,
    generate: Annotated[bool, typer.Option(help="Queue a generation for each.")] = False,
    no_embed: Annotated[bool, typer.Option("--no-embed", help="Do not embed now.")] = False,
) -> None:
    """Load prompts from a data set for suggestions and lookups (de-duplicated)."""
    from dreamdepot.semantic.prefill import prefill as do_prefill
    from dreamdepot.semantic.prefill import read_prompts
    from dreamdepot.semantic.service import embed_pending

    if not file.is_file():
        fail(f"{file}: no such file", 2)
    if generate:
        fail("--generate needs a generation back end, and none is configured yet", 2)
    with open_library() as lib:
        try:
            counts = do_prefill(lib.conn, read_prompts(file, column), min_chars)
        except DreamDepotError as exc:
            fail(str(exc), 2)
        console.print(
            f"Read {counts['read']:,} prompt(s); {counts['kept']:,} kept (>= "
            f"{min_chars} characters, de-duplicated); {counts['added']:,} new."
        )
        if not no_embed and counts["added"]:
            embedder = _embedder_or_fail(lib)
            with _scan_progress() as progress:
                n = embed_pending(lib.conn, embedder, progress=RichProgress(progress))
            console.print(f"Embedded {n:,} prompt(s).")


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
        )
    except DreamDepotError as exc:
        fail(str(exc), 2)


def main() -> None:
    try:
        app()
    except DreamDepotError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted; the catalog is consistent and the next scan resumes")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
