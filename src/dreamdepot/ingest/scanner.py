"""Walk a root and tell what changed since the catalog last saw it.

The walk is ``os.scandir`` with one ``stat`` per candidate file; the comparison is against
(size, mtime_ns) per path, so a file replaced or deleted inside an unchanged folder is
noticed (unlike a folder-mtime shortcut). Symlinks are followed only when they resolve
inside the root, and each directory is entered once (loops end there).
"""

from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Iterator
from dataclasses import dataclass, field

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".avif", ".gif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv"})
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


@dataclass(slots=True)
class Seen:
    rel_path: str
    size: int
    mtime_ns: int


@dataclass
class WalkProblems:
    """Directories that could not be listed, with the reason, for ``doctor``."""

    errors: list[tuple[str, str]] = field(default_factory=list)


def is_candidate(name: str) -> bool:
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in MEDIA_SUFFIXES


def walk(root: str, problems: WalkProblems, skip: frozenset[str] = frozenset()) -> Iterator[Seen]:
    """Yield every candidate image file under ``root`` (relative paths, '/'-separated)."""
    real_root = os.path.realpath(root)
    prefix = real_root.rstrip(os.sep) + os.sep
    try:
        st = os.stat(root)
    except OSError as exc:
        problems.errors.append(("", f"cannot read root: {exc.strerror or exc}"))
        return
    visited = {(st.st_dev, st.st_ino)}
    stack: list[str] = [""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        try:
            entries = list(os.scandir(abs_dir))
        except OSError as exc:
            problems.errors.append((rel_dir, f"cannot list folder: {exc.strerror or exc}"))
            continue
        entries.sort(key=lambda e: e.name)
        subdirs: list[str] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                is_link = entry.is_symlink()
                if is_link:
                    target = os.path.realpath(entry.path)
                    if not (target + os.sep).startswith(prefix) or target == real_root:
                        continue
                if entry.is_dir(follow_symlinks=True):
                    if rel in skip:
                        continue
                    dst = entry.stat(follow_symlinks=True)
                    key = (dst.st_dev, dst.st_ino)
                    if key not in visited:
                        visited.add(key)
                        subdirs.append(rel)
                    continue
                if not is_candidate(name):
                    continue
                fst = entry.stat(follow_symlinks=True)
            except OSError:
                continue  # vanished between listing and stat, or a dangling link
            if stat_mod.S_ISREG(fst.st_mode):
                yield Seen(rel, fst.st_size, fst.st_mtime_ns)
        stack.extend(reversed(subdirs))
