"""The semantic layer: embed, dream (the dream cache), cache stats, prefill."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from dreamdepot.cli.common import (
    RichProgress,
    _embedder_or_fail,
    _scan_progress,
    app,
    cache_app,
    console,
    fail,
    open_library,
)
from dreamdepot.cli.generation import _generate_now
from dreamdepot.errors import DreamDepotError
from dreamdepot.terminal import escape, json_text


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
        list[str] | None,
        typer.Option(help="KEY=VALUE to hold fixed, e.g. sampler=Euler a (also on a miss)"),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Cosine threshold (default 0.80).")
    ] = None,
    scope: Annotated[
        str | None, typer.Option(help="Only images this query matches may answer.")
    ] = None,
    generate_anyway: Annotated[
        bool,
        typer.Option(
            "--generate-anyway", "--no-cache", help="Skip the lookup and generate (logged)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Answer a prompt from the library when a past generation asked for the same picture;
    otherwise generate it with what you held fixed (needs a configured back end)."""
    from dreamdepot.catalog.query import QueryError
    from dreamdepot.ingest.metadata.model import parse_size
    from dreamdepot.semantic.cache import DEFAULT_THRESHOLD, DreamRequest
    from dreamdepot.semantic.dream import HoldError, parse_hold
    from dreamdepot.semantic.dream import dream as decide
    from dreamdepot.semantic.service import embed_pending

    width, height = parse_size(size) if size else (None, None)
    if size and not width:
        fail("--size must look like 1024x768", 2)
    try:
        held = parse_hold(hold or [])
    except HoldError as exc:
        fail(f"--{exc}", 2)
    with open_library() as lib:
        req = DreamRequest(
            prompt,
            negative,
            model,
            width,
            height,
            "exact" if exact_size else "aspect",
            held,
            threshold if threshold is not None else DEFAULT_THRESHOLD,
            scope=scope,
        )
        embedder = None
        if not generate_anyway:  # generating anyway needs no prompt vectors
            embedder = _embedder_or_fail(lib)
            embed_pending(lib.conn, embedder)
        try:
            outcome = decide(
                lib.conn, embedder, req, backend=lib.settings.backend, force=generate_anyway
            )
        except QueryError as exc:
            fail(f"--scope: {exc}", 2)
        result = outcome.to_dict()
        result["generated"] = None
        if outcome.generate is not None:
            job = _generate_now(lib, outcome.generate, None, None, None, model)
            result["generated"] = job
            result["images"] = [
                {"id": i, "paths": [p]}
                for i, p in zip(job["image_ids"], job["paths"], strict=False)
            ]
            result["error"] = None if job["status"] == "done" else job.get("error")
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
        console.print("(not the picture you meant? run again with --generate-anyway)")
    else:
        console.print(f"[yellow]miss[/]: {escape(result['reason'])}", highlight=False)
        if result.get("matched_prompt"):
            console.print(
                f"  nearest: {escape(result['matched_prompt'])} "
                f"(similarity {result['similarity']:.3f})",
                highlight=False,
            )
        if result.get("generated"):
            for img in result["images"]:
                console.print(
                    f"  generated #{img['id']}  {escape(img['paths'][0])}", highlight=False
                )
        if result["held_not_applied"]:
            console.print(
                "  held but set by the back end, not the request: "
                + ", ".join(result["held_not_applied"])
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
