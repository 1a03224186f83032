"""One checkpoint, one model value: A1111's ``sd_xl_base_1.0`` and ComfyUI's
``SDXL/sd_xl_base_1.0.safetensors`` are the same model in stats, queries and auto tags; the
name as the file gave it stays in the detail; existing catalogs are migrated."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from builders import png
from conftest import Cli, catalog
from dreamdepot.catalog.db import _statements, connect, migrations
from server import Server

A1111 = "a castle\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 16x16, " \
        "Model hash: 31e35c80fc, Model: sd_xl_base_1.0"  # fmt: skip
COMFY = {
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 2, "steps": 20, "cfg": 7, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
        "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple",
          "inputs": {"ckpt_name": "SDXL/sd_xl_base_1.0.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 16, "height": 16,
                                                        "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a tower", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
}  # fmt: skip


def test_one_model_across_generators(cli: Cli, tmp_path: Path) -> None:
    png(tmp_path / "pics" / "a1111.png", {"parameters": A1111})
    png(tmp_path / "pics" / "comfy.png", {"prompt": json.dumps(COMFY)})
    cli("add", str(tmp_path / "pics"))
    assert cli.json("stats", "--json")["models"] == {"sd_xl_base_1.0": 2}
    assert len(cli.jsonl("search", "model:=sd_xl_base_1.0", "--json")) == 2
    comfy = cli.jsonl("search", "tower", "--json")[0]
    assert comfy["model"] == "sd_xl_base_1.0"
    with Server(cli.library_path) as srv:
        detail = httpx.get(f"{srv.base}/api/images/{comfy['id']}").json()
    assert detail["model_raw"] == "SDXL/sd_xl_base_1.0.safetensors"  # what the file said
    cli("autotag", "--tagger", "prompt")
    tags = {t for item in cli.jsonl("search", "", "--json") for t in item.get("tags", [])}
    conn = catalog(cli.library_path)
    names = {r[0] for r in conn.execute("SELECT name FROM tags")}
    assert "model:sd_xl_base_1.0" in names and "model:sd_xl_base_1" not in names, names
    assert tags <= names


@pytest.mark.sqlite_only("an old SQLite catalog upgraded in place")
def test_existing_catalogs_are_migrated(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    for _, _, sql in migrations()[:7]:  # a catalog written by the previous release
        for statement in _statements(sql):
            old.execute(statement)
    old.execute("PRAGMA user_version = 7")
    for i, model in enumerate(
        [
            "sd_xl_base_1.0",
            "SDXL/sd_xl_base_1.0.safetensors",
            "C:\\models\\dreamshaper_8.ckpt",
            "flux1-dev.gguf",
            None,
        ]
    ):
        old.execute(
            "INSERT INTO images(content_hash, bytes, format, width, height, created_at, "
            "indexed_at, model) VALUES (?, 1, 'png', 1, 1, 0, 0, ?)", (f"h{i}", model),
        )  # fmt: skip
    old.close()
    conn = connect(path)
    rows = conn.execute("SELECT model, model_raw FROM images ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [
        ("sd_xl_base_1.0", "sd_xl_base_1.0"),
        ("sd_xl_base_1.0", "SDXL/sd_xl_base_1.0.safetensors"),
        ("dreamshaper_8", "C:\\models\\dreamshaper_8.ckpt"),
        ("flux1-dev", "flux1-dev.gguf"),
        (None, None),
    ]
    from dreamdepot.ingest.metadata.model import model_name

    for model, raw in rows:  # the SQL and the Python rules agree
        assert model_name(raw) == model
