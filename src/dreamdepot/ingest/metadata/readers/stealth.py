"""Stealth PNG info: infotext (A1111 stealth-pnginfo) or NovelAI's chunk JSON hidden in the
least significant bits of the alpha channel (or of R, G and B), read column by column.

Decoding pixels is the expensive part, so the registry only calls this for PNG and
lossless WebP files that carry no other metadata (and always for NovelAI's alpha copy
when asked explicitly).
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from dreamdepot.errors import MetadataError
from dreamdepot.ingest.metadata.containers import Container
from dreamdepot.ingest.metadata.model import Generation

if TYPE_CHECKING:  # numpy is imported where pixels are read: start-up stays light
    import numpy as np

_MAGICS = {
    b"stealth_pnginfo": ("alpha", False),
    b"stealth_pngcomp": ("alpha", True),
    b"stealth_rgbinfo": ("rgb", False),
    b"stealth_rgbcomp": ("rgb", True),
}
MAX_PIXELS = 64 * 1024 * 1024
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024


def extract_bits(pixels: np.ndarray, mode: str) -> np.ndarray:
    """The bit stream in reading order: x outer, y inner; RGB mode takes R, G, B in turn."""
    if mode == "alpha":
        return (pixels[:, :, 3] & 1).T.reshape(-1)
    return (pixels[:, :, :3] & 1).transpose(1, 0, 2).reshape(-1)


def decode_stealth(pixels: np.ndarray) -> tuple[str, str] | None:
    """Return (magic, payload text) or None when the image carries no stealth data."""
    import numpy as np

    if pixels.ndim != 3 or pixels.shape[2] < 3:
        return None
    modes = ["alpha", "rgb"] if pixels.shape[2] == 4 else ["rgb"]
    for mode in modes:
        col_len = pixels.shape[0] * (1 if mode == "alpha" else 3)
        head_cols = (15 * 8 + 32) // col_len + 1
        head = extract_bits(pixels[:, :head_cols], mode)
        if head.size < 152:
            continue
        magic = np.packbits(head[:120]).tobytes()
        if magic not in _MAGICS or _MAGICS[magic][0] != mode:
            continue
        length = int.from_bytes(np.packbits(head[120:152]).tobytes(), "big")
        if length <= 0 or length > MAX_PAYLOAD_BYTES * 8:
            raise MetadataError(f"stealth: implausible payload length {length} bits")
        needed_cols = (152 + length) // col_len + 1
        bits = extract_bits(pixels[:, :needed_cols], mode)
        if bits.size < 152 + length:
            raise MetadataError("stealth: payload runs past the image")
        payload = np.packbits(bits[152 : 152 + length]).tobytes()
        if _MAGICS[magic][1]:
            payload = _gunzip(payload)
        return magic.decode(), payload.decode("utf-8", errors="replace")
    return None


def _gunzip(data: bytes) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            out = f.read(MAX_PAYLOAD_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise MetadataError(f"stealth: payload does not decompress: {exc}") from exc
    if len(out) > MAX_PAYLOAD_BYTES:
        raise MetadataError("stealth: payload decompresses beyond the cap")
    return out


def read_pixels(path: Path) -> np.ndarray | None:
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        if im.width * im.height > MAX_PIXELS:
            return None
        if im.mode in ("RGBA", "RGB"):
            return np.asarray(im)
        return np.asarray(im.convert("RGBA" if "A" in im.mode else "RGB"))


def read(c: Container, path: Path | None = None) -> Generation | None:
    """Called by the registry only for candidate files; see module docstring."""
    if path is None or not (c.format == "png" or (c.format == "webp" and c.lossless)):
        return None
    try:
        pixels = read_pixels(path)
    except Exception as exc:  # Pillow raises many types on broken pixel data
        raise MetadataError(f"stealth: pixels unreadable: {exc}") from exc
    if pixels is None:
        return None
    found = decode_stealth(pixels)
    if found is None:
        return None
    magic, text = found
    return generation_from_payload(magic, text)


def generation_from_payload(magic: str, text: str) -> Generation | None:
    from dreamdepot.ingest.metadata.containers import Container as C
    from dreamdepot.ingest.metadata.infotext import looks_like_infotext, parse_infotext
    from dreamdepot.ingest.metadata.readers import novelai
    from dreamdepot.ingest.metadata.readers._json import loads_object

    data = loads_object(text)
    if data is not None:
        fake = C(format="png", texts={k: v for k, v in data.items() if isinstance(v, str)})
        g = novelai.read(fake)
        if g is not None:
            g.source = [f"png:stealth:{magic}"]
            return g
        return None
    if looks_like_infotext(text) or text.strip():
        g = parse_infotext(text)
        g.source.append(f"png:stealth:{magic}")
        return g
    return None
