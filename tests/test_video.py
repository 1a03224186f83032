"""Videos and animations (issue #18): MP4/MOV/WebM and animated GIF/WebP outputs are indexed
with their generation metadata (as VideoHelperSuite, ComfyUI's SaveVideo and AnimateDiff for
A1111 write it), duration, frames and frame rate; they get a poster thumbnail and a hover
clip, and the server streams them with range requests."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from builders import (
    ANIMATEDIFF_TEXT,
    COMFY_GRAPH,
    COMFY_WORKFLOW,
    animation,
    png,
    vhs_video,
    video,
)
from conftest import Cli
from server import Server


def _outputs(root: Path) -> Path:
    vhs_video(root / "AnimateDiff_00001.mp4")
    video(  # ComfyUI core SaveVideo: one tag per key, kept in MP4 by use_metadata_tags
        root / "ComfyUI_00002_.mp4",
        {"prompt": json.dumps(COMFY_GRAPH), "workflow": json.dumps(COMFY_WORKFLOW)},
        frames=24,
        fps=12,
        options={"movflags": "use_metadata_tags"},
    )
    video(root / "AnimateDiff" / "00003-1234.mp4", {"Comment": ANIMATEDIFF_TEXT})
    video(
        root / "AnimateDiff" / "00004-1234.webm",
        {"Title": ANIMATEDIFF_TEXT, "Comment": ANIMATEDIFF_TEXT},
        codec="libvpx-vp9",
    )
    # VideoHelperSuite's older behaviour: a bare video, the metadata in the PNG beside it
    video(root / "bare_00005.mov", frames=8)
    png(
        root / "bare_00005.png",
        {"prompt": json.dumps(COMFY_GRAPH), "workflow": json.dumps(COMFY_WORKFLOW)},
    )
    animation(root / "loop.gif", "GIF", frames=6, comment=ANIMATEDIFF_TEXT)
    animation(root / "loop.webp", "WEBP", frames=5, delay_ms=200)
    return root


def test_inspect_video_reads_size_duration_and_generation(cli: Cli, tmp_path: Path) -> None:
    root = _outputs(tmp_path / "out")
    vhs = cli.json("inspect", str(root / "AnimateDiff_00001.mp4"), "--json")
    assert (vhs["width"], vhs["height"], vhs["duration"], vhs["frames"]) == (64, 48, 2.0, 16)
    assert vhs["fps"] == 8.0 and vhs["format"] == "mp4"
    assert vhs["generator"] == "comfyui" and vhs["prompt"] == "a red fox running in snow"
    assert vhs["seed"] == 5 and vhs["model"] == "dreamshaper_8.safetensors"
    core = cli.json("inspect", str(root / "ComfyUI_00002_.mp4"), "--json")
    assert (core["duration"], core["frames"], core["fps"]) == (2.0, 24, 12.0)
    assert core["source"] == ["mp4:tag:prompt", "mp4:tag:workflow"]
    ad = cli.json("inspect", str(root / "AnimateDiff" / "00003-1234.mp4"), "--json")
    # the infotext says the render was 512x512; the file's own size stands
    assert (ad["generator"], ad["seed"], ad["width"], ad["height"]) == ("a1111", 1234, 64, 48)
    assert ad["params"]["AnimateDiff"].startswith("enable: True")
    webm = cli.json("inspect", str(root / "AnimateDiff" / "00004-1234.webm"), "--json")
    assert (
        webm["format"] == "webm" and webm["duration"] == 2.0 and webm["prompt"] == "a cat on a sofa"
    )
    bare = cli.json("inspect", str(root / "bare_00005.mov"), "--json")
    assert bare["format"] == "mov" and bare["prompt"] == "a red fox running in snow"
    assert bare["source"][0].startswith("sidecar:bare_00005.png:")
    gif = cli.json("inspect", str(root / "loop.gif"), "--json")
    assert (gif["frames"], gif["duration"], gif["fps"]) == (6, 0.6, 10.0)  # 10 ms units
    assert gif["seed"] == 1234  # A1111's infotext in the GIF comment
    webp = cli.json("inspect", str(root / "loop.webp"), "--json")
    assert (webp["frames"], webp["duration"]) == (5, 1.0)


def test_videos_are_indexed_counted_searched_and_thumbnailed(cli: Cli, tmp_path: Path) -> None:
    root = _outputs(tmp_path / "out")
    cli("add", str(root))
    stats = cli.json("stats", "--json")
    assert stats["images"] == 8 and stats["videos"] == 5 and stats["animations"] == 2
    assert stats["scan_errors"] == 0
    videos = cli.jsonl("search", "video", "--json")
    assert len(videos) == 5 and {v["format"] for v in videos} == {"mp4", "webm", "mov"}
    longer = cli.jsonl("search", "animated duration:>1.5", "--json")
    assert sorted(v["duration"] for v in longer) == [2.0] * 4  # not the 1 s MOV, GIF, WebP
    fox = cli.jsonl("search", "fox video", "--json")
    assert {Path(v["paths"][0]).name for v in fox} >= {"AnimateDiff_00001.mp4", "bare_00005.mov"}
    cli("thumbnails")
    thumbs = cli.library_path / "thumbs"
    assert len(list(thumbs.rglob("*-preview.mp4"))) == 7  # every video and animation
    assert len(list(thumbs.rglob("*-256.avif"))) == 8
    assert cli.json("stats", "--json")["pixel_errors"] == 0


def test_a_broken_video_is_reported_and_the_rest_indexed(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "out"
    good = vhs_video(root / "good.mp4")
    data = good.read_bytes()
    (root / "cut.mp4").write_bytes(data[:40])  # the header box, then nothing
    (root / "junk.webm").write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 64)
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    cli("add", str(root))
    stats = cli.json("stats", "--json")
    assert stats["videos"] == 1 and stats["scan_errors"] == 2
    doctor = cli("doctor").stdout
    assert "cut.mp4" in doctor and "junk.webm" in doctor
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before  # never modified


def test_server_streams_videos_with_ranges_and_serves_clips(cli: Cli, tmp_path: Path) -> None:
    root = _outputs(tmp_path / "out")
    cli("add", str(root))
    cli("thumbnails")
    with Server(cli.library_path) as srv:
        items = httpx.get(srv.base + "/api/images", params={"q": "video format:mp4"}).json()
        item = next(i for i in items["items"] if i["generator"] == "comfyui")
        assert item["media"] == "video" and item["duration"] == 2.0
        r = httpx.get(srv.base + item["file_url"], headers={"Range": "bytes=0-99"})
        assert r.status_code == 206 and r.headers["content-type"] == "video/mp4"
        assert len(r.content) == 100 and r.content[4:8] == b"ftyp"
        clip = httpx.get(srv.base + item["clip_url"])
        assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
        assert clip.content[4:8] == b"ftyp"
        detail = httpx.get(srv.base + f"/api/images/{item['id']}").json()
        assert (detail["frame_count"], detail["fps"]) in ((16, 8.0), (24, 12.0))
        gif = httpx.get(srv.base + "/api/images", params={"q": "format:gif"}).json()["items"][0]
        assert gif["media"] == "animation" and gif["clip_url"].endswith(".mp4")
        still = httpx.get(srv.base + "/api/images", params={"q": "format:png"}).json()["items"][0]
        assert still["media"] == "image" and "clip_url" not in still
        assert httpx.get(srv.base + "/api/clips/" + "0" * 32 + ".mp4").status_code == 404
        thumb = httpx.get(srv.base + item["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/avif"


@pytest.mark.sqlite_only("an older SQLite catalog upgraded in place")
def test_animations_indexed_before_videos_are_read_again(cli: Cli, tmp_path: Path) -> None:
    """Schema 12 makes the next scan read GIF/WebP files again, so an animation indexed by an
    older version gets its duration; the user's rating stays."""
    root = tmp_path / "out"
    animation(root / "loop.gif", "GIF")
    cli("add", str(root))
    [item] = cli.jsonl("search", "", "--json")
    cli("rate", "4", f"id:{item['id']}")
    db = sqlite3.connect(cli.library_path / "catalog.sqlite")
    with db:  # back to schema 11, as an older version left the library
        for table in ("user_marks", "invitations", "uploads", "sessions", "api_keys", "workers"):
            db.execute(f"DROP TABLE {table}")
        for index in ("images_owner", "jobs_queued", "users_oidc_subject", "cache_events_user"):
            db.execute(f"DROP INDEX {index}")
        for table, column in (("albums", "owner_id"), ("albums", "shared"),
                              ("cache_events", "user_id"), ("users", "cache_opt_out"),
                              ("users", "oidc_subject"), ("images", "owner_id"),
                              ("images", "shared"), ("jobs", "user_id"),
                              ("jobs", "priority"), ("jobs", "worker")):  # fmt: skip
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        db.execute("DROP TABLE users")
        db.execute("DROP INDEX images_animated")
        for column in ("duration", "frame_count", "fps", "preview_key"):
            db.execute(f"ALTER TABLE images DROP COLUMN {column}")
        db.execute("PRAGMA user_version = 11")
    db.close()
    cli("add", str(root))  # opening migrates to 12; the scan reads the GIF again
    [again] = cli.jsonl("search", "animated", "--json")
    assert again["id"] == item["id"] and again["rating"] == 4 and again["duration"] == 0.6


@pytest.mark.parametrize("name", ["clip.mp4", "clip.webm"])
def test_a_video_without_metadata_still_indexes(cli: Cli, tmp_path: Path, name: str) -> None:
    root = tmp_path / "out"
    video(root / name, codec="libvpx-vp9" if name.endswith("webm") else "libx264")
    cli("add", str(root))
    [item] = cli.jsonl("search", "video", "--json")
    assert item["generator"] is None and item["duration"] == 2.0
