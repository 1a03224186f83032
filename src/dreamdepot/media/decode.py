"""Decoding pixels within a memory budget.

A 571 KB PNG can declare 14000×14000 pixels: 588 MB as RGB, more in the copies a naive
thumbnailer makes. Every decode of a user's file goes through :func:`decode_reduced`:

- the pixel count is checked from the header **before** anything is decoded (after JPEG's
  ``draft``, which decodes at 1/2, 1/4 or 1/8 scale for free), against
  :data:`MAX_DECODE_PIXELS`; a bigger image is refused with :class:`TooLargeError` and the
  reason is recorded like any other unreadable file;
- the decoded image is box-reduced by an integer factor straight away, so the full-size
  pixels live for as short a time as possible and are never copied (no full-size convert);
- decodes running at once in one process share :data:`MAX_DECODE_PIXELS` between them (a
  pixel-weighted semaphore): ten parallel requests for huge images take turns instead of
  holding ten full-size buffers;
- after a large decode the C allocator is asked to hand freed memory back to the system
  (glibc keeps large freed blocks otherwise, which is how one hostile request used to leave a
  server holding gigabytes).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

MAX_DECODE_PIXELS = 64_000_000  # 8000×8000: 256 MB as RGBA, the largest real upscales
LARGE_DECODE_PIXELS = 16_000_000
Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS  # Pillow's own guard (it raises at twice this)


class TooLargeError(ValueError):
    """The image declares more pixels than the decode budget allows."""


class _PixelBudget:
    """At most ``limit`` pixels being decoded at once in this process."""

    def __init__(self, limit: int) -> None:
        self.limit, self.in_flight = limit, 0
        self.cond = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.limit)
        with self.cond:
            self.cond.wait_for(lambda: self.in_flight + pixels <= self.limit)
            self.in_flight += pixels
        try:
            yield
        finally:
            with self.cond:
                self.in_flight -= pixels
                self.cond.notify_all()


_budget = _PixelBudget(MAX_DECODE_PIXELS)


def decode_reduced(source: str | Path, side: int) -> Image.Image:
    """The image decoded and reduced so that its shorter side stays at least ``side``
    (never enlarged); the mode is the file's own. Raises TooLargeError, OSError, ValueError
    or SyntaxError for files that cannot be decoded within the budget."""
    try:
        opened = Image.open(source)
    except Image.DecompressionBombError as exc:  # Pillow's own guard, at twice the budget
        raise TooLargeError(f"{exc}; over the decode budget of "
                            f"{MAX_DECODE_PIXELS / 1e6:.0f} M pixels") from exc  # fmt: skip
    with opened:
        opened.draft("RGB" if opened.mode not in ("RGBA", "LA", "P", "PA") else None, (side, side))
        pixels = opened.width * opened.height
        if pixels > MAX_DECODE_PIXELS:
            raise TooLargeError(
                f"{opened.width}×{opened.height} is {pixels / 1e6:.0f} M pixels, over the "
                f"decode budget of {MAX_DECODE_PIXELS / 1e6:.0f} M"
            )
        with _budget.hold(pixels):
            opened.load()
            factor = max(1, min(opened.width, opened.height) // max(1, side))
            out = opened.reduce(factor) if factor > 1 else opened.copy()
            opened.close()  # the full-size pixels go before the next decode may start
            if pixels >= LARGE_DECODE_PIXELS:
                release_memory()
    return out


_libc: ctypes.CDLL | None = None


def release_memory() -> None:
    """Return freed heap memory to the system (glibc's malloc_trim; a no-op elsewhere)."""
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        if not name:
            return
        with contextlib.suppress(OSError):
            _libc = ctypes.CDLL(name)
    trim = getattr(_libc, "malloc_trim", None)
    if trim is not None:
        trim(0)
