"""Build image files the way each generator writes them, independently of our writers
(Pillow's PngInfo and piexif, as the generators themselves use), for the tests."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import piexif
import piexif.helper
from PIL import Image, PngImagePlugin

A1111_TEXT = (
    "a red fox in the snow, <lora:foxy:0.7>\n"
    "Negative prompt: lowres, blurry\n"
    "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234, "
    "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
    'Lora hashes: "foxy: abcdef123456", Version: v1.10.1'
)


def image(
    size: tuple[int, int] = (16, 16), colour: tuple[int, ...] = (120, 80, 200), mode: str = "RGB"
) -> Image.Image:
    return Image.new(mode, size, colour)


def png(
    path: Path,
    texts: dict[str, str] | None = None,
    im: Image.Image | None = None,
    ztxt: dict[str, str] | None = None,
) -> Path:
    info = PngImagePlugin.PngInfo()
    for k, v in (texts or {}).items():
        info.add_text(k, v)
    for k, v in (ztxt or {}).items():
        info.add_text(k, v, zip=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    (im or image()).save(path, "PNG", pnginfo=info)
    return path


def jpeg_user_comment(
    path: Path, text: str, encoding: str = "unicode", im: Image.Image | None = None
) -> Path:
    exif = piexif.dump(
        {
            "Exif": {
                piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(text, encoding=encoding)
            }
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    (im or image()).save(path, "JPEG", exif=exif)
    return path


def webp_exif(
    path: Path, exif: bytes, im: Image.Image | None = None, lossless: bool = False
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (im or image()).save(path, "WEBP", exif=exif, lossless=lossless)
    return path


def chunk(ctype: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + ctype
        + data
        + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)
    )


def raw_png(
    texts_before: list[tuple[bytes, bytes]] = (),
    texts_after: list[tuple[bytes, bytes]] = (),
    width: int = 1,
    height: int = 1,
    end: bool = True,
) -> bytes:
    """A grey PNG assembled chunk by chunk (so tests control exactly where chunks sit)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for ctype, data in texts_before:
        out += chunk(ctype, data)
    out += chunk(b"IDAT", zlib.compress(raw))
    for ctype, data in texts_after:
        out += chunk(ctype, data)
    if end:
        out += chunk(b"IEND", b"")
    return out


def text_chunk(key: str, value: str) -> tuple[bytes, bytes]:
    return b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1")


def png_bytes(texts: dict[str, str], size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    for k, v in texts.items():
        info.add_text(k, v)
    image(size).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()
