"""Identity by content, moves, offline roots, and every kind of bad input: through the CLI
where a user would see it, through the Indexer where the case needs a precise set-up."""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from pathlib import Path

import pytest

from builders import A1111_TEXT, chunk, png, raw_png, text_chunk
from conftest import ENGINE, Cli, catalog, integrity_problems
from dreamdepot.ingest import pipeline, scanner
from dreamdepot.library import Library


def _make(root: Path, n: int, sub: str = "") -> list[Path]:
    paths = []
    for i in range(n):
        text = A1111_TEXT.replace("Seed: 1234", f"Seed: {5000 + i}")
        paths.append(
            png(
                root / sub / f"img_{i:03d}.png",
                {"parameters": text},
            )
        )
    return paths


def _rows(library_path: Path, sql: str) -> list[tuple]:
    conn = catalog(library_path)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def test_moved_and_renamed_files_keep_tags_rating_and_history(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _make(root, 10, "batch")
    cli("add", str(root))
    cli("tag", "add", "keep", "seed:5003")
    first_id = cli.jsonl("search", "seed:5003", "--json")[0]["id"]
    (root / "moved").mkdir()
    shutil.move(root / "batch" / "img_003.png", root / "moved" / "renamed.png")
    out = cli("scan").stdout
    assert "1 moved" in out and "0 new images" in out
    again = cli.jsonl("search", "tag:keep", "--json")
    assert [a["id"] for a in again] == [first_id]
    assert again[0]["paths"] == [str((root / "moved" / "renamed.png").resolve())]
    assert _rows(cli.library_path, "SELECT count(*) FROM files")[0][0] == 10


def test_a_copy_is_one_image_with_two_files(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    [p] = _make(root, 1)
    shutil.copy(p, root / "copy.png")
    cli("add", str(root))
    [img] = cli.jsonl("search", "--json")
    assert len(img["paths"]) == 2


def test_content_changed_in_place_carries_tags_to_the_new_content(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    [p] = _make(root, 1)
    cli("add", str(root))
    cli("tag", "add", "edited-later", "")
    png(p, {"parameters": A1111_TEXT.replace("Seed: 1234", "Seed: 42")})
    os.utime(p, ns=(1, 1_700_000_000_000_000_000))
    cli("scan")
    [img] = cli.jsonl("search", "tag:edited-later", "--json")
    assert img["seed"] == 42
    assert cli.json("stats", "--json")["images"] == 1


def test_deleted_files_are_missing_and_keep_tags_until_prune(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    paths = _make(root, 3)
    cli("add", str(root))
    cli("tag", "add", "t", "")
    paths[0].unlink()
    cli("scan")
    assert len(cli.jsonl("search", "missing", "--json")) == 1
    assert len(cli.jsonl("search", "tag:t", "--json")) == 3
    png(paths[0], {"parameters": A1111_TEXT.replace("Seed: 1234", "Seed: 5000")})
    os.utime(paths[0], ns=(1, 1))
    cli("scan")
    assert cli.jsonl("search", "missing", "--json") == []
    assert len(cli.jsonl("search", "tag:t", "--json")) == 3


def test_an_unreachable_root_goes_offline_and_nothing_is_deleted(cli: Cli, tmp_path: Path) -> None:
    drive = tmp_path / "usb"
    _make(drive, 4)
    cli("add", str(drive))
    cli("tag", "add", "on-usb", "")
    drive.rename(tmp_path / "unplugged")
    out = cli("scan").stdout
    assert "offline" in out
    s = cli.json("stats", "--json")
    assert s["images"] == 4 and s["offline_files"] == 4 and s["missing_files"] == 0
    assert s["roots"][0]["online"] == 0
    assert len(cli.jsonl("search", "tag:on-usb", "--json")) == 4
    (tmp_path / "unplugged").rename(drive)
    cli("scan")
    s = cli.json("stats", "--json")
    assert s["files"] == 4 and s["offline_files"] == 0 and s["roots"][0]["online"] == 1


def test_rescan_notices_a_replaced_and_a_deleted_file_in_an_unchanged_folder(
    cli: Cli, tmp_path: Path
) -> None:
    root = tmp_path / "pics"
    paths = _make(root, 5, "d")
    cli("add", str(root))
    mtime = os.stat(root / "d").st_mtime_ns
    paths[1].unlink()
    png(paths[2], {"parameters": A1111_TEXT.replace("Seed: 1234", "Seed: 777")})
    os.utime(root / "d", ns=(mtime, mtime))  # the folder looks untouched
    cli("scan")
    assert len(cli.jsonl("search", "missing", "--json")) == 1
    assert cli.jsonl("search", "seed:777", "--json")


def test_bad_files_are_recorded_with_reasons_and_the_scan_goes_on(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    good = _make(root, 2)
    data = good[0].read_bytes()
    (root / "zero.png").write_bytes(b"")
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "garbage.webp").write_bytes(os.urandom(4000))
    (root / "fake.gif").write_text("GIF? no")
    (root / "header-only.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    (root / "renamed-png.jpeg").write_bytes(data)  # a PNG with a JPEG name: indexed
    (root / "dir.png").mkdir()
    cli("add", str(root))
    s = cli.json("stats", "--json")
    assert s["images"] == 2 and s["files"] == 3 and s["scan_errors"] == 5
    reasons = {
        Path(e["path"]).name: e["reason"] for e in cli.json("doctor", "--json")["unreadable"]
    }
    assert set(reasons) == {
        "zero.png",
        "truncated.png",
        "garbage.webp",
        "fake.gif",
        "header-only.jpg",
    }
    # unchanged bad files are not re-read on every scan, changed ones are
    assert "0 read" in cli("scan").stdout
    shutil.copy(good[1], root / "truncated.png")
    cli("scan")
    assert "truncated.png" not in {
        Path(e["path"]).name for e in cli.json("doctor", "--json")["unreadable"]
    }


def test_unreadable_for_permissions(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pics"
    paths = _make(root, 2)
    if os.geteuid() != 0:
        paths[0].chmod(0)
    else:  # root reads anything: make the OS refuse as it would for a normal user
        real_open = os.open

        def refusing_open(path: str, flags: int, *a: object) -> int:
            if str(path).endswith(paths[0].name):
                raise PermissionError(13, "Permission denied", path)
            return real_open(path, flags, *a)

        monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setenv("DREAMDEPOT_WORKERS", "1")
    cli("add", str(root))
    [err] = cli.json("doctor", "--json")["unreadable"]
    assert "permission denied" in err["reason"]


def test_a_file_deleted_between_listing_and_reading_is_not_an_error(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pics"
    _make(root, 3)
    real_walk = scanner.walk

    def walk_with_ghost(
        path: str, problems: scanner.WalkProblems, skip: frozenset[str] = frozenset()
    ):
        yield from real_walk(path, problems, skip)
        yield scanner.Seen("ghost.png", 100, 1)  # listed, then deleted before the read

    monkeypatch.setattr(pipeline, "walk", walk_with_ghost)
    stats = library.indexer(workers=1).scan([library.add_root(root)])
    assert stats.new_images == 3 and stats.errors == 0
    assert library.conn.execute("SELECT count(*) FROM scan_errors").fetchone()[0] == 0


def test_symlink_loops_and_links_out_of_the_root(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _make(root, 2, "a")
    outside = tmp_path / "elsewhere"
    _make(outside, 1)
    os.symlink(root, root / "a" / "loop")
    os.symlink(root / "a", root / "alias")
    os.symlink(outside, root / "escape")
    os.symlink(outside / "img_000.png", root / "escape.png")
    cli("add", str(root))
    s = cli.json("stats", "--json")
    assert s["images"] == 2
    # each folder is entered once: the alias and the loop lead nowhere new
    assert s["files"] == 2


def test_non_utf8_file_names_round_trip(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    [p] = _make(root, 1)
    weird = os.fsdecode(bytes(root) + b"/caf\xe9-\xff.png")
    os.rename(p, weird)
    cli("add", str(root))
    if ENGINE == "postgresql":  # text holds UTF-8 only: the file is reported, not renamed
        assert "1 unreadable" in cli("scan").stdout
        [(name, reason)] = _rows(cli.library_path, "SELECT rel_path, reason FROM scan_errors")
        assert name == "caf\\xe9-\\xff.png" and "not valid UTF-8" in reason
        assert Path(weird).is_file() and cli.jsonl("search", "--json") == []
        return
    [row] = _rows(cli.library_path, "SELECT typeof(rel_path), rel_path FROM files")
    assert row[0] == "blob" and row[1] == b"caf\xe9-\xff.png"
    [img] = cli.jsonl("search", "--json")
    assert img["paths"][0].endswith(".png")
    assert "1 missing" not in cli("scan").stdout  # the path matches on re-scan
    assert len(cli.jsonl("export")) == 1


def test_hostile_metadata_is_bounded(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    root.mkdir()
    huge = "x" * (24 * 1024 * 1024)
    (root / "huge-chunk.png").write_bytes(raw_png([text_chunk("parameters", huge)]))
    deep = "[" * 200_000 + "]" * 200_000
    (root / "deep.png").write_bytes(raw_png([text_chunk("prompt", '{"1": ' + deep + "}")]))
    bomb = (
        b"iTXt",
        b"parameters\x00\x01\x00\x00\x00" + __import__("zlib").compress(b"a" * 60_000_000, 9),
    )
    (root / "bomb.png").write_bytes(raw_png([bomb]))
    many = [text_chunk(f"k{i}", "v") for i in range(20_000)]
    (root / "many.png").write_bytes(raw_png(many))
    tracemalloc.start()
    os.environ["DREAMDEPOT_WORKERS"] = "1"
    cli("add", str(root))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 200 * 1024 * 1024
    s = cli.json("stats", "--json")
    assert s["images"] == 4 and s["scan_errors"] == 0
    meta = {Path(m["path"]).name: m["reason"] for m in cli.json("doctor", "--json")["metadata"]}
    assert "skipped" in meta["huge-chunk.png"]
    assert "deeply" in meta["deep.png"]
    assert "cap" in meta["bomb.png"]


@pytest.mark.engine_independent(
    "the scanner on one huge folder (bench/ingest.py --postgresql measures PostgreSQL ingest)"
)
def test_a_flat_folder_of_50000_files(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "flat"
    root.mkdir()
    base = raw_png()
    iend = chunk(b"IEND", b"")
    body = base[: -len(iend)]
    for i in range(50_000):
        data = (
            body
            + chunk(
                b"tEXt",
                b"parameters\x00"
                + (f"flat {i % 50}\nSteps: 20, Sampler: Euler, Seed: {i}, Size: 1x1").encode(),
            )
            + iend
        )
        (root / f"{i:05d}.png").write_bytes(data)
    out = cli("add", str(root)).stdout
    assert "50,000 new images" in out
    assert cli.jsonl("search", "seed:49999", "--json")[0]["prompt"] == "flat 49"
    assert "0 read" in cli("scan").stdout


def test_the_scan_resumes_after_an_interrupt(
    library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pics"
    _make(root, 200)
    lib_root = library.add_root(root)
    calls = {"n": 0}
    real_apply = library.indexer().writer.apply.__func__  # type: ignore[attr-defined]

    def interrupted_apply(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_apply(self, *args, **kwargs)

    from dreamdepot.catalog.ingest_writer import IngestWriter

    monkeypatch.setattr(IngestWriter, "apply", interrupted_apply)
    indexer = library.indexer(workers=1)
    indexer.batch_size = 10
    with pytest.raises(KeyboardInterrupt):
        indexer.scan([lib_root])
    done = library.conn.execute("SELECT count(*) FROM files").fetchone()[0]
    assert 0 < done < 200
    monkeypatch.setattr(IngestWriter, "apply", real_apply)
    stats = library.indexer(workers=1).scan([lib_root])
    assert stats.probed == 200 - done
    assert library.conn.execute("SELECT count(*) FROM files").fetchone()[0] == 200
    assert integrity_problems(library.path) == []


def test_generation_fields_are_typed_columns(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    _make(root, 1)
    cli("add", str(root))
    typeof = "pg_typeof({})::text" if ENGINE == "postgresql" else "typeof({})"
    [row] = _rows(
        cli.library_path,
        f"SELECT {typeof.format('seed')}, {typeof.format('steps')}, "
        f"{typeof.format('cfg_scale')}, model, sampler, scheduler, loras FROM images",
    )
    expected = {
        "sqlite": ("integer", "integer", "real"),
        "postgresql": ("bigint", "integer", "double precision"),
    }
    assert row[:3] == expected[ENGINE]
    assert row[3:6] == ("v1-5-pruned-emaonly", "DPM++ 2M", "Karras")
    assert json.loads(row[6])[0]["name"] == "foxy"
