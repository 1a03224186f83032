"""The catalog on PostgreSQL (issue #15, first part): `dreamdepot migrate --to URL` moves an
embedded library into a real PostgreSQL 16 (pgserver) with nothing lost, verified by row
counts and checksums, safely again; the query language answers the same on both engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import Cli, catalog
from dreamdepot.catalog.query import parse

pytestmark = pytest.mark.sqlite_only("moves an embedded (SQLite) library into PostgreSQL")
psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def demo_library(cli: Cli) -> Cli:
    """The demo library with what a user adds: tags (user and automatic, with confidences),
    ratings, favourites, an album, a rejected tag, a cache event."""
    cli("demo", "--count", "60")
    cli("tag", "add", "keeper", "lighthouse")
    cli("tag", "add", "best", "cabin OR ramen")
    cli("rate", "4", "lighthouse")
    conn = catalog(cli.library_path)
    with conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM images ORDER BY id")]
        conn.execute("UPDATE images SET favorite = 1 WHERE id IN (?, ?)", (ids[0], ids[5]))
        conn.execute("INSERT INTO albums(name, created_at) VALUES ('Trip', 1.5)")
        conn.executemany(
            "INSERT INTO album_images(album_id, image_id, added_at) VALUES (1, ?, 2.0)",
            [(i,) for i in ids[:7]],
        )
        conn.execute("INSERT INTO tags(name, kind, created_at) VALUES ('colour:red', 'auto', 1)")
        conn.executemany(
            "INSERT INTO image_tags(tag_id, image_id, source, confidence, created_at, tagger) "
            "VALUES ((SELECT id FROM tags WHERE name = 'colour:red'), ?, 'auto', 0.83, 3.0, "
            "'colour')",
            [(i,) for i in ids[10:30]],
        )
        conn.execute(
            "INSERT INTO rejected_tags(image_id, tag_id, at) VALUES (?, "
            "(SELECT id FROM tags WHERE name = 'colour:red'), 4.0)",
            (ids[40],),
        )
        conn.execute(
            "INSERT INTO cache_events(at, prompt, decision, similarity, reason) "
            "VALUES (5.0, 'a castle', 'miss', 0.71, 'difference')"
        )
    conn.close()
    return cli


def test_migrate_moves_a_library_losslessly_and_again(demo_library: Cli, postgres_url: str) -> None:
    cli = demo_library
    report = json.loads(cli("migrate", "--to", postgres_url, "--json").stdout)
    assert report["same"] is True
    rows = {t["name"]: t["target_rows"] for t in report["tables"]}
    assert rows["images"] == 60 and rows["files"] == 60 and rows["album_images"] == 7
    assert rows["image_tags"] > 20 and rows["prompts"] > 0 and rows["folder_counts"] > 0
    assert rows["rejected_tags"] == 1 and rows["cache_events"] == 1
    again = cli("migrate", "--to", postgres_url)  # replaces, never doubles
    assert "Every table arrived unchanged." in again.stdout
    with psycopg.connect(postgres_url) as pg:
        assert pg.execute("SELECT count(*) FROM images").fetchone()[0] == 60
        red = pg.execute("SELECT image_count FROM tags WHERE name = 'colour:red'").fetchone()[0]
        assert red == 20  # the counter as SQLite kept it
        # the catalog's own triggers work there: a new tag keeps its counter and the time
        pg.execute(
            "INSERT INTO image_tags(tag_id, image_id, source, created_at) "
            "SELECT id, (SELECT min(id) FROM images), 'user', 9.0 FROM tags "
            "WHERE name = 'colour:red'"
        )
        assert (
            pg.execute("SELECT image_count FROM tags WHERE name = 'colour:red'").fetchone()[0] == 21
        )
        changed = pg.execute(
            "SELECT user_changed_at FROM images WHERE id = (SELECT min(id) FROM images)"
        ).fetchone()[0]
        assert changed is not None and changed > 1.7e9
        new_id = pg.execute(
            "INSERT INTO albums(name, created_at) VALUES ('New', 1) RETURNING id"
        ).fetchone()[0]
        assert new_id == 2  # ids continue after the copied ones


def test_migrate_refuses_names_postgresql_cannot_hold(cli: Cli, postgres_url: str) -> None:
    cli("demo", "--count", "3")
    conn = catalog(cli.library_path)
    with conn:
        conn.execute("UPDATE files SET rel_path = CAST(x'6261648a2e706e67' AS BLOB) WHERE id = 1")
    conn.close()
    out = cli("migrate", "--to", postgres_url, expect=1)
    assert "not valid UTF-8" in out.stdout + out.stderr
    with psycopg.connect(postgres_url) as pg:  # nothing half-copied
        assert pg.execute("SELECT to_regclass('images')").fetchone()[0] is None


QUERIES = [
    "", "lighthouse", "light*", '"autumn forest"', "ramen OR lighthouse", "-lighthouse",
    "NOT storm lighthouse", "tag:keeper", "-tag:keeper", "tag:KEEPER", "autotag:colour:red",
    "tag:best tag:keeper", "(tag:keeper OR tag:best) -ramen", "steps:20..30", "steps:>25",
    "cfg:<=7", "seed:..2000000000", "rating:4", "rating:>=1", "fav", "untagged", "noprompt",
    "missing", "dupes", "video", "animated", "size:128x72", "aspect:portrait",
    "aspect:landscape", "aspect:square", "aspect:16:9", "model:sd", "model:=nothing",
    "sampler:euler", "generator:comfyui", "format:png", "lora:detail", "album:trip",
    "album:Trip -lighthouse", "date:2020..", "date:>=2020", "width:>100", "id:1,2,3,59",
    "prompt:lighthouse", "negative:blurry", "folder:comfyui", "duration:>1",
]  # fmt: skip


def _ids(conn: Any, sql: str, params: list[Any]) -> set[int]:
    from dreamdepot.catalog.engine import as_catalog_connection

    conn = as_catalog_connection(conn)  # "?" placeholders on either engine
    return {int(r[0]) for r in conn.execute(f"SELECT images.id FROM images WHERE {sql}", params)}


def test_the_query_language_answers_the_same_on_both_engines(
    demo_library: Cli, postgres_url: str
) -> None:
    cli = demo_library
    cli("migrate", "--to", postgres_url)
    lite = catalog(cli.library_path)
    root = lite.execute("SELECT path FROM roots").fetchone()[0]
    digest = lite.execute("SELECT content_hash FROM images LIMIT 1").fetchone()[0]
    folders = [f'folder:"{root}"', f'folder:"{root}/"', f'folder:"{Path(root).parent}"',
               f'folder:"{root}x"', 'folder:"/nope"', f"hash:{digest[:6]}"]  # fmt: skip
    answered = 0
    with psycopg.connect(postgres_url) as pg:
        for text in QUERIES + folders:
            q = parse(text)
            here = _ids(lite, *q.sql("sqlite"))
            walked = _ids(lite, *q.sql("sqlite", walk=True))
            there = _ids(pg, *q.sql("postgresql"))
            assert here == walked == there, (text, len(here), len(walked), len(there))
            answered += bool(here)
    assert answered >= 40  # most queries match something: the comparison means something


def test_the_database_setting_moves_with_migrate_and_then_every_command_uses_it(
    cli: Cli, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a PostgreSQL catalog set, commands use it (never silently the SQLite file):
    empty until `migrate` copies the embedded library to the setting's URL; after that the
    library reads and writes there while the SQLite file stays as it was."""
    cli("demo", "--count", "5")
    monkeypatch.setenv("DREAMDEPOT_DATABASE_URL", postgres_url)
    assert cli.json("stats", "--json")["images"] == 0
    assert "Every table arrived unchanged." in cli("migrate").stdout
    with psycopg.connect(postgres_url) as pg:
        assert pg.execute("SELECT count(*) FROM images").fetchone()[0] == 5
    assert cli.json("stats", "--json")["images"] == 5
    assert "on 5 of 5" in cli("tag", "add", "moved", "").stdout
    assert len(cli.jsonl("search", "tag:moved", "--json")) == 5
    monkeypatch.delenv("DREAMDEPOT_DATABASE_URL")
    assert cli.jsonl("search", "tag:moved", "--json") == []  # the embedded file: untouched


