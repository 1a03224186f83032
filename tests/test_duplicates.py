"""Duplicates (issue #18): exact copies and look-alikes with a keep suggestion, through the
CLI, the API and the page; marking only tags, nothing is deleted."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from builders import png
from conftest import Cli
from server import Server


def _photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((256, 256), Image.Resampling.BICUBIC)


def _library(cli: Cli, tmp_path: Path) -> Path:
    root = tmp_path / "pics"
    png(root / "big.png", {"parameters": "a\nSteps: 5, Seed: 1, Size: 256x256"}, im=_photo(1))
    small = _photo(1).resize((128, 128))
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    (root / "small.jpg").write_bytes(buf.getvalue())  # a resized, re-encoded copy
    png(root / "other.png", {"parameters": "b\nSteps: 5, Seed: 2, Size: 256x256"}, im=_photo(2))
    (root / "again").mkdir()
    shutil.copy(root / "other.png", root / "again" / "other.png")  # the same bytes twice
    cli("add", str(root))
    cli("thumbnails")
    return root


def test_duplicates_cli_finds_copies_and_look_alikes(cli: Cli, tmp_path: Path) -> None:
    root = _library(cli, tmp_path)
    [near] = cli.jsonl("duplicates", "--json")
    big = cli.jsonl("search", "seed:1", "--json")[0]["id"]
    assert near["keep"] == big and len(near["images"]) == 2  # the larger one is kept
    [exact] = cli.jsonl("duplicates", "--exact", "--json")
    assert sorted(exact["images"][0]["paths"]) == [
        str(root / "again" / "other.png"),
        str(root / "other.png"),
    ]
    before = sorted(p.name for p in root.rglob("*"))
    assert "marked 1 image(s)" in cli("duplicates", "--mark").stdout
    assert [i["id"] for i in cli.jsonl("search", "tag:marked-for-deletion", "--json")] != [big]
    assert sorted(p.name for p in root.rglob("*")) == before  # nothing deleted


def test_duplicates_api(cli: Cli, tmp_path: Path) -> None:
    _library(cli, tmp_path)
    with Server(cli.library_path) as srv:
        r = httpx.get(srv.base + "/api/duplicates").json()
        [group] = r["groups"]
        assert group["keep"] in [i["id"] for i in group["images"]]
        assert all(i["thumbnail_url"] for i in group["images"])
        assert httpx.get(srv.base + "/api/duplicates?kind=nope").status_code == 422
