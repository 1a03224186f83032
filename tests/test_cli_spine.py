"""The spine through its command line: add, scan, search, stats, doctor, inspect, tag,
export, prune, and the library/schema rules."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest

from builders import A1111_TEXT, jpeg_user_comment, png
from conftest import ENGINE, Cli, catalog
from dreamdepot.catalog.db import latest_schema

INSPECT_KEYS = {
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
}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "outputs"
    png(root / "a" / "fox.png", {"parameters": A1111_TEXT})
    jpeg_user_comment(root / "b" / "fox.jpg", A1111_TEXT.replace("Seed: 1234", "Seed: 99"))
    comfy = {
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 7,
                "steps": 20,
                "cfg": 6.5,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64}},
        "6": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "a castle at dusk", "clip": ["4", 1]},
        },
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog", "clip": ["4", 1]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["3", 0]}},
    }
    png(root / "c" / "castle.png", {"prompt": json.dumps(comfy), "workflow": "{}"}, im=None)
    png(root / "plain.png", {}, im=None)
    return root


def test_add_indexes_and_search_finds_by_prompt_and_fields(cli: Cli, photos: Path) -> None:
    out = cli("add", str(photos)).stdout
    assert "4 new images" in out
    foxes = cli.jsonl("search", "fox", "--json")
    assert {f["seed"] for f in foxes} == {1234, 99}
    assert all(f["paths"] and Path(f["paths"][0]).exists() for f in foxes)
    castle = cli.jsonl("search", "generator:comfyui model:sdxl steps:20 cfg:>6", "--json")
    assert [c["prompt"] for c in castle] == ["a castle at dusk"]
    assert cli.jsonl("search", 'sampler:"DPM++ 2M" seed:1000..2000', "--json")[0]["seed"] == 1234
    assert cli.jsonl("search", "castl*", "--json")[0]["generator"] == "comfyui"
    assert cli.jsonl("search", "noprompt", "--json")[0]["generator"] is None


def test_search_rejects_a_malformed_query_with_the_position(cli: Cli, photos: Path) -> None:
    cli("add", str(photos))
    result = cli("search", "fox steps:abc", expect=2)
    assert "position 4" in result.stderr and "steps" in result.stderr
    assert "unknown field" in cli("search", "colour:red", expect=2).stderr


def test_stats_json_counts_everything(cli: Cli, photos: Path) -> None:
    cli("add", str(photos))
    s = cli.json("stats", "--json")
    assert s["images"] == 4 and s["files"] == 4 and s["scan_errors"] == 0
    assert s["generators"]["a1111"] == 2 and s["generators"]["comfyui"] == 1
    assert s["roots"][0]["path"] == str(photos.resolve())


def test_inspect_json_has_the_documented_keys(cli: Cli, photos: Path) -> None:
    data = cli.json("inspect", str(photos / "a" / "fox.png"), "--json")
    assert set(data) >= INSPECT_KEYS
    assert data["prompt"] == "a red fox in the snow, <lora:foxy:0.7>"
    assert data["negative_prompt"] == "lowres, blurry"
    assert (data["seed"], data["steps"], data["cfg_scale"]) == (1234, 25, 7.0)
    assert (data["sampler"], data["scheduler"]) == ("DPM++ 2M", "Karras")
    assert (data["width"], data["height"]) == (512, 768)
    assert data["model"] == "v1-5-pruned-emaonly" and data["model_hash"] == "6ce0161689"
    assert data["loras"] == [{"name": "foxy", "weight": 0.7, "hash": "abcdef123456"}]
    assert data["source"] == ["png:parameters"]
    plain = cli.json("inspect", str(photos / "plain.png"), "--json")
    assert plain["generator"] is None and plain["width"] == 16


def test_inspect_reports_bad_files_clearly(cli: Cli, tmp_path: Path) -> None:
    bogus = tmp_path / "not-an-image.png"
    bogus.write_text("hello")
    assert "not an image" in cli("inspect", str(bogus), expect=1).stderr
    assert "no such file" in cli("inspect", str(tmp_path / "nope.png"), expect=1).stderr


def test_tag_add_and_remove_by_query(cli: Cli, photos: Path) -> None:
    cli("add", str(photos))
    assert "Tagged 'best fox' on 2 of 2" in cli("tag", "add", "best fox", "fox").stdout
    tagged = cli.jsonl("search", 'tag:"best fox"', "--json")
    assert len(tagged) == 2
    assert cli.jsonl("search", "--json", "--", '-tag:"best fox"')[0]["id"] not in {
        t["id"] for t in tagged
    }
    cli("tag", "remove", "best fox", "seed:99")
    assert [t["seed"] for t in cli.jsonl("search", 'tag:"best fox"', "--json")] == [1234]
    assert "empty" in cli("tag", "add", "   ", "fox", expect=2).stderr


def test_export_jsonl_and_csv_carry_paths_hashes_params_and_tags(cli: Cli, photos: Path) -> None:
    cli("add", str(photos))
    cli("tag", "add", "keeper", "castle")
    rows = cli.jsonl("export", "--format", "jsonl")
    assert len(rows) == 4
    castle = next(r for r in rows if r["prompt"] == "a castle at dusk")
    assert castle["tags"] == ["keeper"] and castle["negative_prompt"] == "fog"
    assert castle["paths"][0].endswith("c/castle.png") and len(castle["content_hash"]) == 32
    fox = next(r for r in rows if r["seed"] == 1234)
    assert fox["params"] == {} and fox["loras"][0]["name"] == "foxy"
    out = cli("export", "tag:keeper", "--format", "csv").stdout
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == 1 and table[0]["tags"] == "keeper" and table[0]["seed"] == "7"


def test_doctor_lists_unreadable_files_with_reasons(cli: Cli, photos: Path) -> None:
    (photos / "empty.png").write_bytes(b"")
    (photos / "text.jpg").write_text("I am not a JPEG")
    (photos / "cut.png").write_bytes((photos / "a" / "fox.png").read_bytes()[:-20])
    cli("add", str(photos))
    report = cli.json("doctor", "--json")
    reasons = {Path(e["path"]).name: e["reason"] for e in report["unreadable"]}
    assert "empty file" in reasons["empty.png"]
    assert "not an image" in reasons["text.jpg"]
    assert "truncated" in reasons["cut.png"]
    assert "cut.png" in cli("doctor").stdout


def test_library_option_env_and_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, photos: Path
) -> None:
    lib = tmp_path / "by-env"
    monkeypatch.setenv("DREAMDEPOT_LIBRARY", str(lib))
    from typer.testing import CliRunner

    from dreamdepot.cli import app

    result = CliRunner().invoke(app, ["add", str(photos)])
    assert result.exit_code == 0, result.output
    assert {p.name for p in lib.iterdir()} >= {"thumbs", "generated", "dreamdepot.toml"}
    if ENGINE == "postgresql":  # the catalog is the database the setting names
        assert not (lib / "catalog.sqlite").exists()
        assert catalog(lib).execute("SELECT count(*) FROM roots").fetchone()[0] == 1
        return
    conn = sqlite3.connect(lib / "catalog.sqlite")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest_schema()


def test_a_catalog_from_a_newer_version_is_refused(cli: Cli, photos: Path) -> None:
    cli("add", str(photos))
    conn = catalog(cli.library_path)
    if ENGINE == "postgresql":  # its schema number lives in its own table
        conn.execute("INSERT INTO dd_schema(version) VALUES (99)")
    else:
        conn.execute(f"PRAGMA user_version = {latest_schema() + 1}")
    conn.close()
    err = cli("stats", expect=1).stderr
    assert "newer" in err and "upgrade dreamdepot" in err


def test_prune_forgets_missing_files_and_their_images(cli: Cli, photos: Path) -> None:
    cli("add", str(photos))
    cli("tag", "add", "kept", "castle")
    (photos / "c" / "castle.png").unlink()
    assert "1 missing" in cli("scan").stdout
    missing = cli.jsonl("search", "missing", "--json")
    assert [m["prompt"] for m in missing] == ["a castle at dusk"]
    assert cli.jsonl("search", "tag:kept", "--json")  # tags kept until prune
    assert "Forgot 1 missing file(s) and 1 image(s)" in cli("prune", "--yes").stdout
    assert cli.jsonl("search", "tag:kept", "--json") == []
    assert cli.json("stats", "--json")["images"] == 3


def test_demo_creates_labelled_images_from_several_generators(cli: Cli) -> None:
    cli("demo", "--count", "40")
    s = cli.json("stats", "--json")
    assert s["images"] == 40
    assert {"a1111", "comfyui", "novelai", "invokeai"} <= set(s["generators"])
    assert "demo" in s["roots"][0]["path"]


def test_thumbnails_command_makes_avif_placeholders_and_hashes(cli: Cli, photos: Path) -> None:
    cli("add", str(photos))
    assert "Made thumbnails for 4 image(s)" in cli("thumbnails").stdout
    conn = catalog(cli.library_path)
    rows = conn.execute("SELECT thumb_key, placeholder, phash FROM images").fetchall()
    assert all(
        r[0] and r[1].startswith("data:image/webp;base64,") and r[2] is not None for r in rows
    )
    assert all((cli.library_path / "thumbs" / r[0]).read_bytes()[4:12] == b"ftypavif" for r in rows)
    assert "0 image(s)" in cli("thumbnails").stdout
