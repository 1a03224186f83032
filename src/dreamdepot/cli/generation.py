"""Generation: generate, variations, upscale, jobs, and the tiny test pipeline."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from dreamdepot.catalog import images as catalog_images
from dreamdepot.cli.common import (
    ApiAuthOption,
    BackendOption,
    BackendUrlOption,
    _embedder_or_fail,
    _scan_progress,
    app,
    console,
    dev_app,
    err_console,
    fail,
    open_library,
)
from dreamdepot.library import Library
from dreamdepot.terminal import escape, json_text


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


def _generate_now(
    lib: Library,
    req: Any,
    backend: str | None,
    url: str | None,
    auth: str | None,
    model: str | None = None,
    wait: bool = True,
    background: bool = False,
) -> dict[str, Any]:
    """Queue a request and run it in this process with a progress bar (or, with
    ``job_runner = "workers"``, wait while a worker runs it); the finished job. Without
    ``wait``, the queued job (a worker, a server or ``dreamdepot jobs --run`` runs it)."""
    from dreamdepot.generate.base import Backend
    from dreamdepot.generate.dispatch import Workers
    from dreamdepot.generate.jobs import JobQueue, job_row
    from dreamdepot.generate.service import NoBackend, make_backend

    remote = lib.settings.job_runner == "workers" and not backend
    engine: Backend
    try:
        engine = Workers() if remote else make_backend(lib.settings, backend, url, auth, model)
    except NoBackend as exc:
        fail(str(exc), 2)
    queue = JobQueue(lib.path, engine, lib.settings.max_batch, catalog_where=lib.catalog.where)
    try:
        try:
            job_id = queue.submit(req, background=background)
        except ValueError as exc:
            fail(f"invalid request: {exc}", 2)
        if not wait:
            return job_row(queue.conn, job_id) or {}
        with _scan_progress() as progress:
            task = progress.add_task(f"Generating (job {job_id})", total=100)

            def show(kind: str, data: dict[str, Any]) -> None:
                if data.get("progress") is not None:
                    progress.update(task, completed=float(data["progress"]) * 100)

            queue.notify = show
            job = (job_row(queue.conn, job_id) or {}) if remote else queue.run(job_id)
            while job.get("status") in ("queued", "running"):  # a server claimed it first
                time.sleep(0.2)
                job = job_row(queue.conn, job_id) or {}
                progress.update(task, completed=float(job.get("progress") or 0) * 100)
    finally:
        queue.close()
    if job.get("status") == "queued":
        return job
    job["paths"] = [
        f["path"] for i in job["image_ids"] for f in catalog_images.paths_of(lib.conn, i)
    ]
    return job


def _print_job(job: dict[str, Any], as_json: bool) -> None:
    if job.get("status") == "queued":  # --no-wait
        if as_json:
            sys.stdout.write(json_text(job, default=str) + "\n")
        else:
            console.print(f"Job {job['id']} queued (follow it: dreamdepot jobs {job['id']})")
        return
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
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Queue the job, print it and return.")
    ] = False,
    background: Annotated[
        bool, typer.Option("--background", help="Queue behind interactive requests.")
    ] = False,
) -> None:
    """Generate images through the configured back end (the dream cache answers first)."""
    from dreamdepot.generate.base import GenerateRequest
    from dreamdepot.ingest.metadata.model import parse_size
    from dreamdepot.semantic.cache import Decision

    width, height = parse_size(size)
    if not width or not height:
        fail("--size must look like 512x768", 2)
    with open_library() as lib:
        if not no_cache:
            from dreamdepot.semantic.cache import DreamRequest
            from dreamdepot.semantic.dream import dream as decide
            from dreamdepot.semantic.embedders import EmbedderUnavailable
            from dreamdepot.semantic.service import embed_pending

            held: dict[str, Any] = {
                k: v for k, v in (("sampler", sampler), ("scheduler", scheduler)) if v
            }
            if seed != -1:
                held["seed"] = seed
            try:
                embedder = _embedder_or_fail(lib)
                embed_pending(lib.conn, embedder)
                lookup = decide(
                    lib.conn,
                    embedder,
                    DreamRequest(
                        prompt, negative or None, model, width, height, hold=held, limit=n
                    ),
                    backend=None,
                )
                hit = Decision(**lookup.decision) if lookup.hit else None
            except EmbedderUnavailable:
                hit = None
            if hit is not None:
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
        job = _generate_now(
            lib, req, backend, backend_url, api_auth, model, not no_wait, background
        )
        _print_job(job, as_json)


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
    from dreamdepot.generate.observe import queue_summary

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
            queue = JobQueue(
                lib.path, engine, lib.settings.max_batch, catalog_where=lib.catalog.where
            )
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
        summary = queue_summary(lib.conn)
    if as_json:
        sys.stdout.write(json_text({"jobs": rows, **summary}, default=str) + "\n")
        return
    for j in rows:
        where = f" on {j['worker']}" if j["status"] == "running" and j["worker"] else ""
        console.print(
            f"#{j['id']} {j['kind']} {j['status']}{escape(where)} {j['progress']:.0%} "
            f"{escape(j['request'].get('prompt', '')[:60])} {escape(j['error'] or '')}",
            highlight=False,
        )
    _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    """Queue depth per queue and per user, and the workers (what ``jobs`` adds to its list)."""
    for title, key in (("queue", "queues"), ("user", "users")):
        for name, n in summary[key].items():
            console.print(
                f"{title} {escape(name)}: {n['queued']} queued, {n['running']} running",
                highlight=False,
            )
    for w in summary["workers"]:
        state = "alive" if w["alive"] else "gone"
        device = f", {w['device']}" if w["device"] else ""
        vram = f" ({w['vram_bytes'] / 2**30:.0f} GiB)" if w["vram_bytes"] else ""
        running = f", running {w['running']}" if w["running"] else ""
        console.print(
            f"worker {escape(w['name'])} ({state}): {w['backend']}{escape(device)}{vram}, "
            f"models {escape(', '.join(w['models']) or '-')}{running}",
            highlight=False,
        )


def _embed_task(lib: Library, url: str) -> Any:
    """The ``embed`` queue's work: vectors for new prompts and images, with this machine's
    embedding model (loaded once, at start: a worker without it refuses the queue)."""
    from dreamdepot.catalog.db import Catalog
    from dreamdepot.semantic.service import embed_images_pending, embed_pending

    embedder = _embedder_or_fail(lib)

    def run() -> int:
        catalog = Catalog.open(url, library_dir=lib.path)
        try:
            return embed_pending(catalog.conn, embedder) + embed_images_pending(
                catalog.conn, embedder
            )
        finally:
            catalog.close()

    return run


@app.command()
def worker(
    backend: BackendOption = None,
    backend_url: BackendUrlOption = None,
    api_auth: ApiAuthOption = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="The checkpoint to load (diffusers) or to serve."),
    ] = None,
    queues: Annotated[
        str,
        typer.Option("--queues", help="Which kinds of job to take: generate, upscale, embed."),
    ] = "generate,upscale",
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Serve Prometheus metrics on this port."),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address the metrics port binds.")
    ] = "127.0.0.1",
    shutdown_timeout: Annotated[
        float,
        typer.Option("--shutdown-timeout", help="Seconds a job may take to finish after SIGTERM."),
    ] = 15.0,
) -> None:
    """Run jobs from the shared queue of a PostgreSQL catalog (``job_runner = "workers"``),
    on this machine's back end, loaded once, until SIGTERM or Ctrl-C. Takes only jobs for
    the models this back end has (and jobs that name none); advertises its back end, models
    and device in ``dreamdepot jobs``. On SIGTERM it finishes its job if it can within 15 s
    (``--shutdown-timeout``), else gives it back to the queue, and exits."""
    import contextlib
    import os
    import socket

    from dreamdepot.catalog.db import Catalog
    from dreamdepot.generate import dispatch
    from dreamdepot.generate.base import BackendError
    from dreamdepot.generate.jobs import JobQueue
    from dreamdepot.generate.service import NoBackend, make_backend

    kinds = tuple(k.strip() for k in queues.split(",") if k.strip())
    if not kinds or any(k not in dispatch.QUEUES for k in kinds):
        fail(f"--queues: expected some of {', '.join(dispatch.QUEUES)}, got {queues!r}", 2)
    with open_library() as lib:
        url = lib.settings.database
        if not url:
            fail("a worker needs a PostgreSQL catalog (database / DREAMDEPOT_DATABASE_URL)", 2)
        engine: Any = dispatch.Workers()  # a worker that only embeds loads no back end
        models: list[str] = []
        device: tuple[str | None, int | None] = (None, None)
        if any(k in dispatch.JOB_QUEUES for k in kinds):
            try:
                engine = make_backend(lib.settings, backend, backend_url, api_auth, model=model)
                models = [model] if model else engine.models()
                info = getattr(engine, "device_info", None)
                device = info() if info else (None, None)
            except (NoBackend, BackendError) as exc:
                fail(str(exc), 2)
        library_tasks = {}
        if "embed" in kinds:
            library_tasks[dispatch.EMBED_TASK] = _embed_task(lib, url)
        names = dispatch.queues_for_models(models, kinds)
        name = f"{socket.gethostname()}/{os.getpid()}"
        publisher = dispatch.Publisher(url)
        queue = JobQueue(
            lib.path, engine, lib.settings.max_batch, notify=publisher, catalog_where=url
        )
        queue.worker_name = name
        dispatch.register(lib.catalog, name, engine.name, models, names, device)
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr=metrics_host)
        where = f" on {device[0]}" if device[0] else ""
        err_console.print(f"worker {name}: {engine.name}{where}, queues {', '.join(names)}")

        def stopped() -> None:
            """After SIGTERM: a job still running is given back, and the process ends now
            (its thread may still be inside the back end; waiting for it could take long)."""
            released = queue.release()
            if released:
                err_console.print(f"worker {name}: gave back job(s) {released}")
                with contextlib.closing(Catalog.open(url, library_dir=lib.path)) as cat:
                    dispatch.requeue_orphans(url, cat)
                    dispatch.unregister(cat, name)
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)

        try:
            dispatch.run_worker(
                url,
                lambda: Catalog.open(url, library_dir=lib.path),
                queue.run,
                names,
                name=name,
                shutdown_timeout=shutdown_timeout,
                on_stopped=stopped,
                library_tasks=library_tasks,
            )
        finally:
            dispatch.unregister(lib.catalog, name)
            queue.close()
            publisher.close()
