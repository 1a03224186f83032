"""The back ends against stand-ins that behave as the real servers do (not only their
schemas): ComfyUI delivering messages only to sockets already connected, finishing at once or
from its cache, rejecting workflows with 400 ``node_errors``; A1111 answering 404 for an
unknown sampler, 500 for a failing generation, and partial images after an interrupt."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from builders import A1111_TEXT, image, png
from conftest import Cli, catalog
from dreamdepot.generate.base import BackendError, GenerateRequest
from dreamdepot.generate.comfyui import ComfyUIBackend
from test_generate import FakeA1111, FakeComfy


@pytest.fixture(autouse=True)
def _short_backend_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missed completion fails in seconds instead of waiting out the 600 s default."""
    monkeypatch.setenv("DREAMDEPOT_BACKEND_TIMEOUT", "8")


def comfy(cli: Cli, fake: FakeComfy, *args: str, expect: int = 0) -> Any:
    result = cli(*args, "--backend", "comfyui", "--backend-url", fake.url, "--json",
                 expect=expect)  # fmt: skip
    return json.loads(result.stdout) if expect == 0 else result


def templates(folder: Path, **graphs: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, graph in graphs.items():
        (folder / f"{kind}.json").write_text(json.dumps(graph))
    return folder


def source(cli: Cli, tmp_path: Path, size: tuple[int, int]) -> str:
    """One indexed image of ``size`` to start from; its id."""
    png(tmp_path / "pics" / "src.png", {"parameters": A1111_TEXT}, image(size))
    cli("add", str(tmp_path / "pics"))
    return str(catalog(cli.library_path).execute("SELECT id FROM images").fetchone()[0])


def test_instant_and_cached_comfyui_runs_complete(cli: Cli) -> None:
    """The race: a client that queued before opening /ws never heard an instant run end."""
    with FakeComfy(start_delay=0, steps_delay=0) as fake:
        args = ("generate", "an instant teapot", "--seed", "5", "--steps", "3",
                "--size", "64x64", "--no-cache")  # fmt: skip
        first = comfy(cli, fake, *args)
        assert first["job"]["status"] == "done" and len(first["images"]) == 1
        again = comfy(cli, fake, *args)  # the same graph: ComfyUI answers from its cache
        assert again["job"]["status"] == "done"
        history = list(fake.app.state.fake["history"].values())[-1]
        cached = [m for m in history["status"]["messages"] if m[0] == "execution_cached"]
        assert cached and cached[0][1]["nodes"], "the second run was not a cached one"
        backend = ComfyUIBackend(fake.url, timeout=5)
        overheads = []
        for _ in range(5):
            t0 = time.perf_counter()
            backend.txt2img(GenerateRequest(prompt="p", seed=1, steps=2, width=64, height=64))
            overheads.append(time.perf_counter() - t0)
        assert max(overheads) < 5  # none waited for the deadline: every completion was seen


def test_progress_survives_a_dropped_socket(cli: Cli) -> None:
    with FakeComfy(steps_delay=0.02, drop_socket_at_step=3) as fake:
        seen: list[float] = []
        ComfyUIBackend(fake.url, timeout=5).txt2img(
            GenerateRequest(prompt="p", steps=10, width=64, height=64), seen.append
        )
        assert seen and seen[0] < 1.0  # progress came before the drop, the run still ended
        out = comfy(cli, fake, "generate", "dropped", "--steps", "10", "--size", "64x64",
                    "--no-cache")  # fmt: skip
        assert out["job"]["status"] == "done"


def test_templates_without_model_never_ask_for_a_checkpoint(cli: Cli, tmp_path: Path) -> None:
    image_id = source(cli, tmp_path, (64, 48))
    folder = templates(
        tmp_path / "tpl",
        txt2img={
            "1": {"class_type": "EmptyImage", "inputs": {
                "width": "{{width}}", "height": "{{height}}", "batch_size": "{{n}}",
                "color": 0}},
            "9": {"class_type": "SaveImage", "inputs": {
                "filename_prefix": "{{prompt}}", "images": ["1", 0]}},
        },
        upscale={
            "1": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
            "2": {"class_type": "ImageScaleBy", "inputs": {
                "image": ["1", 0], "upscale_method": "lanczos", "scale_by": "{{scale}}"}},
            "9": {"class_type": "SaveImage", "inputs": {
                "filename_prefix": "up", "images": ["2", 0]}},
        },
    )  # fmt: skip
    (cli.library_path / "dreamdepot.toml").write_text(f'comfyui_templates = "{folder}"\n')
    with FakeComfy(checkpoints=[]) as fake:  # a FLUX/GGUF set-up: nothing in checkpoints/
        out = comfy(cli, fake, "generate", "no model", "--size", "64x64", "--no-cache")
        assert out["job"]["status"] == "done"
        up = comfy(cli, fake, "upscale", image_id, "--scale", "3")
        assert up["job"]["status"] == "done"
        row = (
            catalog(cli.library_path)
            .execute(
                "SELECT width, height, params FROM images WHERE id = ?", (up["images"][0]["id"],)
            )
            .fetchone()
        )
        assert (row["width"], row["height"]) == (192, 144)
        assert json.loads(row["params"])["Postprocess upscale by"] == "3"
        # a template that does use {{model}} says why it failed
        (cli.library_path / "dreamdepot.toml").write_text("")
        bad = comfy(cli, fake, "generate", "needs one", "--no-cache", expect=1)
        assert "no checkpoints" in bad.stdout and "{{model}}" in bad.stdout


def test_upscale_records_what_the_workflow_did(cli: Cli, tmp_path: Path) -> None:
    image_id = source(cli, tmp_path, (64, 64))
    with FakeComfy() as fake:
        up = comfy(
            cli, fake, "upscale", image_id, "--scale", "3"
        )  # default template: 4x model, resize
        graph = fake.app.state.fake["prompts"][-1]
        assert graph["15"]["inputs"]["width"] == 192
        params = json.loads(catalog(cli.library_path).execute(
            "SELECT params, width FROM images WHERE id = ?", (up["images"][0]["id"],)
        ).fetchone()["params"])  # fmt: skip
        assert params["Postprocess upscale by"] == "3"
        folder = templates(tmp_path / "tpl", upscale={  # a template that ignores {{scale}}
            "1": {"class_type": "LoadImage", "inputs": {"image": "{{image}}"}},
            "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "{{upscaler}}"}},
            "3": {"class_type": "ImageUpscaleWithModel",
                  "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x",
                                                        "images": ["3", 0]}},
        })  # fmt: skip
        (cli.library_path / "dreamdepot.toml").write_text(f'comfyui_templates = "{folder}"\n')
        up4 = comfy(cli, fake, "upscale", image_id, "--scale", "2")
        params = json.loads(catalog(cli.library_path).execute(
            "SELECT params FROM images WHERE id = ?", (up4["images"][0]["id"],)
        ).fetchone()["params"])  # fmt: skip
        assert params["Postprocess upscale by"] == "4"  # what it did, not what was asked


