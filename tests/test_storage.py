"""Uploads and generated images in an S3-compatible store (issue #16), spoken to with the
same boto3 client code that talks to AWS, MinIO or R2 — here moto's standalone S3 server on
127.0.0.1, a stand-in that answers the documented S3 operations. Files go to the store
first, the catalog records them under the store's prefix, any server serves them through
its cache after the access check, scans never walk the store, and a store that fails is a
retryable error with nothing half-written in the catalog."""

from __future__ import annotations

import hashlib
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from builders import png_bytes
from conftest import Cli, catalog
from server import Server

BUCKET = "dreamdepot-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's S3 server on a free loopback port, a bucket, and the standard AWS variables."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "DREAMDEPOT_STORAGE": f"s3://{BUCKET}/library",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    httpx.post(f"http://127.0.0.1:{port}/moto-api/reset")  # moto keeps state per process
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield server, client
    finally:
        server.stop()


@pytest.fixture
def member(cli: Cli, s3: Any) -> Iterator[tuple[Cli, Server, httpx.Client]]:
    cli("stats")
    cli("users", "add", "root", "--role", "admin", "--password-stdin", input="admin-password\n")
    cli("users", "add", "alice", "--password-stdin", input="alice-password\n")
    key = cli("api-keys", "create", "k", "--user", "alice", "--scopes", "read,write").stdout
    with (
        Server(cli.library_path) as srv,
        httpx.Client(
            base_url=srv.base, headers={"Authorization": f"Bearer {key.split()[-1]}"}
        ) as c,
    ):
        yield cli, srv, c


def test_uploads_live_in_the_store_and_are_served_from_it(member: Any, s3: Any) -> None:
    cli, _, alice = member
    _, client = s3
    data = png_bytes({"parameters": "a harbour in fog\nSteps: 5, Seed: 9, Size: 64x64"}, (64, 64))
    sha = hashlib.sha256(data).hexdigest()
    r = alice.post("/api/uploads", files={"files": ("fog.png", data)})
    assert r.status_code == 200, r.text
    image_id = r.json()["items"][0]["id"]
    key = f"library/uploads/{sha[:2]}/{sha}.png"
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
    conn = catalog(cli.library_path)
    root = conn.execute(
        "SELECT r.path FROM files f JOIN roots r ON r.id = f.root_id WHERE f.image_id = ?",
        (image_id,),
    ).fetchone()[0]
    conn.close()
    assert root == f"s3://{BUCKET}/library/uploads"
    shutil.rmtree(cli.library_path / "cache")  # this server never saw the bytes: fetched again
    assert alice.get(f"/api/images/{image_id}/file").content == data
    assert alice.get(f"/api/images/{image_id}").json()["prompt"] == "a harbour in fog"
    thumb = alice.get(
        f"/api/thumbs/{alice.get(f'/api/images/{image_id}').json()['content_hash']}/256.avif"
    )
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/avif"
    cli("scan")  # a scan does not walk the store, nor call its files missing
    assert alice.get(f"/api/images/{image_id}/file").status_code == 200
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}
    thumbs = {k for k in keys if k.startswith("library/thumbs/")}
    assert keys - thumbs == {key} and thumbs  # the thumbnail made here is shared too
    shutil.rmtree(cli.library_path / "thumbs")  # another server: it fetches, not makes
    again = alice.get(thumb.url.path)
    assert again.status_code == 200 and again.content == thumb.content


def test_a_store_that_fails_is_a_retryable_error_and_nothing_is_written(
    member: Any, s3: Any
) -> None:
    cli, _, alice = member
    server, _ = s3
    server.stop()  # the store goes away
    data = png_bytes({"parameters": "a lost harbour\nSteps: 5, Seed: 1, Size: 64x64"}, (64, 64))
    r = alice.post("/api/uploads", files={"files": ("lost.png", data)})
    assert r.status_code == 503 and "try again" in r.json()["error"], r.text
    conn = catalog(cli.library_path)
    counts = [
        conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("uploads", "images", "files")
    ]
    conn.close()
    assert counts == [0, 0, 0]
    assert not any(p.is_file() for p in (cli.library_path / "cache").rglob("*")) if (
        cli.library_path / "cache").exists() else True  # fmt: skip
    assert not any(p.name.startswith(".incoming") for p in (cli.library_path / "uploads").iterdir())


def test_generated_images_go_to_the_store(cli: Cli, s3: Any, tmp_path: Path) -> None:
    from test_generate import FakeA1111

    _, client = s3
    cli("stats")
    with FakeA1111() as fake:
        toml = cli.library_path / "dreamdepot.toml"
        toml.write_text(f'backend = "a1111"\na1111_url = "{fake.url}"\n' + toml.read_text())
        out = cli.json("generate", "a lantern in the store", "--size", "64x64", "--steps", "2",
                       "--no-cache", "--json")  # fmt: skip
    (image,) = out["images"]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("library/generated/") and keys[0].endswith(".png")
    conn = catalog(cli.library_path)
    root = conn.execute(
        "SELECT r.path FROM files f JOIN roots r ON r.id = f.root_id WHERE f.image_id = ?",
        (image["id"],),
    ).fetchone()[0]
    conn.close()
    assert root == f"s3://{BUCKET}/library/generated"
