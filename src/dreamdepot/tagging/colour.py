"""Colour and shape: dominant colours by name, monochrome, dark/bright, orientation,
resolution class. Cheap: works on a 64 px copy."""

from __future__ import annotations

import numpy as np
from PIL import Image

from dreamdepot.tagging.base import Proposal, Subject

# Named colours in HSV terms: hue ranges (degrees) for saturated pixels.
HUES = [
    ("red", 0, 15),
    ("orange", 15, 40),
    ("yellow", 40, 70),
    ("green", 70, 165),
    ("cyan", 165, 195),
    ("blue", 195, 255),
    ("purple", 255, 290),
    ("pink", 290, 340),
    ("red", 340, 361),
]
MIN_SHARE = 0.15


def resolution_class(w: int, h: int) -> str:
    """The image's size class by megapixels.

    >>> resolution_class(1024, 1024), resolution_class(512, 768), resolution_class(3840, 2160)
    ('res:1mp', 'res:small', 'res:4k')
    """
    mp = w * h / 1e6
    if mp >= 7.5:
        return "res:4k"
    if mp >= 1.9:
        return "res:2mp"
    if mp >= 0.8:
        return "res:1mp"
    return "res:small"


class ColourTagger:
    name = "colour"
    version = "2"  # 2: orientation:* (a bare "landscape" is scenery, not a shape)
    needs_pixels = True

    def tag(self, subject: Subject) -> list[Proposal]:
        out: list[Proposal] = []
        w, h = subject.width, subject.height
        if w and h:
            ratio = w / h
            out.append(
                Proposal(
                    "orientation:"
                    + (
                        "square"
                        if 0.95 <= ratio <= 1.05
                        else "portrait"
                        if ratio < 1
                        else "landscape"
                    )
                )
            )
            out.append(Proposal(resolution_class(w, h)))
        if subject.pixels is None:
            return out
        small = subject.pixels.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR)
        hsv = np.asarray(small.convert("HSV"), dtype=np.float32).reshape(-1, 3)
        hue, sat, val = hsv[:, 0] * 360 / 255, hsv[:, 1] / 255, hsv[:, 2] / 255
        brightness = float(val.mean())
        if brightness < 0.25:
            out.append(Proposal("dark", round(1 - brightness / 0.25 * 0.5, 2)))
        elif brightness > 0.75:
            out.append(Proposal("bright", round(0.5 + (brightness - 0.75) * 2, 2)))
        saturated = (sat > 0.25) & (val > 0.2)
        if saturated.mean() < 0.05:
            out.append(Proposal("monochrome", round(1 - float(saturated.mean()) * 10, 2)))
        shares: dict[str, float] = {}
        n = len(hue)
        for name, lo, hi in HUES:
            share = float(((hue >= lo) & (hue < hi) & saturated).sum()) / n
            shares[name] = shares.get(name, 0.0) + share
        shares["white"] = float(((sat <= 0.15) & (val > 0.85)).sum()) / n
        shares["black"] = float((val < 0.12).sum()) / n
        shares["gray"] = float(((sat <= 0.15) & (val >= 0.12) & (val <= 0.85)).sum()) / n
        for name, share in sorted(shares.items(), key=lambda kv: -kv[1]):
            if share >= MIN_SHARE:
                out.append(Proposal(f"colour:{name}", round(min(1.0, share * 2), 2)))
        return out
