"""Generation through the A1111 back end (a stand-in server that follows A1111's documented
API), the persistent job queue, lineage, the dream cache in front, CLI and HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from builders import A1111_TEXT, png
from conftest import Cli, catalog
from dreamdepot.generate.base import GenerateRequest
from dreamdepot.generate.jobs import JobQueue
from dreamdepot.generate.service import make_backend
from dreamdepot.library import Library
from fake_a1111 import make_app
from server import Server, Serving


class FakeA1111(Serving):
    """The A1111 stand-in (fake_a1111.py) on a free loopback port, in a thread."""

    def __init__(self, auth: str | None = None, mode: str = "ok") -> None:
        self.app = make_app(auth, mode)
        super().__init__(self.app)

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return self.app.state.fake["calls"]


@pytest.fixture
def a1111() -> Iterator[FakeA1111]:
    with FakeA1111() as fake:
        yield fake


def test_generate_writes_a1111_compatible_files_and_indexes_them(
    cli: Cli, a1111: FakeA1111
) -> None:
    out = cli.json(
        "generate",
        "a glass castle on a hill",
        "--n",
        "2",
        "--seed",
        "42",
        "--size",
        "64x96",
        "--scheduler",
        "Karras",
        "--backend",
        "a1111",
        "--backend-url",
        a1111.url,
        "--no-cache",
        "--json",
    )
    job = out["job"]
    assert job["status"] == "done" and len(out["images"]) == 2
    kind, payload = a1111.calls[0]
    assert kind == "txt2img" and payload["batch_size"] == 2 and payload["width"] == 64
    assert payload["scheduler"] == "Karras"
    path = Path(out["images"][0]["path"])
    assert path.is_file() and "generated" in path.parts
    meta = cli.json("inspect", str(path), "--json")
    assert meta["prompt"] == "a glass castle on a hill" and meta["seed"] == 42
    assert meta["generator"] == "dreamdepot" and meta["steps"] == 20
    seeds = sorted(i["seed"] for i in cli.jsonl("search", "castle", "--json"))
    assert seeds == [42, 43]  # the seeds A1111 actually used (info.all_seeds)
    conn = catalog(cli.library_path)
    assert {r[0] for r in conn.execute("SELECT job_id FROM images")} == {job["id"]}


def test_the_dream_cache_answers_before_generating(cli: Cli, a1111: FakeA1111) -> None:
    args = ("--backend", "a1111", "--backend-url", a1111.url, "--size", "64x64", "--json")
    first = cli.json("generate", "a red lighthouse in a storm", *args)
    assert first["job"]["status"] == "done" and len(a1111.calls) == 1
    again = cli.json("generate", "masterpiece, a red lighthouse in a storm", *args)
    assert again["job"] is None and again["cache"]["hit"] and len(a1111.calls) == 1
    other = cli.json("generate", "a blue lighthouse in a storm", *args)
    assert other["job"]["status"] == "done" and len(a1111.calls) == 2


def test_upscale_and_variations_keep_lineage(cli: Cli, a1111: FakeA1111, tmp_path: Path) -> None:
    png(tmp_path / "pics" / "src.png", {"parameters": A1111_TEXT})
    cli("add", str(tmp_path / "pics"))
    [src] = cli.jsonl("search", "fox", "--json")
    opts = ("--backend", "a1111", "--backend-url", a1111.url, "--json")
    up = cli.json("upscale", str(src["id"]), "--scale", "2", *opts)
    assert up["job"]["status"] == "done" and a1111.calls[-1][0] == "extra"
    var = cli.json("variations", str(Path(src["paths"][0])), "--n", "2", "--strength", "0.4", *opts)
    kind, payload = a1111.calls[-1]
    assert kind == "img2img" and payload["denoising_strength"] == 0.4
    assert payload["prompt"].startswith("a red fox") and payload["init_images"]
    conn = catalog(cli.library_path)
    children = [
        r[0] for r in conn.execute("SELECT id FROM images WHERE parent_id = ?", (src["id"],))
    ]
    assert len(children) == 3
    big = conn.execute("SELECT width FROM images WHERE id = ?", (up["images"][0]["id"],))
    assert big.fetchone()[0] == 32
    assert len(var["images"]) == 2


def test_back_end_failures_fail_the_job_with_a_reason(cli: Cli, tmp_path: Path) -> None:
    with FakeA1111(auth="me:secret") as guarded:
        bad = cli(
            "generate",
            "x y z",
            "--backend",
            "a1111",
            "--backend-url",
            guarded.url,
            "--no-cache",
            "--json",
            expect=1,
        )
        assert "401" in bad.stdout and '"failed"' in bad.stdout
        ok = cli.json(
            "generate",
            "x y z",
            "--backend",
            "a1111",
            "--backend-url",
            guarded.url,
            "--api-auth",
            "me:secret",
            "--no-cache",
            "--json",
        )
        assert ok["job"]["status"] == "done"
    with FakeA1111(mode="malformed") as broken:
        bad = cli(
            "generate",
            "x y z",
            "--backend",
            "a1111",
            "--backend-url",
            broken.url,
            "--no-cache",
            "--json",
            expect=1,
        )
        assert "malformed" in bad.stdout or "base64" in bad.stdout
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    gone = cli(
        "generate",
        "x y z",
        "--backend",
        "a1111",
        "--backend-url",
        dead,
        "--no-cache",
        "--json",
        expect=1,
    )
    assert "unreachable" in gone.stdout


def test_invalid_requests_are_refused_before_queueing(cli: Cli, a1111: FakeA1111) -> None:
    opts = ("--backend", "a1111", "--backend-url", a1111.url, "--no-cache")
    assert "width" in cli("generate", "x", "--size", "100x100", *opts, expect=2).stderr
    assert "n:" in cli("generate", "x", "--n", "99", *opts, expect=2).stderr
    assert "no generation back end" in cli("generate", "x", "--no-cache", expect=2).stderr
    assert catalog(cli.library_path).execute("SELECT count(*) FROM jobs").fetchone()[0] == 0


def test_jobs_survive_a_restart(cli: Cli, a1111: FakeA1111) -> None:
    cli("stats")
    with Library.open(cli.library_path) as lib:
        queue = JobQueue(lib.path, make_backend(lib.settings, "a1111", a1111.url))
        job = queue.submit(GenerateRequest(prompt="a survivor", width=64, height=64))
        with lib.catalog.transaction() as conn:  # the process died while it was running
            conn.execute("UPDATE jobs SET status = 'running', attempts = 1 WHERE id = ?", (job,))
        assert queue.recover() == 1
        assert queue.run_pending() == 1
        row = lib.conn.execute("SELECT status, attempts FROM jobs WHERE id = ?", (job,)).fetchone()
        assert tuple(row) == ("done", 2)
        queue.close()


def test_generate_over_http_with_progress_and_cancel(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fake_a1111

    monkeypatch.setattr(fake_a1111, "STEP_SECONDS", 0.05)
    with FakeA1111() as fake:
        cli("stats")
        toml = cli.library_path / "dreamdepot.toml"
        toml.write_text(f'backend = "a1111"\na1111_url = "{fake.url}"\n' + toml.read_text())
        with Server(cli.library_path) as srv, httpx.Client(base_url=srv.base, timeout=30) as c:
            info = c.get("/api/backend").json()
            assert info["available"] and info["models"] == ["v1-5-pruned-emaonly"]
            events: list[str] = []

            def listen() -> None:
                with httpx.stream("GET", f"{srv.base}/api/events", timeout=30) as r:
                    for line in r.iter_lines():
                        events.append(line)
                        if '"status": "done"' in line:
                            return

            t = threading.Thread(target=listen, daemon=True)
            t.start()
            time.sleep(0.3)
            r = c.post(
                "/api/generate",
                json={
                    "prompt": "an http dragon",
                    "steps": 30,
                    "width": 64,
                    "height": 64,
                    "sampler": "DPM++ 2M",
                    "scheduler": "Karras",
                },
            )
            assert r.status_code == 202
            job_id = r.json()["job"]
            t.join(timeout=20)
            assert any('"progress": 0.' in e for e in events), "no progress events"
            done = c.get(f"/api/jobs/{job_id}").json()
            assert done["status"] == "done" and done["image_ids"]
            kind, payload = fake.calls[-1]
            assert (kind, payload["sampler_name"], payload["scheduler"]) == (
                "txt2img",
                "DPM++ 2M",
                "Karras",
            )
            up = c.post(
                "/api/generate",
                json={"kind": "upscale", "parent_id": done["image_ids"][0], "upscaler": "Lanczos"},
            ).json()["job"]
            deadline = time.monotonic() + 10
            while c.get(f"/api/jobs/{up}").json()["status"] in ("queued", "running"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert c.get(f"/api/jobs/{up}").json()["status"] == "done"
            kind, payload = fake.calls[-1]
            assert (kind, payload["upscaler_1"]) == ("extra", "Lanczos")
            slow = c.post(
                "/api/generate",
                json={"prompt": "a slow one", "steps": 200, "width": 64, "height": 64},
            ).json()["job"]
            deadline = time.monotonic() + 10
            while c.get(f"/api/jobs/{slow}").json()["status"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            time.sleep(0.3)
            assert c.post(f"/api/jobs/{slow}/cancel").status_code == 200
            while c.get(f"/api/jobs/{slow}").json()["status"] == "running":
                assert time.monotonic() < deadline + 10
                time.sleep(0.05)
            assert c.get(f"/api/jobs/{slow}").json()["status"] == "cancelled"
            bad = c.post("/api/generate", json={"prompt": "x", "width": 100})
            assert bad.status_code == 422 and bad.json()["field"] == "width"
            long_name = c.post("/api/generate", json={"prompt": "x", "scheduler": "k" * 501})
            assert long_name.status_code == 422 and long_name.json()["field"] == "scheduler"
            assert c.get("/api/jobs/999").status_code == 404
            assert c.post(f"/api/jobs/{job_id}/cancel").status_code == 409


def test_a_dream_miss_generates_and_the_next_similar_request_hits(
    cli: Cli, a1111: FakeA1111
) -> None:
    cli("stats")
    toml = cli.library_path / "dreamdepot.toml"
    toml.write_text(f'backend = "a1111"\na1111_url = "{a1111.url}"\n' + toml.read_text())
    miss = cli.json("dream", "an origami crane over a misty lake", "--size", "64x64", "--json")
    assert miss["hit"] is False and miss["generated"]["status"] == "done"
    assert Path(miss["images"][0]["paths"][0]).is_file()
    hit = cli.json("dream", "(origami crane:1.1) over a misty lake, masterpiece", "--json")
    assert hit["hit"] is True and hit["images"][0]["id"] == miss["images"][0]["id"]
    assert len(a1111.calls) == 1


class FakeComfy(FakeA1111):
    def __init__(self, fail: bool = False, **behaviour: Any) -> None:
        from fake_comfyui import make_app as make_comfy

        self.app = make_comfy(fail, **behaviour)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)


def test_comfyui_back_end_with_templates_progress_and_outputs(cli: Cli, tmp_path: Path) -> None:
    from dreamdepot.generate.comfyui import ComfyUIBackend

    with FakeComfy() as comfy:
        opts = ("--backend", "comfyui", "--backend-url", comfy.url, "--json")
        out = cli.json(
            "generate",
            "a comfy teapot",
            "--n",
            "2",
            "--seed",
            "11",
            "--steps",
            "5",
            "--size",
            "64x64",
            "--no-cache",
            *opts,
        )
        assert out["job"]["status"] == "done" and len(out["images"]) == 2
        graph = comfy.app.state.fake["prompts"][0]
        assert graph["3"]["inputs"]["seed"] == 11 and graph["5"]["inputs"]["batch_size"] == 2
        assert graph["4"]["inputs"]["ckpt_name"] == "v1-5-pruned-emaonly.safetensors"
        first = out["images"][0]["id"]
        up = cli.json("upscale", str(first), *opts)
        assert up["job"]["status"] == "done"
        assert comfy.app.state.fake["uploads"]  # the source went through /upload/image
        var = cli.json("variations", str(first), "--n", "1", *opts)
        assert var["job"]["status"] == "done"
        seen: list[float] = []
        backend = ComfyUIBackend(comfy.url)
        backend.txt2img(GenerateRequest(prompt="p", steps=4, width=64, height=64), seen.append)
        assert seen == [0.25, 0.5, 0.75, 1.0]
        templates = tmp_path / "templates"
        templates.mkdir()
        custom = {  # model-free: an empty image, scaled, saved (no {{model}}: no lookup)
            "1": {"class_type": "EmptyImage",
                  "inputs": {"width": "{{width}}", "height": "{{height}}", "batch_size": 1,
                             "color": "{{seed}}"}},
            "2": {"class_type": "ImageScaleBy",
                  "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact",
                             "scale_by": 1.0}},
            "9": {"class_type": "SaveImage",
                  "inputs": {"filename_prefix": "mine {{prompt}}", "images": ["2", 0]}},
        }  # fmt: skip
        (templates / "txt2img.json").write_text(json.dumps(custom))
        ComfyUIBackend(comfy.url, templates).txt2img(
            GenerateRequest(prompt="custom", seed=3, width=64, height=64)
        )
        sent = comfy.app.state.fake["prompts"][-1]
        assert sent["9"]["inputs"]["filename_prefix"] == "mine custom"
        assert sent["1"]["inputs"]["color"] == 3
    with FakeComfy(fail=True) as broken:
        bad = cli(
            "generate",
            "x y",
            "--backend",
            "comfyui",
            "--backend-url",
            broken.url,
            "--no-cache",
            "--json",
            expect=1,
        )
        assert "out of memory" in bad.stdout


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Debian chromium missing")
def test_generate_from_the_ui_shows_progress_and_lineage(
    cli: Cli, tmp_path: Path, a1111: FakeA1111
) -> None:
    from playwright.sync_api import sync_playwright

    png(tmp_path / "pics" / "src.png", {"parameters": A1111_TEXT})
    cli("add", str(tmp_path / "pics"))
    toml = cli.library_path / "dreamdepot.toml"
    toml.write_text(f'backend = "a1111"\na1111_url = "{a1111.url}"\n' + toml.read_text())
    with Server(cli.library_path) as srv, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(bypass_csp=True)  # Playwright evaluates strings
        page.goto(srv.base + "/")
        page.wait_for_selector(".tile")
        page.dblclick(".tile")
        page.wait_for_selector("#detail:not([hidden]) #detail-prompt")
        assert page.is_enabled("text=Variations")
        page.click("text=Variations")
        page.wait_for_function(
            "document.querySelector('#status').textContent.includes('done')", timeout=20_000
        )
        page.keyboard.press("Escape")
        page.wait_for_selector("#toast:has-text('click to show')")  # live: new images offered
        page.click("#toast")
        page.wait_for_function("S.items.length === 3", timeout=20_000)
        child = page.evaluate("S.items.find(i => i.parent_id !== null).id")
        page.evaluate(f"openDetail({child})")
        page.wait_for_selector("#detail-info button:has-text('Parent #')")
        browser.close()


def test_a_held_miss_generates_what_was_held_and_then_hits(cli: Cli, a1111: FakeA1111) -> None:
    """Issue #14: a miss generates with exactly the held parameters, so the same request
    hits next time; "generate anyway" skips a hit and is logged; held keys a request cannot
    carry are named."""
    cli("stats")
    toml = cli.library_path / "dreamdepot.toml"
    toml.write_text(f'backend = "a1111"\na1111_url = "{a1111.url}"\n' + toml.read_text())
    ask = ("dream", "a paper boat on a puddle", "--size", "64x64", "--hold", "steps=7")
    first = cli.json(*ask, "--hold", "seed=42", "--hold", "sampler=Euler", "--json")
    assert first["hit"] is False and first["generated"]["status"] == "done"
    payload = a1111.calls[-1][1]
    assert (payload["steps"], payload["seed"], payload["sampler_name"]) == (7, 42, "Euler")
    assert first["generation"]["steps"] == 7 and first["held_not_applied"] == []
    again = cli.json(*ask, "--hold", "seed=42", "--hold", "sampler=Euler", "--json")
    assert again["hit"] is True and len(a1111.calls) == 1
    assert again["images"][0]["id"] == first["images"][0]["id"]
    other_steps = cli.json("dream", "a paper boat on a puddle", "--hold", "steps=9", "--json")
    assert other_steps["hit"] is False and "steps differs" in other_steps["reason"]
    assert a1111.calls[-1][1]["steps"] == 9
    anyway = cli.json(*ask, "--generate-anyway", "--json")
    assert anyway["hit"] is False and anyway["reason"].startswith("generate anyway")
    assert anyway["generated"]["status"] == "done" and len(a1111.calls) == 3
    vae = cli.json("dream", "a kite over a beach", "--hold", "vae=ft-mse", "--json")
    assert vae["held_not_applied"] == ["vae"]
    bad = cli("dream", "x", "--hold", "steps=many", expect=2)
    assert "steps" in bad.stderr
    rows = (
        catalog(cli.library_path)
        .execute("SELECT decision, reason FROM cache_events ORDER BY id")
        .fetchall()
    )
    assert ("bypass", "generate anyway") in [tuple(r) for r in rows]
