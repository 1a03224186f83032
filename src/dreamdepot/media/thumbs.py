"""Thumbnails (AVIF), inline placeholders and perceptual hashes: one decode, three outputs.

A video's thumbnail is made from its first frame (its poster); videos and animations also
get a short muted MP4 preview for the grid's hover (media/video.py).

- Thumbnails are content-addressed (``thumbs/ab/<content_hash>-<size>.avif``) so their URLs
  never change meaning and can be cached forever.
- The placeholder is a ≤ 16 px WebP as a data URI (~200 characters): measured smaller than
  AVIF at this size (AVIF's container costs ~300 bytes), and every current browser decodes it.
- The perceptual hash is a 64-bit dHash of the 9x8 greyscale image, for look-alikes.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass

from PIL import Image, ImageOps

from dreamdepot.media import video

GRID_SIZE = 256
PREVIEW_SIZE = 1024
PLACEHOLDER_SIZE = 16
AVIF_QUALITY = 50
AVIF_SPEED = 7
# aom tuned for SSIM: ~10% fewer bytes than the default tuning at equal SSIM (bench/thumbs.py)
AVIF_ADVANCED = {"tune": "ssim"}


@dataclass
class MediaResult:
    thumb_key: str | None
    placeholder: str | None
    phash: int | None
    error: str | None = None
    preview_key: str | None = None  # "" when a preview was asked for and could not be made


def thumb_key(content_hash: str, size: int) -> str:
    return f"{content_hash[:2]}/{content_hash}-{size}.avif"


def preview_key(content_hash: str) -> str:
    return f"{content_hash[:2]}/{content_hash}-preview.mp4"


def make_preview(source: str, fmt: str, content_hash: str, thumbs_dir: str) -> str:
    """Write the hover preview of a video or animation; its key, or "" when it failed."""
    key = preview_key(content_hash)
    path = os.path.join(thumbs_dir, key)
    if os.path.exists(path):
        return key
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        video.write_preview(source, fmt, path)
    except Exception:
        return ""
    return key


def _flatten(im: Image.Image) -> Image.Image:
    if im.getexif().get(0x0112, 1) != 1:  # only rotate when the EXIF orientation says so
        im = ImageOps.exif_transpose(im) or im
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (24, 24, 28))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return im.convert("RGB")


def save_avif(im: Image.Image, out: io.BytesIO) -> None:
    """Encode a thumbnail the way every thumbnail is encoded (one thread: stages run in
    parallel processes already)."""
    try:
        im.save(
            out,
            "AVIF",
            quality=AVIF_QUALITY,
            speed=AVIF_SPEED,
            max_threads=1,
            advanced=AVIF_ADVANCED,
        )
    except (TypeError, ValueError):  # a Pillow without the 'advanced' option
        out.seek(0)
        out.truncate()
        im.save(out, "AVIF", quality=AVIF_QUALITY, speed=AVIF_SPEED, max_threads=1)


def placeholder(im: Image.Image) -> str:
    tiny = im.copy()
    tiny.thumbnail((PLACEHOLDER_SIZE, PLACEHOLDER_SIZE), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    tiny.save(buf, "WEBP", quality=30, method=4)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode()


def dhash(im: Image.Image) -> int:
    """64-bit difference hash as a signed int64 (fits an SQLite INTEGER)."""
    small = im.convert("L").resize((9, 8), Image.Resampling.BILINEAR)
    px = small.tobytes()
    value = 0
    for y in range(8):
        row = px[y * 9 : y * 9 + 9]
        for x in range(8):
            value = (value << 1) | (row[x] > row[x + 1])
    return value - (1 << 64) if value >= 1 << 63 else value


def _downscale(im: Image.Image, size: int) -> Image.Image:
    """Box-reduce by an integer factor first (cheap), then Lanczos to the exact size."""
    factor = max(1, min(im.width, im.height) // (size * 2))
    if factor > 1:
        im = im.reduce(factor)
    im = im.copy() if factor == 1 else im
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    return im


def make_media(
    source: str,
    content_hash: str,
    thumbs_dir: str,
    sizes: tuple[int, ...],
    animation: str | None = None,
) -> MediaResult:
    """Decode once; write the thumbnails (atomically) and return placeholder and phash.
    ``animation`` (the format of a video or animated image) also asks for a hover preview."""
    try:  # reduced first (JPEG at decode time), flattened after: no full-size copies
        im = _flatten(video.decode_still(source, max(sizes) * 2))
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError) as exc:
        return MediaResult(None, None, None, f"cannot decode: {exc}")
    try:
        smallest = None
        for size in sorted(sizes, reverse=True):
            thumb = _downscale(im if smallest is None else smallest, size)
            smallest = thumb
            key = thumb_key(content_hash, size)
            path = os.path.join(thumbs_dir, key)
            if os.path.exists(path):
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            buf = io.BytesIO()
            save_avif(thumb, buf)
            tmp = f"{path}.{os.getpid()}.part"
            with open(tmp, "wb") as f:
                f.write(buf.getvalue())
            os.replace(tmp, path)
        assert smallest is not None
        result = MediaResult(
            thumb_key(content_hash, min(sizes)), placeholder(smallest), dhash(smallest)
        )
        if animation:
            result.preview_key = make_preview(source, animation, content_hash, thumbs_dir)
        return result
    except OSError as exc:
        return MediaResult(None, None, None, f"cannot write thumbnail: {exc}")


def fallback_thumbnail() -> bytes:
    """Served when an image cannot be decoded: a neutral tile, never a 500."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (60, 60, 66)).save(buf, "AVIF", quality=50, speed=10)
    return buf.getvalue()
