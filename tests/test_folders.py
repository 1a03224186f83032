"""The folder tree (issue #18): counts kept by the catalog through scans, deletions, moves
and offline roots; `GET /api/folders`; `folder:/abs/path` as the tree's filter."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from builders import png
from conftest import Cli, catalog
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
