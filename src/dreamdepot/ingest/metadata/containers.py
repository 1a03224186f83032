"""Read where metadata lives in an image file, without decoding pixels.

One function, :func:`read_container`, identifies the format by magic bytes and collects
every place a generator may have written text: PNG ``tEXt``/``iTXt``/``zTXt`` chunks
anywhere in the file, ``eXIf``, EXIF in JPEG/WebP/AVIF, XMP, GIF and JPEG comments, C2PA
stores and the tags of MP4/MOV/WebM videos (through PyAV, media/video.py). Generator readers
then work on the returned :class:`Container` alone; animations and videos also carry their
duration, frame count and frame rate.

Everything is bounded: a chunk over :data:`MAX_TEXT_BYTES` is skipped (and noted), the
chunk walk stops after :data:`MAX_CHUNKS`, and compressed text is inflated with a cap.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

from dreamdepot.errors import CorruptImageError, MetadataError, UnsupportedImageError
from dreamdepot.ingest.metadata.exif import decode_ascii_tag, decode_user_comment, parse_exif
from dreamdepot.media.video import VIDEO_FORMATS, is_video_head, probe_video

MAX_TEXT_BYTES = 8 * 1024 * 1024
MAX_CHUNKS = 100_000
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT_TYPES = {b"tEXt", b"iTXt", b"zTXt"}
_PNG_WANTED = _PNG_TEXT_TYPES | {b"eXIf", b"caBX", b"IHDR", b"IEND"}
_XMP_JPEG = b"http://ns.adobe.com/xap/1.0/\x00"
_PNG_COLOUR_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


@dataclass
class Container:
    """What an image file carries besides its pixels."""

    format: str
    width: int | None = None
    height: int | None = None
    mode: str | None = None
    texts: dict[str, str] = field(default_factory=dict)
    exif: dict[str, str] = field(default_factory=dict)
    xmp: str | None = None
    c2pa: bytes | None = None
    complete: bool = True
    lossless: bool = False
    animated: bool = False
    duration: float | None = None  # seconds, animations and videos only
    frames: int | None = None
    fps: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def video(self) -> bool:
        return self.format in VIDEO_FORMATS

    def text(self, key: str) -> str | None:
        return self.texts.get(key)


def sniff_format(head: bytes) -> str | None:
    """Name the image format from the first 16 bytes, or None.

    >>> sniff_format(b"\\x89PNG\\r\\n\\x1a\\n....")
    'png'
    >>> sniff_format(b"RIFF\\x00\\x00\\x00\\x00WEBPVP8 ")
    'webp'
    >>> sniff_format(b"hello")
    """
    if head.startswith(_PNG_MAGIC):
        return "png"
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"mif1", b"msf1"):
        return "avif"
    return is_video_head(head)


def read_container(f: BinaryIO, size: int) -> Container:
    """Read the metadata-bearing structures of an open image file.

    Raises :class:`UnsupportedImageError` for non-images and :class:`CorruptImageError`
    for files whose structure is broken before any pixel data.
    """
    f.seek(0)
    head = f.read(32)
    if not head:
        raise UnsupportedImageError("empty file (0 bytes)")
    fmt = sniff_format(head)
    if fmt is None:
        raise UnsupportedImageError("not an image: unknown magic bytes")
    f.seek(0)
    if fmt == "png":
        return _read_png(f, size)
    if fmt == "jpeg":
        return _read_jpeg(f, size)
    if fmt == "webp":
        return _read_webp(f, size)
    if fmt == "gif":
        return _read_gif(f, size)
    if fmt in VIDEO_FORMATS:
        return _read_video(f, fmt)
    return _read_avif(f, size)


# --- PNG ---------------------------------------------------------------------------------


def _read_png(f: BinaryIO, size: int) -> Container:
    c = Container(format="png", lossless=True)
    pos = 8
    f.seek(8)
    chunks = 0
    seen_iend = False
    while pos + 12 <= size:
        chunks += 1
        if chunks > MAX_CHUNKS:
            c.warnings.append("PNG: too many chunks; stopped reading")
            break
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            break
        length, ctype = struct.unpack(">I4s", header)
        end = pos + 12 + length
        if end > size:
            if ctype == b"IHDR" or chunks == 1:
                raise CorruptImageError("PNG: truncated header chunk")
            break
        if ctype == b"IEND":
            seen_iend = True
            break
        if ctype in _PNG_WANTED:
            if length > MAX_TEXT_BYTES:
                c.warnings.append(
                    f"PNG: {ctype.decode('latin-1')} chunk of {length} bytes skipped (cap)"
                )
            else:
                data = f.read(length)
                try:
                    _png_chunk(c, ctype, data)
                except MetadataError as exc:
                    c.warnings.append(f"PNG {ctype.decode('latin-1')}: {exc}")
        elif chunks == 1:
            raise CorruptImageError("PNG: first chunk is not IHDR")
        pos = end
    if c.width is None:
        raise CorruptImageError("PNG: no IHDR chunk")
    c.complete = seen_iend
    return c


def _png_chunk(c: Container, ctype: bytes, data: bytes) -> None:
    if ctype == b"IHDR":
        if len(data) < 13:
            raise CorruptImageError("PNG: short IHDR")
        w, h, _depth, colour = struct.unpack(">IIBB", data[:10])
        c.width, c.height = w, h
        c.mode = _PNG_COLOUR_MODES.get(colour)
    elif ctype == b"tEXt":
        key, _, value = data.partition(b"\x00")
        _put_text(c, key, _latin1_or_utf8(value))
    elif ctype == b"zTXt":
        key, _, rest = data.partition(b"\x00")
        _put_text(c, key, _latin1_or_utf8(_inflate(rest[1:])))
    elif ctype == b"iTXt":
        key, _, rest = data.partition(b"\x00")
        if len(rest) < 2:
            return
        compressed, _method = rest[0], rest[1]
        rest = rest[2:]
        _lang, _, rest = rest.partition(b"\x00")
        _translated, _, value = rest.partition(b"\x00")
        if compressed:
            value = _inflate(value)
        _put_text(c, key, value.decode("utf-8", errors="replace"))
    elif ctype == b"eXIf":
        _put_exif(c, data)
    elif ctype == b"caBX":
        c.c2pa = data


def _put_text(c: Container, key: bytes, value: str) -> None:
    name = key.decode("latin-1", errors="replace")
    if name == "XML:com.adobe.xmp":
        c.xmp = value
        return
    if name in c.texts:  # keep the first; several Comment chunks do occur
        return
    c.texts[name] = value


def _latin1_or_utf8(raw: bytes) -> str:
    """tEXt is Latin-1 by spec, but several writers put UTF-8 bytes there."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, MAX_TEXT_BYTES)
    except zlib.error as exc:
        raise MetadataError(f"compressed text chunk does not inflate: {exc}") from exc
    if d.unconsumed_tail:
        raise MetadataError("compressed text chunk inflates beyond the cap")
    return out


