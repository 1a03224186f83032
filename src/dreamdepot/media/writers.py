"""Writing images with embedded metadata, the way generators do.

Used for the files Dream Depot generates (A1111 ``parameters`` + a ``dreamdepot`` chunk)
and for the demo library. EXIF is built here directly (little code, no extra dependency).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

from PIL import Image, PngImagePlugin


def png_bytes(im: Image.Image, texts: dict[str, str]) -> bytes:
    """Encode a PNG with text chunks (Pillow picks iTXt for non-Latin-1 values, like A1111)."""
    info = PngImagePlugin.PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    im.save(buf, "PNG", pnginfo=info, compress_level=1)
    return buf.getvalue()


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"iTXt", b"zTXt")


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _text_chunk(key: str, value: str) -> bytes:
    """tEXt when the value is Latin-1, else an uncompressed iTXt (as Pillow and A1111 do)."""
    try:
        return _chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1"))
    except UnicodeEncodeError:
        body = key.encode("latin-1") + b"\x00\x00\x00\x00\x00" + value.encode("utf-8")
        return _chunk(b"iTXt", body)


def png_with_texts(data: bytes, texts: dict[str, str]) -> bytes | None:
    """The PNG ``data`` with ``texts`` set (replacing text chunks of the same keys, keeping
    every other chunk — a ComfyUI workflow, say), pixels untouched: no decode, no re-encode.
    None when ``data`` is not a well-formed PNG (the caller then encodes the pixels).

    >>> out = png_with_texts(png_bytes(Image.new("RGB", (2, 2)), {"a": "old"}), {"a": "new"})
    >>> Image.open(io.BytesIO(out)).text
    {'a': 'new'}
    """
    if not data.startswith(PNG_SIGNATURE):
        return None
    keys = {k.encode("latin-1") for k in texts}
    chunks: list[tuple[bytes, bytes]] = []
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            return None
        chunks.append((kind, data[pos:end]))
        pos = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        return None
    out = [PNG_SIGNATURE, chunks[0][1]]
    out += [_text_chunk(k, v) for k, v in texts.items()]
    for kind, raw in chunks[1:]:
        if kind in _TEXT_CHUNKS and raw[8:].split(b"\x00", 1)[0] in keys:
            continue  # replaced by ours
        out.append(raw)
    return b"".join(out)


def user_comment_unicode(text: str, big_endian: bool = True) -> bytes:
    """EXIF UserComment with the UNICODE prefix, as piexif (A1111) writes it."""
    return b"UNICODE\x00" + text.encode("utf-16-be" if big_endian else "utf-16-le")


def build_exif(
    ifd0: dict[int, bytes] | None = None,
    exif_ifd: dict[int, bytes] | None = None,
    little_endian: bool = False,
) -> bytes:
    """A minimal TIFF/EXIF block: IFD0 (ASCII/UNDEFINED values) and an Exif sub-IFD.

    Values are written as type 7 (UNDEFINED) for UserComment/MakerNote, else type 2.
    """
    e = "<" if little_endian else ">"
    ifd0 = dict(ifd0 or {})
    exif_ifd = dict(exif_ifd or {})
    header = (b"II*\x00" if little_endian else b"MM\x00*") + struct.pack(e + "I", 8)

    def layout(entries: dict[int, bytes], start: int, extra_ptr: bool) -> tuple[bytes, int]:
        n = len(entries) + (1 if extra_ptr else 0)
        table_size = 2 + 12 * n + 4
        data_off = start + table_size
        table = struct.pack(e + "H", n)
        blob = b""
        items = sorted(entries.items())
        if extra_ptr:
            items.append((0x8769, b""))
            items.sort()
        ptr_slot = -1
        for tag, value in items:
            if tag == 0x8769:
                ptr_slot = len(table)
                table += struct.pack(e + "HHII", tag, 4, 1, 0)
                continue
            typ = 7 if tag in (0x9286, 0x927C) else 2
            if typ == 2 and not value.endswith(b"\x00"):
                value += b"\x00"
            if len(value) <= 4:
                table += struct.pack(e + "HHI", tag, typ, len(value)) + value.ljust(4, b"\x00")
            else:
                table += struct.pack(e + "HHII", tag, typ, len(value), data_off + len(blob))
                blob += value + (b"\x00" if len(value) % 2 else b"")
        table += struct.pack(e + "I", 0)
        return table + blob, ptr_slot

    ifd0_bytes, slot = layout(ifd0, 8, bool(exif_ifd))
    out = header + ifd0_bytes
    if exif_ifd:
        exif_start = len(out)
        exif_bytes, _ = layout(exif_ifd, exif_start, False)
        patched = bytearray(out)
        patched[8 + slot + 8 : 8 + slot + 12] = struct.pack(e + "I", exif_start)
        out = bytes(patched) + exif_bytes
    return out


def jpeg_bytes(im: Image.Image, exif: bytes | None = None, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    kwargs = {"exif": b"Exif\x00\x00" + exif} if exif else {}
    im.convert("RGB").save(buf, "JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def webp_bytes(im: Image.Image, exif: bytes | None = None, lossless: bool = False) -> bytes:
    buf = io.BytesIO()
    kwargs = {"exif": exif} if exif else {}
    im.save(buf, "WEBP", quality=85, lossless=lossless, **kwargs)
    return buf.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary name and rename, so watchers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    tmp.replace(path)
