"""Duplicates: exact copies (one image, several files: the same bytes) and near-duplicates
(difference hashes within ``NEAR_DISTANCE`` bits), each group with a keep-best suggestion.
Nothing here deletes anything; the UI and CLI only tag the others ``marked-for-deletion``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

# Hamming distance between 64-bit difference hashes at or below which two images are
# near-duplicates. `python bench/duplicates.py`: re-saved, resized and slightly cropped
# copies of the corpus's images stay within it; different images do not (docs/duplicates.md).
NEAR_DISTANCE = 6
MARK = "marked-for-deletion"


def _distance(a: int, b: int) -> int:
    return ((a ^ b) & 0xFFFFFFFFFFFFFFFF).bit_count()


def _bands(h: int, count: int) -> list[tuple[int, int]]:
    """Split a hash into ``count`` bands: two hashes within count-1 bits share one."""
    width = 64 // count
    u = h & 0xFFFFFFFFFFFFFFFF
    out = []
    for i in range(count):
        bits = width if i < count - 1 else 64 - width * (count - 1)
        out.append((i, (u >> (i * width)) & ((1 << bits) - 1)))
    return out


def near_groups(
    conn: sqlite3.Connection, max_distance: int = NEAR_DISTANCE
) -> list[list[tuple[int, int]]]:
    """Groups of images whose hashes chain within ``max_distance`` bits: [(id, distance
    to the group's first image)]. Candidates come from shared hash bands (pigeonhole), so a
    library is not compared pair by pair."""
    rows = conn.execute(
        "SELECT id, phash FROM images WHERE phash IS NOT NULL AND EXISTS (SELECT 1 FROM files "
        "f WHERE f.image_id = images.id AND f.state = 'present') ORDER BY id"
    ).fetchall()
    hashes = {int(i): int(h) for i, h in rows}
    buckets: dict[tuple[int, int], list[int]] = {}
    for image_id, h in hashes.items():
        for band in _bands(h, max_distance + 1):
            buckets.setdefault(band, []).append(image_id)
    parent = {i: i for i in hashes}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for members in buckets.values():
        if len(members) < 2 or len(members) > 5000:  # a flat-colour band says nothing
            continue
        for a_i, a in enumerate(members):
            for b in members[a_i + 1 :]:
                if find(a) != find(b) and _distance(hashes[a], hashes[b]) <= max_distance:
                    parent[find(b)] = find(a)
    groups: dict[int, list[int]] = {}
    for i in hashes:
        groups.setdefault(find(i), []).append(i)
    out = []
    for members in groups.values():
        if len(members) > 1:
            first = hashes[members[0]]
            out.append([(m, _distance(first, hashes[m])) for m in sorted(members)])
    return sorted(out, key=lambda g: -len(g))


def exact_groups(conn: sqlite3.Connection) -> list[list[int]]:
    """Images present as two or more files (the same content in several places)."""
    return [
        [int(r[0])]
        for r in conn.execute(
            "SELECT image_id FROM files WHERE state = 'present' GROUP BY image_id "
            "HAVING count(*) > 1 ORDER BY count(*) DESC, image_id"
        )
    ]


def keep_best(conn: sqlite3.Connection, ids: list[int]) -> int:
    """The one to keep: highest rated, then favourite, then most pixels, then largest."""
    rows = conn.execute(
        f"SELECT id, coalesce(rating, 0), favorite, coalesce(width * height, 0), bytes "
        f"FROM images WHERE id IN ({','.join('?' * len(ids))})",
        ids,
    ).fetchall()
    return int(max(rows, key=lambda r: (r[1], r[2], r[3], r[4], -r[0]))[0])


def duplicate_groups(
    conn: sqlite3.Connection, kind: str = "near", max_distance: int = NEAR_DISTANCE
) -> list[dict[str, Any]]:
    """``[{"kind", "keep", "images": [{"id", "distance"?, "paths"?}]}]``."""
    out: list[dict[str, Any]] = []
    if kind == "exact":
        for [image_id] in exact_groups(conn):
            paths = [
                f"{r[0]}/{r[1]}"
                for r in conn.execute(
                    "SELECT ro.path, f.rel_path FROM files f JOIN roots ro ON ro.id = f.root_id "
                    "WHERE f.image_id = ? AND f.state = 'present' ORDER BY f.id",
                    (image_id,),
                )
            ]
            out.append(
                {"kind": "exact", "keep": image_id, "images": [{"id": image_id, "paths": paths}]}
            )
        return out
    for group in near_groups(conn, max_distance):
        ids = [i for i, _ in group]
        out.append(
            {
                "kind": "near",
                "keep": keep_best(conn, ids),
                "images": [{"id": i, "distance": d} for i, d in group],
            }
        )
    return out
