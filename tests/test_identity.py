"""Identity by content never merges different files: two PNGs of one size whose bytes differ
only outside the sampled regions (head, middle and tail 16 KiB) are two images; an
equal-size edit in place updates what the catalog says; copies and moves still share one
image (tests/test_ingest.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from builders import chunk, raw_png
from conftest import Cli, catalog
from dreamdepot.media.identity import SAMPLE

PARAMS = "\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 1x1"


def sampled_twin(path: Path, prompt: str) -> Path:
    """A PNG whose ``parameters`` chunk sits outside every sample: same size and same
    sampled hash for any prompt of the same length."""
    pad = lambda n: chunk(b"tEXt", b"pad\x00" + b"." * n)  # noqa: E731
    body = raw_png()
    head, iend = body[:33], body[-12:]  # signature + IHDR ... IEND
    middle = body[33:-12]
    data = (head + pad(2 * SAMPLE) + chunk(b"tEXt", b"parameters\x00" + (prompt + PARAMS).encode())
            + pad(6 * SAMPLE) + middle + iend)  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def sampled_hash_of(path: Path) -> str:
    from dreamdepot.media.identity import sampled_hash

    with open(path, "rb") as f:
        return sampled_hash(f, path.stat().st_size)


def test_twins_are_two_images_with_both_prompts(cli: Cli, tmp_path: Path) -> None:
    a = sampled_twin(tmp_path / "pics" / "a.png", "a red fox in snow")
    b = sampled_twin(tmp_path / "pics" / "b.png", "a tan cat in rain")
    assert a.stat().st_size == b.stat().st_size and a.read_bytes() != b.read_bytes()
    assert sampled_hash_of(a) == sampled_hash_of(b)  # the collision is real
    cli("add", str(tmp_path / "pics"))
    assert cli.json("stats", "--json")["images"] == 2
    assert len(cli.jsonl("search", "fox", "--json")) == 1
    assert len(cli.jsonl("search", "cat", "--json")) == 1


def test_a_twin_added_later_gets_its_own_image(cli: Cli, tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    sampled_twin(pics / "a.png", "a red fox in snow")
    cli("add", str(pics), "--no-watch")
    cli("tag", "add", "keeper", "fox")
    sampled_twin(pics / "later" / "b.png", "a tan cat in rain")
    cli("scan", "--no-full-hash")  # even before any full hash was recorded
    assert cli.json("stats", "--json")["images"] == 2
    cat = cli.jsonl("search", "cat", "--json")
    assert len(cat) == 1 and "keeper" not in (cat[0].get("tags") or [])
    # a true copy still joins its image
    shutil.copy(pics / "a.png", pics / "later" / "a-copy.png")
    cli("scan")
    assert cli.json("stats", "--json")["images"] == 2
    assert len(cli.jsonl("search", "fox", "--json")[0]["paths"]) == 2


def test_an_already_merged_catalog_is_split_keeping_user_data(cli: Cli, tmp_path: Path) -> None:
    """A catalog written before this check merged the twins; the full-hash stage splits
    them, each image read afresh from its own file, tags, rating and albums on both."""
    pics = tmp_path / "pics"
    sampled_twin(pics / "a.png", "a red fox in snow")
    sampled_twin(pics / "b.png", "a tan cat in rain")
    cli("add", str(pics), "--no-watch")
    conn = catalog(cli.library_path)
    a_id, b_id = (r[0] for r in conn.execute("SELECT id FROM images ORDER BY id"))
    with conn:  # what the old identity did: one image, two files, B's prompt lost
        conn.execute("UPDATE files SET image_id = ?, full_hash = NULL", (a_id,))
        conn.execute("DELETE FROM images WHERE id = ?", (b_id,))
        conn.execute("UPDATE images SET full_hash = NULL")
    cli("tag", "add", "keeper", "")
    conn.close()
    assert cli.json("stats", "--json")["images"] == 1
    cli("scan")
    assert cli.json("stats", "--json")["images"] == 2
    for word in ("fox", "cat"):
        hits = cli.jsonl("search", word, "--json")
        assert len(hits) == 1 and len(hits[0]["paths"]) == 1, word
    assert len(cli.jsonl("search", "tag:keeper", "--json")) == 2


def test_an_equal_size_edit_in_place_updates_the_image(cli: Cli, tmp_path: Path) -> None:
    pics = tmp_path / "pics"
    f = sampled_twin(pics / "a.png", "a red fox in snow")
    cli("add", str(pics), "--no-watch")  # records the full hash too
    cli("tag", "add", "keeper", "fox")
    size = f.stat().st_size
    sampled_twin(f, "a tan cat in rain")
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 5_000_000_000))
    assert f.stat().st_size == size
    cli("scan")
    assert cli.json("stats", "--json")["images"] == 1
    assert cli.jsonl("search", "fox", "--json") == []
    cat = cli.jsonl("search", "cat", "--json")
    assert len(cat) == 1
    assert len(cli.jsonl("search", "tag:keeper cat", "--json")) == 1  # the user's tag followed


def test_an_equal_size_edit_before_any_full_hash_refreshes_the_fields(
    cli: Cli, tmp_path: Path
) -> None:
    pics = tmp_path / "pics"
    f = sampled_twin(pics / "a.png", "a red fox in snow")
    cli("add", "--no-scan", str(pics), "--no-watch")
    cli("scan", "--no-full-hash")
    sampled_twin(f, "a tan cat in rain")
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 5_000_000_000))
    cli("scan", "--no-full-hash")
    assert cli.jsonl("search", "fox", "--json") == []
    assert len(cli.jsonl("search", "cat", "--json")) == 1
    assert cli.json("stats", "--json")["images"] == 1
