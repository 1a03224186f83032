"""Content identity without reading whole files up front.

``sampled_hash`` is what makes an image row unique: BLAKE2b over the size and the whole
content for files up to 64 KiB, or the size plus three 16 KiB samples (head, middle,
tail) for larger ones. Compressed images differ in every sample when any pixel or chunk
differs, so collisions need adversarial files; ``full_hash`` (the whole content) is filled
in by a later background stage and is what exports and duplicate checks rely on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

SAMPLE = 16 * 1024
WHOLE_UP_TO = 4 * SAMPLE


def sampled_hash(f: BinaryIO, size: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(size.to_bytes(8, "little"))
    if size <= WHOLE_UP_TO:
        f.seek(0)
        h.update(f.read(size))
    else:
        for offset in (0, size // 2 - SAMPLE // 2, size - SAMPLE):
            f.seek(offset)
            h.update(f.read(SAMPLE))
    return h.hexdigest()


def full_hash(path: str | Path, chunk: int = 1024 * 1024) -> str:
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