def test_pages_and_tag_counts_read_the_same_on_postgresql(
    demo_library: Cli, postgres_url: str
) -> None:
    """The catalog's page reader (keyset cursors, every sort) and the tag sidebar's counts
    give the same answers from the PostgreSQL copy."""
    from dreamdepot.catalog import images as catalog_images
    from dreamdepot.catalog import tags as catalog_tags

    cli = demo_library
    cli("migrate", "--to", postgres_url)
    lite = catalog(cli.library_path)
    with psycopg.connect(postgres_url) as pg:
        for text in ("", "sort:seed", "sort:+steps", "sort:rating lighthouse", "tag:keeper",
                     "sort:size -ramen", "sort:id"):  # fmt: skip
            pages = []
            for conn in (lite, pg):
                ids, cursor = [], None
                while True:  # pages of 7, to the end
                    page = catalog_images.search(conn, text, limit=7, cursor=cursor)
                    ids += [i["id"] for i in page.items]
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                pages.append(ids)
            assert pages[0] == pages[1] and len(set(pages[0])) == len(pages[0]), text
        for text in ("", "lighthouse", "-tag:keeper"):
            q = None if not text else parse(text)
            assert catalog_tags.tag_counts(lite, q, 20) == catalog_tags.tag_counts(pg, q, 20)
        first = catalog_images.search(pg, "lighthouse", limit=3).items[0]
        assert first["prompt"] and isinstance(first["favorite"], bool)


