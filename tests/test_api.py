"""The HTTP API against a real server (uvicorn on a free port) over a temporary library."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from builders import A1111_TEXT, png
from conftest import Cli
from dreamdepot.library import Library
from server import Server


def _library(tmp_path: Path, n: int = 30) -> tuple[Path, Path]:
    root = tmp_path / "pics"
    for i in range(n):
        text = A1111_TEXT.replace("Seed: 1234", f"Seed: {i}").replace(
            "a red fox", "a red fox" if i % 3 else "a blue whale"
        )
        im = Image.new("RGB", (64 + i, 48), (i * 8 % 256, 100, 150))
        png(root / f"img_{i:03d}.png", {"parameters": text}, im=im)
        os.utime(root / f"img_{i:03d}.png", ns=(1, 1_700_000_000_000_000_000))  # same second
    lib_path = tmp_path / "lib"
    with Library.open(lib_path) as lib:
        lib.indexer(workers=1).scan([lib.add_root(root)])
    return lib_path, root


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[httpx.Client, Path, Path]]:
    lib_path, root = _library(tmp_path)
    with Server(lib_path) as srv, httpx.Client(base_url=srv.base, timeout=30) as client:
        yield client, lib_path, root


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def test_list_pages_every_image_exactly_once_even_with_equal_timestamps(served: Any) -> None:
    client, _, _ = served
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = _ok(client.get("/api/images", params=params))
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == list(range(1, 31)) and len(seen) == len(set(seen))
    item = page["items"][0]
    assert item["placeholder"].startswith("data:image/")
    assert item["thumbnail_url"].startswith("/api/thumbs/")


def test_query_language_over_http_and_errors(served: Any) -> None:
    client, _, _ = served
    whales = _ok(client.get("/api/images", params={"q": "whale seed:0..12 sort:seed:asc"}))
    assert [i["seed"] for i in whales["items"]] == [0, 3, 6, 9, 12]
    assert _ok(client.get("/api/images/count", params={"q": "fox OR whale"}))["count"] == 30
    bad = client.get("/api/images", params={"q": "steps:>>3"})
    assert bad.status_code == 400 and bad.json()["position"] == 0 and "steps" in bad.json()["error"]
    assert client.get("/api/images", params={"q": "nope:1"}).status_code == 400
    assert client.get("/api/images", params={"cursor": "garbage!"}).status_code == 400
    assert client.get("/api/images", params={"limit": 10**9}).status_code == 422
    big = _ok(client.get("/api/images", params={"limit": 5000}))
    assert len(big["items"]) == 30
    assert client.get("/api/images/999").status_code == 404
    assert client.get("/api/images/abc").status_code == 422
    # a word with nothing to search for (a control mark) narrows nothing, on every face
    for path in ("/api/images", "/api/images/count"):
        assert client.get(path, params={"q": "\x1b"}).status_code == 200
    assert _ok(client.get("/api/images/count", params={"q": "\x1b"}))["count"] == 30


def test_detail_rating_favourite_and_raw(served: Any) -> None:
    client, _, _ = served
    d = _ok(client.get("/api/images/1"))
    assert d["prompt"].startswith("a blue whale") and d["negative_prompt"] == "lowres, blurry"
    assert d["loras"][0]["name"] == "foxy" and d["files"][0]["state"] == "present"
    _ok(client.put("/api/images/1/rating", json={"rating": 5}))
    _ok(client.put("/api/images/1/favorite", json={"favorite": True}))
    assert _ok(client.get("/api/images", params={"q": "rating:>=4 fav"}))["items"][0]["id"] == 1
    r = client.put("/api/images/1/rating", json={"rating": 9})
    assert r.status_code == 422 and r.json()["fields"] == ["rating"]
    assert client.put("/api/images/99/rating", json={"rating": 1}).status_code == 404
    assert "Steps: 25" in _ok(client.get("/api/images/1/raw"))["raw"]


def test_tags_by_ids_and_by_query_with_counts(served: Any) -> None:
    client, _, _ = served
    _ok(client.post("/api/tags", json={"tags": ["ocean"], "q": "whale"}))
    _ok(client.post("/api/tags", json={"tags": ["pick", "ocean"], "ids": [2, 3]}))
    counts = {t["name"]: t["count"] for t in _ok(client.get("/api/tags"))["tags"]}
    assert counts == {"ocean": 12, "pick": 2}
    scoped = {
        t["name"]: t["count"] for t in _ok(client.get("/api/tags", params={"q": "fox"}))["tags"]
    }
    assert scoped == {"ocean": 2, "pick": 2}
    _ok(client.post("/api/tags", json={"tags": ["ocean"], "q": "fox", "remove": True}))
    assert _ok(client.get("/api/images/count", params={"q": "tag:ocean"}))["count"] == 10
    assert client.post("/api/tags", json={"tags": ["x"], "ids": [1, 999]}).status_code == 404
    assert client.post("/api/tags", json={"tags": ["x"]}).status_code == 422
    assert (
        _ok(client.get("/api/tags/suggest", params={"prefix": "oc"}))["tags"][0]["name"] == "ocean"
    )


def test_albums(served: Any) -> None:
    client, _, _ = served
    album = _ok(client.post("/api/albums", json={"name": "Best of"}), 201)
    assert client.post("/api/albums", json={"name": "best OF"}).status_code == 409
    _ok(client.post(f"/api/albums/{album['id']}/images", json={"q": "whale"}))
    _ok(client.request("DELETE", f"/api/albums/{album['id']}/images", json={"ids": [1]}))
    assert _ok(client.get("/api/albums"))["albums"][0]["count"] == 9
    assert _ok(client.get("/api/images/count", params={"q": 'album:"best of"'}))["count"] == 9
    assert client.post("/api/albums/77/images", json={"ids": [1]}).status_code == 404


def test_prompts_list_and_detail(served: Any) -> None:
    client, _, _ = served
    prompts = _ok(client.get("/api/prompts", params={"limit": 1}))
    top = prompts["items"][0]
    assert top["image_count"] == 20 and top["text"].startswith("a red fox")
    assert len(top["images"]) == 6 and prompts["next_cursor"]
    second = _ok(client.get("/api/prompts", params={"limit": 1, "cursor": prompts["next_cursor"]}))
    assert second["items"][0]["image_count"] == 10 and second["next_cursor"] is None
    found = _ok(client.get("/api/prompts", params={"q": "wha*"}))
    assert [p["image_count"] for p in found["items"]] == [10]
    detail = _ok(client.get(f"/api/prompts/{top['id']}", params={"limit": 100}))
    assert len(detail["images"]) == 20 and detail["negatives"][0]["text"] == "lowres, blurry"
    assert client.get("/api/prompts/999").status_code == 404
    assert client.get("/api/prompts", params={"sort": "bogus"}).status_code == 400


def test_thumbnails_are_avif_content_addressed_and_immutable(served: Any) -> None:
    client, _, _ = served
    item = _ok(client.get("/api/images", params={"q": "id:5"}))["items"][0]
    r = client.get(item["thumbnail_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/avif"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.content[4:12] == b"ftypavif"
    # made on demand, then placeholder and perceptual hash are recorded
    after = _ok(client.get("/api/images", params={"q": "id:5"}))["items"][0]
    assert after["placeholder"].startswith("data:image/webp;base64,")
    preview = client.get(item["preview_url"])
    assert preview.status_code == 200
    assert client.get("/api/thumbs/deadbeef/256.avif").status_code == 404
    assert client.get(f"/api/thumbs/{item['content_hash']}/999.avif").status_code == 404


def test_a_corrupt_image_gets_a_fallback_thumbnail_and_a_reason(served: Any) -> None:
    client, lib_path, root = served
    item = _ok(client.get("/api/images", params={"q": "seed:7"}))["items"][0]
    path = root / "img_007.png"
    data = bytearray(path.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 8 : idat + 40] = b"\x00" * 32  # pixels broken, header and chunks intact
    path.write_bytes(bytes(data))
    r = client.get(item["thumbnail_url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/avif"
    assert r.headers["cache-control"] == "no-store"
    with Library.open(lib_path) as lib:
        reason = lib.conn.execute(
            "SELECT media_error FROM images WHERE id = ?", (item["id"],)
        ).fetchone()[0]
    assert "cannot decode" in reason


def test_originals_are_confined_to_the_roots(served: Any, tmp_path: Path) -> None:
    client, _, root = served
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, root / "link-out.png")
    r = client.get("/api/images/3/file")
    assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
    assert client.get("/files/1/img_003.png").status_code == 200
    for probe in (
        "../secret.txt",
        "..%2Fsecret.txt",
        "%2e%2e/secret.txt",
        "%2Fetc%2Fpasswd",
        "link-out.png",
        "a/../../secret.txt",
        "..%252Fsecret.txt",
    ):
        r = client.get(f"/files/1/{probe}")
        assert r.status_code == 404, probe
        assert b"top secret" not in r.content
    raw = httpx.get(f"{client.base_url}/files/1/..%2f..%2fsecret.txt")
    assert raw.status_code == 404
    assert client.get("/files/99/img_003.png").status_code == 404


def test_similar_by_look_and_dupes(served: Any) -> None:
    client, lib_path, _ = served
    with Library.open(lib_path) as lib:
        assert lib.make_thumbnails() == 30
    near = _ok(client.get("/api/images/1/similar", params={"max_distance": 64}))
    assert near["items"] and all(
        a["distance"] <= b["distance"]
        for a, b in zip(near["items"], near["items"][1:], strict=False)
    )
    dupes = _ok(client.get("/api/images/count", params={"q": "dupes"}))["count"]
    assert dupes >= 2  # flat-colour images of similar shades share a dHash


def test_stats_and_openapi(served: Any) -> None:
    client, _, _ = served
    s = _ok(client.get("/api/stats"))
    assert s["images"] == 30 and s["prompts"] == 2
    spec = _ok(client.get("/openapi.json"))
    assert "/api/images" in spec["paths"] and "/api/tags" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_server_sent_events_report_a_scan(served: Any) -> None:
    client, _, root = served
    png(root / "new.png", {"parameters": A1111_TEXT.replace("Seed: 1234", "Seed: 4242")})
    events: list[str] = []

    def listen() -> None:
        with httpx.stream("GET", f"{client.base_url}/api/events", timeout=20) as r:
            for line in r.iter_lines():
                events.append(line)
                if '"stage": "done"' in line and "new_images" in line:
                    return

    t = threading.Thread(target=listen, daemon=True)
    t.start()
    time.sleep(0.5)
    assert _ok(client.post("/api/scan"), 202)["started"] is True
    t.join(timeout=20)
    assert any("event: scan" in e for e in events)
    done = [json.loads(e[6:]) for e in events if e.startswith("data: ") and "new_images" in e]
    assert done and done[-1]["new_images"] == 1


def test_token_is_required_for_everything_when_configured(tmp_path: Path) -> None:
    lib_path, _ = _library(tmp_path, n=2)
    with Server(lib_path, token="s3cret-token") as srv:
        base = srv.base
        for path in (
            "/api/images",
            "/api/images/1/file",
            "/files/1/img_000.png",
            "/api/stats",
            "/",
            "/openapi.json",
        ):
            assert httpx.get(base + path).status_code == 401, path
        assert (
            httpx.get(base + "/api/images", headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        ok = httpx.get(base + "/api/images", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200
        with httpx.Client(base_url=base) as c:
            assert c.get("/api/stats", params={"token": "s3cret-token"}).status_code == 200
            assert c.get("/api/images/1/file").status_code == 200  # the cookie now carries it


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dreamdepot.cli import app

    result = CliRunner().invoke(
        app,
        [
            "--library",
            str(tmp_path / "l"),
            "serve",
            "--host",
            "0.0.0.0",
            "--no-browser",
            "--no-demo",
        ],
    )
    assert result.exit_code == 2 and "without an access token" in result.stderr


@pytest.mark.sqlite_only(
    "builds its catalog file directly; the PostgreSQL parity tests cover counts"
)
def test_partial_tag_counts_count_exactly_the_sample(tmp_path: Path) -> None:
    """Over COUNT_SAMPLE matches, counts are over the newest COUNT_SAMPLE images: not one
    more (the extra row only tells that there were more)."""

    from dreamdepot.catalog import tags as catalog_tags
    from dreamdepot.catalog.db import connect
    from dreamdepot.catalog.query import parse

    conn = connect(tmp_path / "catalog.sqlite")
    n = catalog_tags.COUNT_SAMPLE + 5
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO images(content_hash, bytes, format, width, height, created_at, indexed_at,"
        " steps) VALUES (?, 1, 'png', 1, 1, ?, 0, 20)",
        [(f"h{i}", float(i)) for i in range(n)],
    )
    tid = catalog_tags.tag_id(conn, "everywhere")
    conn.executemany(
        "INSERT INTO image_tags(tag_id, image_id, source, created_at) VALUES (?, ?, 'user', 0)",
        [(tid, i + 1) for i in range(n)],
    )
    conn.execute("COMMIT")
    result = catalog_tags.tag_counts(conn, parse("steps:20"))
    assert result["partial"] and result["sample"] == catalog_tags.COUNT_SAMPLE
    assert result["tags"][0]["count"] == catalog_tags.COUNT_SAMPLE


def test_the_comfyui_workflow_of_an_image_for_its_canvas(cli: Cli, tmp_path: Path) -> None:
    """Issue #18: 'copy ComfyUI workflow' gets the UI graph from the file itself."""
    root = tmp_path / "comfy"
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 4, "cfg": 7,
             "sampler_name": "euler", "scheduler": "normal", "denoise": 1}}}  # fmt: skip
    workflow = {"nodes": [{"id": 3, "type": "KSampler"}], "links": []}
    png(root / "c.png", {"prompt": json.dumps(graph), "workflow": json.dumps(workflow)})
    png(root / "a.png", {"parameters": "a fox\nSteps: 5, Seed: 1, Size: 64x64"})
    cli("add", str(root))
    ids = {Path(i["paths"][0]).name: i["id"] for i in cli.jsonl("search", "", "--json")}
    with Server(cli.library_path) as srv:
        r = httpx.get(f"{srv.base}/api/images/{ids['c.png']}/workflow")
        assert r.status_code == 200 and json.loads(r.json()["workflow"]) == workflow
        assert httpx.get(f"{srv.base}/api/images/{ids['a.png']}/workflow").status_code == 404
