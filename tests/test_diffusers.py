"""The local diffusers back end for real, on a tiny random pipeline written by
`dreamdepot dev tiny-model` (offline, seconds on a CPU): txt2img, img2img, upscale,
progress per step, and cancel mid-run."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from conftest import Cli, catalog
from dreamdepot.generate.base import GenerateRequest
from dreamdepot.generate.jobs import JobQueue
from dreamdepot.generate.service import make_backend
from dreamdepot.library import Library

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from typer.testing import CliRunner

    from dreamdepot.cli import app

    folder = tmp_path_factory.mktemp("models") / "tiny-sd"
    result = CliRunner().invoke(
        app, ["--library", str(folder.parent / "lib"), "dev", "tiny-model", str(folder)]
    )
    assert result.exit_code == 0, result.output
    assert (folder / "model_index.json").is_file() and "noise" in result.output
    return folder


def test_txt2img_img2img_and_upscale_on_the_tiny_pipeline(cli: Cli, tiny: Path) -> None:
    opts = ("--backend", "diffusers", "--backend-url", str(tiny), "--json")
    out = cli.json(
        "generate",
        "a tiny test",
        "--n",
        "2",
        "--seed",
        "7",
        "--steps",
        "2",
        "--size",
        "64x64",
        "--no-cache",
        *opts,
    )
    assert out["job"]["status"] == "done"
    assert sorted(i["seed"] for i in cli.jsonl("search", "tiny", "--json")) == [7, 8]
    first = out["images"][0]["id"]
    var = cli.json("variations", str(first), "--n", "1", "--strength", "0.5", *opts)
    assert var["job"]["status"] == "done"
    up = cli.json("upscale", str(first), "--scale", "2", *opts)
    assert up["job"]["status"] == "done"
    meta = cli.json("inspect", up["images"][0]["path"], "--json")
    assert meta["width"] == 128 and "lanczos" in meta["params"]["Postprocess upscaler"]
    conn = catalog(cli.library_path)
    assert (
        conn.execute("SELECT count(*) FROM images WHERE parent_id = ?", (first,)).fetchone()[0] == 2
    )


def test_progress_per_step_and_cancel_mid_run(cli: Cli, tiny: Path) -> None:
    cli("stats")
    with Library.open(cli.library_path) as lib:
        backend = make_backend(lib.settings, "diffusers", str(tiny))
        events: list[dict[str, object]] = []
        queue = JobQueue(lib.path, backend, notify=lambda kind, data: events.append(data))
        job = queue.submit(GenerateRequest(prompt="steps", steps=5, width=64, height=64))
        assert queue.run(job)["status"] == "done"
        progress = [e["progress"] for e in events if e.get("status") == "running"]
        assert progress[-5:] == [0.2, 0.4, 0.6, 0.8, 1.0]
        long = queue.submit(GenerateRequest(prompt="long", steps=400, width=64, height=64))
        runner = threading.Thread(target=queue.run, args=(long,))
        runner.start()
        deadline = time.monotonic() + 30
        while not any(e.get("id") == long and e.get("progress", 0) > 0 for e in events):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert queue.cancel(long)
        runner.join(timeout=30)
        row = lib.conn.execute("SELECT status FROM jobs WHERE id = ?", (long,)).fetchone()
        assert row[0] == "cancelled"
        queue.close()


def test_model_selects_the_diffusers_pipeline_by_path_or_name(
    cli: Cli, tiny: Path, tmp_path: Path
) -> None:
    """`--model` is what users type for every back end (it used to be refused here)."""
    common = ("--size", "64x64", "--steps", "2", "--no-cache", "--json")
    out = cli.json("generate", "by path", "--backend", "diffusers", "--model", str(tiny), *common)
    assert out["job"]["status"] == "done"
    (cli.library_path / "dreamdepot.toml").write_text(f'models_dir = "{tiny.parent}"\n')
    by_name = cli.json("generate", "by name", "--backend", "diffusers", "--model", tiny.name,
                       *common)  # fmt: skip
    assert by_name["job"]["status"] == "done"
    unknown = cli("generate", "x", "--backend", "diffusers", "--model", "nope", *common,
                  expect=2)  # fmt: skip
    assert "no model 'nope'" in unknown.stderr and tiny.name in unknown.stderr


def test_images_record_the_pipeline_that_made_them(cli: Cli, tiny: Path) -> None:
    """Over the API a request may name another model; the local pipeline runs what it
    loaded, and the image's metadata says so."""
    import httpx

    from server import Server

    cli("stats")
    toml = cli.library_path / "dreamdepot.toml"
    toml.write_text(f'backend = "diffusers"\ndiffusers_model = "{tiny}"\n' + toml.read_text())
    with Server(cli.library_path) as srv, httpx.Client(base_url=srv.base, timeout=60) as c:
        body = {"prompt": "which model", "model": "not-loaded", "width": 64, "height": 64,
                "steps": 2}  # fmt: skip
        job = c.post("/api/generate", json=body).json()["job"]
        deadline = time.monotonic() + 60
        while (state := c.get(f"/api/jobs/{job}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert state["status"] == "done", state
        detail = c.get(f"/api/images/{state['image_ids'][0]}").json()
    assert detail["model"] == tiny.name