def _put_exif(c: Container, data: bytes) -> None:
    try:
        tags = parse_exif(data)
    except MetadataError as exc:
        c.warnings.append(str(exc))
        return
    except struct.error:
        c.warnings.append("EXIF: truncated")
        return
    for name, raw in tags.items():
        base = name.removeprefix("IFD0:")
        if base == "UserComment":
            c.exif[name] = decode_user_comment(raw)
        elif base == "MakerNote":
            c.exif[name] = decode_ascii_tag(raw)
        elif base == "XPComment":
            c.exif[name] = raw.decode("utf-16-le", errors="replace").rstrip("\x00")
        else:
            c.exif[name] = decode_ascii_tag(raw)


# --- JPEG --------------------------------------------------------------------------------

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _read_jpeg(f: BinaryIO, size: int) -> Container:
    c = Container(format="jpeg", mode="RGB")
    pos = 2
    f.seek(2)
    segments = 0
    jumbf: list[bytes] = []
    while pos + 4 <= size:
        segments += 1
        if segments > MAX_CHUNKS:
            break
        f.seek(pos)
        marker = f.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            raise CorruptImageError("JPEG: bad segment marker")
        code = marker[1]
        if code == 0xFF:  # fill byte
            pos += 1
            continue
        if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:
            pos += 2
            continue
        if code == 0xD9:
            break
        raw_len = f.read(2)
        if len(raw_len) < 2:
            break
        (length,) = struct.unpack(">H", raw_len)
        if length < 2:
            raise CorruptImageError("JPEG: bad segment length")
        if code == 0xDA:  # start of scan: metadata is all before it
            break
        body_len = length - 2
        if code in _SOF_MARKERS:
            body = f.read(min(body_len, 16))
            if len(body) >= 5:
                h, w = struct.unpack(">HH", body[1:5])
                c.height, c.width = h, w
                if len(body) >= 6:
                    c.mode = "L" if body[5] == 1 else ("CMYK" if body[5] == 4 else "RGB")
        elif code == 0xE1:
            body = f.read(body_len)
            if body.startswith(b"Exif\x00\x00"):
                _put_exif(c, body)
            elif body.startswith(_XMP_JPEG):
                c.xmp = body[len(_XMP_JPEG) :].decode("utf-8", errors="replace")
        elif code == 0xFE:
            body = f.read(body_len)
            c.texts.setdefault("comment", _latin1_or_utf8(body))
        elif code == 0xEB:  # APP11: JUMBF boxes, C2PA manifests split across segments
            jumbf.append(f.read(body_len))
        pos += 2 + length
    if jumbf:
        c.c2pa = b"".join(part[8:] if part[:2] == b"JP" else part for part in jumbf)
    if c.width is None:
        raise CorruptImageError("JPEG: no frame header before the scan")
    c.complete = _jpeg_has_eoi(f, size)
    return c