def test_rejected_and_partly_valid_workflows(cli: Cli, tmp_path: Path) -> None:
    with FakeComfy() as fake:
        bad = comfy(cli, fake, "generate", "x", "--sampler", "no_such_sampler", "--no-cache",
                    expect=1)  # fmt: skip
        assert "rejected the workflow" in bad.stdout
        assert "node 3 (KSampler)" in bad.stdout and "no_such_sampler" in bad.stdout
        assert not fake.app.state.fake["prompts"]  # nothing was queued
        folder = templates(tmp_path / "tpl", txt2img={
            "1": {"class_type": "EmptyImage", "inputs": {
                "width": "{{width}}", "height": "{{height}}", "batch_size": 1, "color": 0}},
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ok",
                                                        "images": ["1", 0]}},
            "5": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "missing.pth"}},
            "6": {"class_type": "ImageUpscaleWithModel",
                  "inputs": {"upscale_model": ["5", 0], "image": ["1", 0]}},
            "10": {"class_type": "SaveImage", "inputs": {"filename_prefix": "broken",
                                                         "images": ["6", 0]}},
        })  # fmt: skip
        (cli.library_path / "dreamdepot.toml").write_text(f'comfyui_templates = "{folder}"\n')
        out = comfy(cli, fake, "generate", "half", "--size", "64x64", "--no-cache")
        assert out["job"]["status"] == "done" and len(out["images"]) == 1