def test_vectors_move_into_pgvector_with_an_index_per_model(cli: Cli, postgres_url: str) -> None:
    """Embeddings arrive as pgvector vectors beside their stored bytes; each model gets its
    own HNSW index (two models, two dimensions, never mixed), and its nearest neighbours
    are the exact ones on a small set."""
    import numpy as np

    from dreamdepot.catalog.postgres import ensure_vector_index, nearest
    from dreamdepot.semantic.vectors import store

    cli("demo", "--count", "5")
    rng = np.random.default_rng(3)
    small = rng.normal(size=(300, 16)).astype(np.float32)
    small /= np.linalg.norm(small, axis=1, keepdims=True)
    other = rng.normal(size=(50, 8)).astype(np.float32)
    conn = catalog(cli.library_path)
    with conn:
        store(conn, "model-a", "prompt", list(range(1, 301)), small, dtype="float32")
        store(conn, "model-b", "prompt", list(range(1, 51)), other)  # float16, as the app does
    conn.close()
    report = json.loads(cli("migrate", "--to", postgres_url, "--json").stdout)
    assert (
        report["same"]
        and {t["name"]: t["target_rows"] for t in report["tables"]}["embeddings"] == 350
    )
    with psycopg.connect(postgres_url, autocommit=True) as pg:
        a = ensure_vector_index(pg, "model-a", "prompt", 16)
        b = ensure_vector_index(pg, "model-b", "prompt", 8)
        assert a != b and ensure_vector_index(pg, "model-a", "prompt", 16) == a
        defs = dict(pg.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE 'embeddings_hnsw%%'"
        ).fetchall())  # fmt: skip
        assert "hnsw" in defs[a] and "'model-a'" in defs[a] and "vector(16)" in defs[a]
        pg.execute("SET enable_sort = off")  # 300 rows: a sort is cheaper; is the index usable?
        plan = "\n".join(r[0] for r in pg.execute(
            "EXPLAIN SELECT owner_id FROM embeddings WHERE model_id = 'model-a' AND "
            "owner_kind = 'prompt' AND dim = 16 ORDER BY embedding::vector(16) <=> "
            f"'[{','.join(['0.25'] * 16)}]'::vector(16) LIMIT 5"
        ))  # fmt: skip
        assert a in plan  # the query this module writes can use that model's index
        pg.execute("RESET enable_sort")
        for q in small[:10]:
            exact = np.argsort(-(small @ q))[:10] + 1
            found = nearest(pg, "model-a", "prompt", q, k=10)
            assert [i for i, _ in found] == exact.tolist()
            assert abs(found[0][1] - 1.0) < 1e-5
        assert {i for i, _ in nearest(pg, "model-b", "prompt", other[0], k=60)} <= set(range(1, 51))