def _jpeg_has_eoi(f: BinaryIO, size: int) -> bool:
    """An end-of-image marker near the end. Entropy-coded data stuffs every 0xFF with 0x00,
    so FF D9 there is a real marker; bytes some tools append after it are tolerated."""
    f.seek(max(0, size - 4096))
    return b"\xff\xd9" in f.read(4096)


# --- WebP --------------------------------------------------------------------------------


def _read_webp(f: BinaryIO, size: int) -> Container:
    c = Container(format="webp", mode="RGB")
    f.seek(4)
    (riff_size,) = struct.unpack("<I", f.read(4))
    c.complete = riff_size + 8 <= size
    end = min(size, riff_size + 8)
    pos = 12
    chunks = 0
    frames, duration_ms = 0, 0
    while pos + 8 <= end:
        chunks += 1
        if chunks > MAX_CHUNKS:
            break
        f.seek(pos)
        ctype, length = struct.unpack("<4sI", f.read(8))
        if ctype == b"ANMF":
            body = f.read(16)
            if len(body) == 16:  # frame x, y, w, h (3 bytes each), then its duration
                frames += 1
                duration_ms += int.from_bytes(body[12:15], "little")
        body_end = pos + 8 + length
        if body_end > end:
            c.complete = False
            if ctype in (b"EXIF", b"XMP "):
                break
        if ctype == b"VP8X":
            body = f.read(10)
            if len(body) == 10:
                flags = body[0]
                c.mode = "RGBA" if flags & 0x10 else "RGB"
                c.animated = bool(flags & 0x02)
                c.width = 1 + int.from_bytes(body[4:7], "little")
                c.height = 1 + int.from_bytes(body[7:10], "little")
        elif ctype == b"VP8 " and c.width is None:
            body = f.read(10)
            if len(body) == 10:
                w, h = struct.unpack("<HH", body[6:10])
                c.width, c.height = w & 0x3FFF, h & 0x3FFF
        elif ctype == b"VP8L":
            c.lossless = True
            body = f.read(5)
            if len(body) == 5 and c.width is None:
                bits = int.from_bytes(body[1:5], "little")
                c.width = (bits & 0x3FFF) + 1
                c.height = ((bits >> 14) & 0x3FFF) + 1
                if (bits >> 28) & 1:
                    c.mode = "RGBA"
        elif ctype in (b"EXIF", b"XMP ", b"C2PA"):
            if length > MAX_TEXT_BYTES:
                c.warnings.append(f"WebP: {ctype!r} chunk of {length} bytes skipped (cap)")
            else:
                body = f.read(length)
                if ctype == b"EXIF":
                    _put_exif(c, body)
                elif ctype == b"XMP ":
                    c.xmp = body.decode("utf-8", errors="replace")
                else:
                    c.c2pa = body
        pos = body_end + (length & 1)
    if c.width is None:
        raise CorruptImageError("WebP: no image header")
    if c.animated and frames:
        _set_timing(c, frames, duration_ms / 1000 if duration_ms else frames * 0.1)
    return c


