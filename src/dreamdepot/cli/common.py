"""Shared pieces of the command line: the app and its sub-apps, consoles, common
options, progress bars, opening the library and failing with one line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

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

from dreamdepot import __version__
from dreamdepot.errors import DreamDepotError
from dreamdepot.library import Library

if TYPE_CHECKING:
    from dreamdepot.ingest.pipeline import ScanStats
    from dreamdepot.ingest.roots import Root
from dreamdepot.terminal import escape

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


def _print_version(value: bool) -> None:
    if value:
        console.print(f"dreamdepot {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    library: LibraryOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    _state["library"] = library


def open_library(embedded: bool = False) -> Library:
    try:
        return Library.open(_state["library"], embedded=embedded)
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


BackendOption = Annotated[
    str | None, typer.Option("--backend", help="Back end: a1111, comfyui or diffusers.")
]
BackendUrlOption = Annotated[
    str | None,
    typer.Option("--backend-url", help="A1111 or ComfyUI URL (for diffusers, use --model)."),
]
dev_app = typer.Typer(help="Tools for developers and tryouts.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")


ApiAuthOption = Annotated[
    str | None, typer.Option("--api-auth", help="user:password for the back end's HTTP Basic auth.")
]


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
