"""The folder tree (issue #18): counts kept by the catalog through scans, deletions, moves
and offline roots; `GET /api/folders`; `folder:/abs/path` as the tree's filter."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from builders import png
from conftest import ENGINE, Cli, catalog
from server import Server


def _tree(base: str) -> list[dict]:
    r = httpx.get(base + "/api/folders")
    r.raise_for_status()
    return r.json()


def _find(nodes: list[dict], path: str) -> dict | None:
    for n in nodes:
        if n["path"] == path:
            return n
        hit = _find(n["children"], path)
        if hit:
            return hit
    return None


def test_folder_tree_counts_follow_the_files(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "pics"
    for rel in ("a.png", "x/b.png", "x/y/c.png", "x/y/d.png", "z/e.png"):
        png(root / rel, {"parameters": f"{rel}\nSteps: 5, Seed: {len(rel)}, Size: 64x64"})
    cli("add", str(root))
    with Server(cli.library_path) as srv:
        [top] = _tree(srv.base)
        assert (top["path"], top["count"], top["files"], top["online"]) == (str(root), 5, 1, True)
        assert [c["name"] for c in top["children"]] == ["x", "z"]
        x = _find([top], str(root / "x"))
        assert x is not None and (x["count"], x["files"]) == (3, 1)
        assert _find([top], str(root / "x" / "y"))["count"] == 2  # type: ignore[index]
        found = httpx.get(srv.base + "/api/images", params={"q": f'folder:"{root / "x"}"'})
        assert len(found.json()["items"]) == 3
    (root / "x" / "y" / "c.png").unlink()
    shutil.move(root / "z" / "e.png", root / "x" / "e.png")
    cli("scan")
    with Server(cli.library_path) as srv:
        [top] = _tree(srv.base)
        assert top["count"] == 4 and _find([top], str(root / "x"))["count"] == 3  # type: ignore[index]
        assert _find([top], str(root / "z")) is None  # emptied folders leave the tree
    shutil.rmtree(root)
    cli("scan")
    with Server(cli.library_path) as srv:
        [top] = _tree(srv.base)
        assert top["online"] is False and top["count"] == 4  # offline, not forgotten
    rows = catalog(cli.library_path).execute("SELECT sum(files) FROM folder_counts").fetchone()
    assert rows[0] == 4


def test_an_absolute_folder_filter_is_a_prefix(cli: Cli, tmp_path: Path) -> None:
    for where in ("pics/a", "old/pics/a"):
        png(tmp_path / where / "1.png", {"parameters": f"{where}\nSteps: 5, Seed: 1, Size: 64x64"})
    cli("add", str(tmp_path / "pics"), str(tmp_path / "old"))
    assert len(cli.jsonl("search", f"folder:{tmp_path / 'pics' / 'a'}", "--json")) == 1
    assert len(cli.jsonl("search", "folder:pics/a", "--json")) == 2  # a name anywhere


def test_folder_prefix_plans_agree(cli: Cli, tmp_path: Path) -> None:
    """``folder:/abs`` has two plans (walk the images, or read the folder's files from the
    files index); a small folder of a big library takes the second. Both must answer the
    same, including a sibling whose name extends the folder's, a root inside the folder,
    and a folder that does not exist."""
    from dreamdepot.catalog.images import compile_query

    pics, other = tmp_path / "pics", tmp_path / "pics" / "nested-root"
    for rel in ("a.png", "x/b.png", "x/y/c.png", "x0/d.png", "x-y/e.png", "X/f.png"):
        png(pics / rel, {"parameters": f"{rel}\nSteps: 5, Seed: {len(rel)}, Size: 64x64"})
    png(other / "g.png", {"parameters": "g\nSteps: 5, Seed: 99, Size: 64x64"})
    cli("add", str(other))
    cli("add", str(pics))
    conn = catalog(cli.library_path)
    for folder, expected in (
        (pics / "x", 2), (pics / "x" / "y", 1), (pics / "x0", 1), (pics, 7),
        (tmp_path, 7), (other, 1), (pics / "nope", 0), (pics / "x" / "y" / "c.png", 0),
    ):  # fmt: skip
        q = compile_query(conn, f'folder:"{folder}"')
        assert q.adaptive
        where, params = q.sql_on(conn)
        index = {r[0] for r in conn.execute(f"SELECT id FROM images WHERE {where}", params)}
        if ENGINE == "postgresql":  # its planner takes the index form only
            assert len(index) == expected, (folder, index)
            continue
        walk = q.where_walking()
        walked = {r[0] for r in conn.execute(f"SELECT id FROM images WHERE {walk}", params)}
        assert index == walked and len(index) == expected, (folder, index, walked)
