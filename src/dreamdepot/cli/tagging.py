"""Tags by hand (tag add/remove) and automatic ones (autotag, tag accept/reject)."""

from __future__ import annotations

from typing import Annotated

import typer

from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog import tags as catalog_tags
from dreamdepot.cli.common import (
    RichProgress,
    _scan_progress,
    app,
    console,
    err_console,
    fail,
    open_library,
    tag_app,
)
from dreamdepot.errors import DreamDepotError, QueryError
from dreamdepot.library import Library
from dreamdepot.terminal import escape


def _matching(lib: Library, query: str) -> list[int]:
    """The ids a query matches, or a clear exit on a bad query."""
    try:
        return catalog_images.matching_ids(lib.conn, query)
    except QueryError as exc:
        fail(f"bad query: {exc}", 2)


def _tag_change(tag: str, query: str, remove: bool) -> None:
    with open_library() as lib:
        ids = _matching(lib, query)
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


@app.command()
def rate(
    stars: Annotated[int, typer.Argument(help="0 (none) to 5.", min=0, max=5)],
    query: Annotated[str, typer.Argument(help="Query selecting the images (all if empty).")] = "",
) -> None:
    """Rate every image QUERY matches (0 clears the rating)."""
    with open_library() as lib:
        ids = _matching(lib, query)
        with lib.catalog.transaction() as conn:
            conn.executemany(
                "UPDATE images SET rating = ? WHERE id = ?", [(stars or None, i) for i in ids]
            )
    console.print(f"Rated {len(ids):,} image(s) {stars}", highlight=False)


@app.command()
def duplicates(
    exact: Annotated[
        bool, typer.Option("--exact", help="Exact copies instead of look-alikes.")
    ] = False,
    max_distance: Annotated[
        int, typer.Option(help="Look-alike: hash bits that may differ (default 6).", min=0, max=16)
    ] = 6,
    mark: Annotated[
        bool, typer.Option("--mark", help="Tag all but the suggested keeper marked-for-deletion.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per group.")] = False,
) -> None:
    """Groups of exact copies or look-alike images with a keep-best suggestion (highest
    rated, favourite, most pixels). Nothing is deleted; --mark only tags."""
    import sys

    from dreamdepot.catalog.duplicates import MARK, duplicate_groups
    from dreamdepot.terminal import json_text

    with open_library() as lib:
        groups = duplicate_groups(lib.conn, "exact" if exact else "near", max_distance)
        marked = 0
        if mark and not exact:
            with lib.catalog.transaction() as conn:
                for g in groups:
                    others = [i["id"] for i in g["images"] if i["id"] != g["keep"]]
                    marked += catalog_tags.add_tag(conn, MARK, others)
    for g in groups:
        if as_json:
            sys.stdout.write(json_text(g, ensure_ascii=False) + "\n")
        else:
            ids = ", ".join(
                f"#{i['id']}" + (" (keep)" if i["id"] == g["keep"] else "") for i in g["images"]
            )
            console.print(f"{g['kind']}: {ids}", highlight=False)
    if not as_json:
        console.print(
            f"{len(groups):,} group(s)" + (f"; marked {marked:,} image(s) {MARK}" if mark else "")
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
        ids = _matching(lib, query)
        with lib.catalog.transaction() as conn:
            n = review(conn, tag, ids, action)
    verb = "Accepted" if action == "accept" else "Rejected"
    console.print(f"{verb} auto tag '{escape(tag)}' on {n:,} image(s)", highlight=False)


@tag_app.command("list")
def tag_list(
    query: Annotated[str, typer.Argument(help="Count over the images this query matches.")] = "",
    limit: Annotated[int, typer.Option(help="How many tags, most used first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per tag.")] = False,
) -> None:
    """The tags the sidebar shows: most used first, with their image counts."""
    import sys

    from dreamdepot.terminal import json_text

    with open_library() as lib:
        try:
            found = catalog_tags.tag_counts(
                lib.conn, catalog_images.compile_query(lib.conn, query), max(1, limit)
            )
        except QueryError as exc:
            fail(str(exc), 2)
    for t in found["tags"]:
        if as_json:
            sys.stdout.write(json_text(t, ensure_ascii=False) + "\n")
        else:
            console.print(f"{t['count']:>8,}  {escape(t['name'])}", highlight=False)


@tag_app.command("remove")
def tag_remove(
    tag: Annotated[str, typer.Argument(help="Tag name.")],
    query: Annotated[str, typer.Argument(help="Query selecting the images (all if empty).")] = "",
) -> None:
    """Remove TAG from every image QUERY matches."""
    _tag_change(tag, query, remove=True)


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
