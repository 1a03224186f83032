"""A bounded EXIF (TIFF) reader: the few tags generators write, nothing else.

Written by hand rather than through Pillow because it must be fast on the hot path
(no image object), and safe on hostile input (every offset checked, every count capped).
"""

from __future__ import annotations

import struct

from dreamdepot.errors import MetadataError

# Tags generators use to carry metadata (see FORMATS.md).
IMAGE_DESCRIPTION = 0x010E
MAKE = 0x010F
MODEL = 0x0110
DOCUMENT_NAME = 0x010D
SOFTWARE = 0x0131
ARTIST = 0x013B
EXIF_IFD_POINTER = 0x8769
USER_COMMENT = 0x9286
MAKER_NOTE = 0x927C
XP_COMMENT = 0x9C9C

TAG_NAMES = {
    IMAGE_DESCRIPTION: "ImageDescription",
    MAKE: "Make",
    MODEL: "Model",
    DOCUMENT_NAME: "DocumentName",
    SOFTWARE: "Software",
    ARTIST: "Artist",
    USER_COMMENT: "UserComment",
    MAKER_NOTE: "MakerNote",
    XP_COMMENT: "XPComment",
}

_MAX_ENTRIES = 512
_MAX_VALUE = 16 * 1024 * 1024
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


def parse_exif(data: bytes) -> dict[str, bytes]:
    """Map tag name -> raw value bytes for the text-bearing tags in IFD0 and the Exif IFD.

    ``data`` may start with ``Exif\\0\\0`` or directly with the TIFF header (WebP writers
    differ). A tag present in both IFDs keeps the Exif IFD's value, which is where the
    standard puts UserComment; IFD0's copy is kept under ``IFD0:<name>``.

    >>> parse_exif(b"nonsense")
    Traceback (most recent call last):
    ...
    dreamdepot.errors.MetadataError: EXIF: no TIFF header
    """
    if data.startswith(b"Exif\x00\x00"):
        data = data[6:]
    if data[:4] == b"II*\x00":
        endian = "<"
    elif data[:4] == b"MM\x00*":
        endian = ">"
    else:
        raise MetadataError("EXIF: no TIFF header")
    if len(data) < 8:
        raise MetadataError("EXIF: truncated header")
    (ifd0,) = struct.unpack(endian + "I", data[4:8])
    out: dict[str, bytes] = {}
    try:
        exif_ptr = _read_ifd(data, ifd0, endian, out, prefix="IFD0:")
        if exif_ptr:
            _read_ifd(data, exif_ptr, endian, out, prefix="")
    except struct.error as exc:
        raise MetadataError("EXIF: truncated IFD") from exc
    for key in list(out):
        if key.startswith("IFD0:") and key[5:] not in out:
            out[key[5:]] = out[key]
    return out


def _read_ifd(data: bytes, offset: int, endian: str, out: dict[str, bytes], prefix: str) -> int:
    """Read one IFD into ``out``; return the Exif IFD pointer if this IFD holds one."""
    if offset <= 0 or offset + 2 > len(data):
        return 0
    (count,) = struct.unpack(endian + "H", data[offset : offset + 2])
    if count > _MAX_ENTRIES:
        raise MetadataError(f"EXIF: IFD with {count} entries exceeds the cap")
    exif_ptr = 0
    for i in range(count):
        entry = offset + 2 + 12 * i
        if entry + 12 > len(data):
            break
        tag, typ, n = struct.unpack(endian + "HHI", data[entry : entry + 8])
        if tag == EXIF_IFD_POINTER and typ in (4, 13):
            (exif_ptr,) = struct.unpack(endian + "I", data[entry + 8 : entry + 12])
            if exif_ptr == offset:
                exif_ptr = 0
            continue
        name = TAG_NAMES.get(tag)
        if name is None:
            continue
        size = _TYPE_SIZES.get(typ, 1) * n
        if size > _MAX_VALUE:
            raise MetadataError(f"EXIF: {name} value of {size} bytes exceeds the cap")
        if size <= 4:
            value = data[entry + 8 : entry + 8 + size]
        else:
            (ptr,) = struct.unpack(endian + "I", data[entry + 8 : entry + 12])
            value = data[ptr : len(data)] if ptr + size > len(data) else data[ptr : ptr + size]
        out[prefix + name] = bytes(value)
    return exif_ptr


def decode_user_comment(raw: bytes) -> str:
    """Decode an EXIF UserComment whatever its charset prefix and UTF-16 byte order.

    >>> decode_user_comment(b"ASCII\\x00\\x00\\x00hello")
    'hello'
    >>> decode_user_comment(b"UNICODE\\x00" + "héllo".encode("utf-16-be"))
    'héllo'
    >>> decode_user_comment(b"UNICODE\\x00" + "héllo".encode("utf-16-le"))
    'héllo'
    >>> decode_user_comment(b"no prefix at all")
    'no prefix at all'
    """
    head, body = raw[:8], raw[8:]
    if head == b"UNICODE\x00":
        return _decode_utf16(body)
    if head == b"ASCII\x00\x00\x00" or head == b"\x00" * 8:
        return _decode_text(body)
    if head == b"JIS\x00\x00\x00\x00\x00":
        return body.decode("shift_jis", errors="replace").rstrip("\x00")
    # No charset prefix (Fooocus, SaveImagePlus): a UTF-16 body shows itself by zero bytes.
    if len(raw) >= 4 and raw.count(0) * 3 > len(raw):
        return _decode_utf16(raw)
    return _decode_text(raw)


def _decode_utf16(body: bytes) -> str:
    if body[:2] == b"\xfe\xff":
        return body[2:].decode("utf-16-be", errors="replace").rstrip("\x00")
    if body[:2] == b"\xff\xfe":
        return body[2:].decode("utf-16-le", errors="replace").rstrip("\x00")
    # ASCII-range text in UTF-16 has its zero bytes first (BE) or second (LE).
    sample = body[:4096]
    zeros_even = sample[0::2].count(0)
    zeros_odd = sample[1::2].count(0)
    codec = "utf-16-le" if zeros_odd > zeros_even else "utf-16-be"
    if len(body) % 2:
        body = body[:-1]
    return body.decode(codec, errors="replace").rstrip("\x00")


def _decode_text(raw: bytes) -> str:
    raw = raw.rstrip(b"\x00")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_ascii_tag(raw: bytes) -> str:
    """Decode an ASCII-typed tag; generators put UTF-8 there, so try that first."""
    return _decode_text(raw)
