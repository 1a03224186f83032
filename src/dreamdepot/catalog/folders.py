"""The folder tree: registered folders and their subfolders with file counts, built from
``folder_counts`` (kept by triggers, schema 10), so it costs the same on every request
whatever the library's size."""

from __future__ import annotations

import sqlite3
from typing import Any


def folder_tree(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """``[{"path", "name", "count", "files", "online", "children": [...]}, ...]``, one entry
    per registered folder. ``files`` counts the files directly in a folder, ``count`` those
    at or below it (an image with two copies in the tree counts twice)."""
    nodes: dict[tuple[int, str], dict[str, Any]] = {}
    tree: list[dict[str, Any]] = []
    for root_id, path, online in conn.execute("SELECT id, path, online FROM roots ORDER BY path"):
        node = _node(str(path), str(path), bool(online))
        nodes[(root_id, "")] = node
        tree.append(node)
    rows = conn.execute(
        "SELECT root_id, dir, files FROM folder_counts WHERE files > 0 ORDER BY root_id, dir"
    ).fetchall()
    for root_id, raw_dir, files in rows:
        root = nodes.get((root_id, ""))
        if root is None:
            continue
        directory = raw_dir.decode("utf-8", "replace") if isinstance(raw_dir, bytes) else raw_dir
        parent, key = root, ""
        for part in [p for p in directory.split("/") if p]:
            key = f"{key}{part}/"
            child = nodes.get((root_id, key))
            if child is None:
                child = _node(f"{parent['path']}/{part}", part, root["online"])
                parent["children"].append(child)
                nodes[(root_id, key)] = child
            parent = child
        parent["files"] += int(files)
    for root in tree:
        _total(root)
    return tree


def _node(path: str, name: str, online: bool) -> dict[str, Any]:
    return {"path": path, "name": name, "count": 0, "files": 0, "online": online, "children": []}


def _total(node: dict[str, Any]) -> int:
    node["children"].sort(key=lambda c: c["name"].lower())
    node["count"] = node["files"] + sum(_total(c) for c in node["children"])
    return int(node["count"])
