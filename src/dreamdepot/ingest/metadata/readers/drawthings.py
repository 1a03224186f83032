"""Draw Things: an XMP packet with CreatorTool "Draw Things", an A1111-like
``dc:description`` and a JSON ``exif:UserComment``."""

from __future__ import annotations

import html
import re
from pathlib import Path

from dreamdepot.ingest.metadata.containers import Container
from dreamdepot.ingest.metadata.model import Generation, parse_size, to_float, to_int, to_str
from dreamdepot.ingest.metadata.readers._json import loads_object

_USER_COMMENT = re.compile(
    r"<exif:UserComment>\s*<rdf:Alt>\s*<rdf:li[^>]*>(.*?)</rdf:li>", re.DOTALL
)


def read(c: Container, path: Path | None = None) -> Generation | None:
    xmp = c.xmp
    if not xmp or "Draw Things" not in xmp:
        return None
    m = _USER_COMMENT.search(xmp)
    data = loads_object(html.unescape(m.group(1))) if m else None
    if not data:
        return None
    g = Generation(generator="drawthings", raw=html.unescape(m.group(1)) if m else None)
    g.source.append(f"{c.format}:xmp")
    g.prompt = to_str(data.get("c")) or None
    g.negative_prompt = to_str(data.get("uc")) or None
    g.seed, g.steps = to_int(data.get("seed")), to_int(data.get("steps"))
    g.cfg_scale = to_float(data.get("scale"))
    g.sampler = to_str(data.get("sampler"))
    g.model = to_str(data.get("model"))
    g.width, g.height = parse_size(data.get("size"))
    g.denoise = to_float(data.get("strength"))
    g.params = {
        k: v
        for k, v in data.items()
        if k not in ("c", "uc", "seed", "steps", "scale", "sampler", "model", "size")
    }
    return g
