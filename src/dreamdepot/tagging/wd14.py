"""WD14-style ONNX taggers (the de facto anime tagger): a local ``model.onnx`` and its tags CSV
(``tag_id,name,category,count``; category 9 = rating, 4 = character, 0 = general)."""

from __future__ import annotations

import csv
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dreamdepot.config import Settings
from dreamdepot.tagging.base import Proposal, Subject, TaggerUnavailable

CHARACTER_THRESHOLD = 0.85


class Wd14Tagger:
    name = "wd14"
    needs_pixels = True

    def __init__(self, model: Path, tags_csv: Path, threshold: float = 0.35) -> None:
        if not model.is_file():
            raise TaggerUnavailable(f"wd14_model {model} does not exist")
        if not tags_csv.is_file():
            raise TaggerUnavailable(f"wd14_tags {tags_csv} does not exist")
        try:
            import onnxruntime  # noqa: F401 - checked here for a clear message
        except ImportError as exc:
            raise TaggerUnavailable(
                "the wd14 tagger needs onnxruntime: "
                "pip install -c constraints.txt 'dreamdepot[faces]'"
            ) from exc
        self.model, self.tags_csv, self.threshold = model, tags_csv, threshold
        # the version follows the model and its labels, so a new model re-tags everything
        stat = model.stat()
        self.version = f"1:{model.name}:{stat.st_size}:{int(stat.st_mtime)}"
        with open(tags_csv, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "name" not in rows[0]:
            raise TaggerUnavailable(f"{tags_csv}: expected a CSV with a 'name' column")
        self.labels = [r["name"].replace("_", " ") for r in rows]
        self.categories = [int(r.get("category") or 0) for r in rows]
        self._session: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, library_dir: Path) -> Wd14Tagger:
        if not settings.wd14_model or not settings.wd14_tags:
            raise TaggerUnavailable(
                "set wd14_model (a .onnx file) and wd14_tags (its CSV) in dreamdepot.toml"
            )
        return cls(Path(settings.wd14_model), Path(settings.wd14_tags), settings.wd14_threshold)

    def _prepare(self, im: Image.Image, size: int) -> np.ndarray:
        im = im.convert("RGB")
        side = max(im.size)
        square = Image.new("RGB", (side, side), (255, 255, 255))
        square.paste(im, ((side - im.width) // 2, (side - im.height) // 2))
        square = square.resize((size, size), Image.Resampling.BICUBIC)
        arr = np.asarray(square, dtype=np.float32)[:, :, ::-1]  # RGB -> BGR, 0..255
        return np.ascontiguousarray(arr[None])

    def tag(self, subject: Subject) -> list[Proposal]:
        import onnxruntime as ort

        if subject.pixels is None:
            return []
        with self._lock:
            if self._session is None:
                self._session = ort.InferenceSession(
                    str(self.model), providers=["CPUExecutionProvider"]
                )
            inp = self._session.get_inputs()[0]
            size = inp.shape[1] if isinstance(inp.shape[1], int) else 448
            probs = self._session.run(None, {inp.name: self._prepare(subject.pixels, size)})[0][0]
        out = []
        for label, cat, p in zip(self.labels, self.categories, probs, strict=False):
            floor = CHARACTER_THRESHOLD if cat == 4 else self.threshold
            if cat == 9:
                continue  # ratings are not tags here
            if p >= floor:
                out.append(Proposal(label, round(float(p), 3)))
        return out