# --- GIF ---------------------------------------------------------------------------------


def _read_gif(f: BinaryIO, size: int) -> Container:
    data = f.read(min(size, 64 * 1024 * 1024))
    c = Container(format="gif", mode="P", lossless=True)
    if len(data) < 13:
        raise CorruptImageError("GIF: truncated header")
    c.width, c.height = struct.unpack("<HH", data[6:10])
    flags = data[10]
    pos = 13
    if flags & 0x80:
        pos += 3 * (2 ** ((flags & 7) + 1))
    frames = 0
    delay_cs = 0  # hundredths of a second, from each frame's Graphic Control Extension
    c.complete = False
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:
            c.complete = True
            break
        if block == 0x21:
            if pos + 2 > len(data):
                break
            label = data[pos + 1]
            body, pos = _gif_subblocks(data, pos + 2)
            if label == 0xFE:
                c.texts.setdefault("comment", _latin1_or_utf8(body))
            elif label == 0xF9 and len(body) >= 3:
                # browsers show a 0 or 1 delay as 100 ms; so do we
                delay = int.from_bytes(body[1:3], "little")
                delay_cs += delay if delay > 1 else 10
        elif block == 0x2C:
            frames += 1
            if pos + 10 > len(data):
                break
            lflags = data[pos + 9]
            pos += 10
            if lflags & 0x80:
                pos += 3 * (2 ** ((lflags & 7) + 1))
            pos += 1  # LZW minimum code size
            _, pos = _gif_subblocks(data, pos, keep=False)
        else:
            break
    c.animated = frames > 1
    if c.animated:
        _set_timing(c, frames, delay_cs / 100 if delay_cs else frames * 0.1)
    return c


def _set_timing(c: Container, frames: int, seconds: float) -> None:
    c.frames, c.duration = frames, round(seconds, 3)
    c.fps = round(frames / seconds, 3) if seconds > 0 else None


def _gif_subblocks(data: bytes, pos: int, keep: bool = True) -> tuple[bytes, int]:
    out = bytearray()
    while pos < len(data):
        n = data[pos]
        pos += 1
        if n == 0:
            break
        if keep and len(out) < MAX_TEXT_BYTES:
            out += data[pos : pos + n]
        pos += n
    return bytes(out), pos


# --- AVIF (rare in the wild: Pillow reads it for us) -------------------------------------


def _read_avif(f: BinaryIO, size: int) -> Container:
    from PIL import Image

    c = Container(format="avif")
    try:
        with Image.open(f) as im:
            c.width, c.height = im.size
            c.mode = im.mode
            raw_exif = im.info.get("exif")
            xmp = im.info.get("xmp")
    except Exception as exc:  # Pillow raises many types on broken files
        raise CorruptImageError(f"AVIF: {exc}") from exc
    if isinstance(raw_exif, bytes) and raw_exif:
        _put_exif(c, raw_exif)
    if isinstance(xmp, bytes):
        c.xmp = xmp.decode("utf-8", errors="replace")
    return c


# --- video (MP4, MOV, WebM, Matroska) -------------------------------------------------------


def _read_video(f: BinaryIO, fmt: str) -> Container:
    info = probe_video(f, fmt)
    c = Container(format=fmt, width=info.width, height=info.height, mode="RGB", animated=True)
    c.duration, c.frames, c.fps = info.duration, info.frames, info.fps
    c.warnings.extend(info.warnings)
    c.texts.update(info.tags)
    _unpack_vhs_comment(c)
    return c


def _unpack_vhs_comment(c: Container) -> None:
    """ComfyUI-VideoHelperSuite writes its PNG text chunks as one JSON ``comment`` tag,
    ``{"prompt": "<graph as JSON text>", "workflow": {...}}``; give them back their own keys
    so the ComfyUI reader reads a video as it reads a PNG."""
    comment = c.texts.get("comment", "")
    if not comment.lstrip().startswith("{") or "prompt" in c.texts:
        return
    try:
        data = json.loads(comment)
    except ValueError:
        return
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        if key in ("prompt", "workflow") and value is not None:
            c.texts.setdefault(key, value if isinstance(value, str) else json.dumps(value))


def read_container_bytes(data: bytes) -> Container:
    """Convenience for tests and fuzzing: read a container from bytes in memory."""
    return read_container(io.BytesIO(data), len(data))
