"""NSFW detection through `nudenet` (an ONNX detector shipped in its wheel).

Optional and off by default: enable it with ``autotag = [..., "nsfw"]`` after
``pip install 'dreamdepot[nsfw]'``. **Licence: the NudeNet v3 code and model are AGPL-3.0**
(the wheel ships the AGPL text although its metadata says MIT), and it brings OpenCV; keep
that in mind before distributing a build that includes it.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from dreamdepot.tagging.base import Proposal, Subject, TaggerUnavailable

EXPOSED = {
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED", "ANUS_EXPOSED",
}  # fmt: skip
MIN_SCORE = 0.5


class NsfwTagger:
    name = "nsfw"
    version = "1"
    needs_pixels = True

    def __init__(self, min_score: float = MIN_SCORE) -> None:
        try:
            import nudenet  # noqa: F401 - checked here for the clear message
        except ImportError as exc:
            raise TaggerUnavailable(
                "the nsfw tagger needs the 'nsfw' extra (nudenet; AGPL-3.0): "
                "pip install -c constraints.txt 'dreamdepot[nsfw]'"
            ) from exc
        self.min_score = min_score
        self._detector: Any = None
        self._lock = threading.Lock()

    def tag(self, subject: Subject) -> list[Proposal]:
        if subject.pixels is None:
            return []
        with self._lock:
            if self._detector is None:
                from nudenet import NudeDetector

                self._detector = NudeDetector()
            bgr = np.ascontiguousarray(np.asarray(subject.pixels.convert("RGB"))[:, :, ::-1])
            found = self._detector.detect(bgr)
        hits = [
            f
            for f in found
            if f.get("class") in EXPOSED and float(f.get("score", 0)) >= self.min_score
        ]
        if not hits:
            return []
        best = max(float(f["score"]) for f in hits)
        out = [Proposal("nsfw", round(best, 3))]
        for f in hits:
            label = "nudity:" + str(f["class"]).removesuffix("_EXPOSED").lower().replace("_", " ")
            out.append(Proposal(label, round(float(f["score"]), 3)))
        return out