def test_a1111_errors_are_reported_as_the_server_gave_them(cli: Cli, tmp_path: Path) -> None:
    def gen(fake: FakeA1111, *extra: str, expect: int = 1) -> Any:
        return cli("generate", "x y", "--backend", "a1111", "--backend-url", fake.url,
                   "--no-cache", "--json", *extra, expect=expect)  # fmt: skip

    with FakeA1111() as fake:
        bad = gen(fake, "--sampler", "Euler Z")
        assert "Sampler not found" in bad.stdout and "--api" not in bad.stdout
        assert gen(fake, "--sampler", "DPM++ 2M", expect=0)
    with FakeA1111(mode="error") as broken:
        failed = gen(broken)
        assert "Sizes of tensors must match" in failed.stdout
        assert len(broken.calls) == 1  # a generation's 500 is not retried
    with FakeComfy() as not_a1111:  # a server without /sdapi: that one is the --api hint
        assert "--api" in gen(not_a1111).stdout


def test_an_interrupted_a1111_job_stores_none_of_its_partial_images(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import fake_a1111
    from dreamdepot.generate.jobs import JobQueue
    from dreamdepot.generate.service import make_backend
    from dreamdepot.library import Library

    monkeypatch.setattr(fake_a1111, "STEP_SECONDS", 0.02)
    cli("stats")
    with FakeA1111() as fake, Library.open(cli.library_path) as lib:
        queue = JobQueue(lib.path, make_backend(lib.settings, "a1111", fake.url))
        job = queue.submit(GenerateRequest(prompt="cut short", steps=200, width=64, height=64))
        runner = threading.Thread(target=queue.run, args=(job,))
        runner.start()
        deadline = time.monotonic() + 10
        while fake.app.state.fake["progress"] == 0.0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert queue.cancel(job)
        runner.join(10)
        row = lib.conn.execute("SELECT status, image_ids FROM jobs WHERE id = ?", (job,))
        status, image_ids = row.fetchone()
        assert status == "cancelled" and not json.loads(image_ids or "[]")
        n = lib.conn.execute("SELECT count(*) FROM images WHERE job_id = ?", (job,)).fetchone()
        assert n[0] == 0
        queue.close()


def test_backend_error_is_typed() -> None:
    with pytest.raises(BackendError, match="unreachable"):
        ComfyUIBackend("http://127.0.0.1:9", timeout=1, retries=0).models()


def test_model_is_checked_against_what_the_server_has(cli: Cli, tmp_path: Path) -> None:
    with FakeA1111() as a1111:
        a = ("--backend", "a1111", "--backend-url", a1111.url, "--no-cache", "--json")
        ok = cli.json("generate", "x y", "--model", "v1-5-pruned-emaonly", *a)
        assert ok["job"]["status"] == "done"
        sent = a1111.calls[-1][1]["override_settings"]["sd_model_checkpoint"]
        assert sent == "v1-5-pruned-emaonly.safetensors [6ce0161689]"  # the server's title
        bad = cli("generate", "x y", "--model", "sdxl-nope", *a, expect=1)
        assert "no checkpoint 'sdxl-nope'" in bad.stdout and "v1-5-pruned-emaonly" in bad.stdout
    with FakeComfy() as fake:
        out = comfy(cli, fake, "generate", "x", "--model", "v1-5-pruned-emaonly", "--size",
                    "64x64", "--no-cache")  # fmt: skip
        assert out["job"]["status"] == "done"  # the normalised name finds the file
        assert fake.app.state.fake["prompts"][-1]["4"]["inputs"]["ckpt_name"] == (
            "v1-5-pruned-emaonly.safetensors"
        )
        bad = comfy(cli, fake, "generate", "x", "--model", "nope", "--no-cache", expect=1)
        assert "no checkpoint 'nope'" in bad.stdout
