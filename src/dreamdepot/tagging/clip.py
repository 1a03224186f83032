"""CLIP zero-shot tagging over a user-editable vocabulary, from a local CLIP folder
(transformers' CLIPModel + CLIPProcessor; never downloaded)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dreamdepot.config import Settings
from dreamdepot.tagging.base import Proposal, Subject, TaggerUnavailable

DEFAULT_VOCABULARY = [
    "portrait", "landscape", "animal", "cat", "dog", "horse", "bird", "building", "city",
    "forest", "mountain", "ocean", "beach", "food", "car", "flower", "night sky", "interior",
    "fantasy", "anime", "photograph", "painting", "sketch", "3d render",
]  # fmt: skip


class ClipTagger:
    name = "clip"
    needs_pixels = True

    def __init__(self, model_dir: Path, vocabulary: list[str], threshold: float = 0.25) -> None:
        if not (model_dir / "config.json").is_file():
            raise TaggerUnavailable(f"clip_model {model_dir} is not a CLIP model folder")
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as exc:
            raise TaggerUnavailable(
                "the clip tagger needs the 'semantic' extra (torch and transformers)"
            ) from exc
        self.model_dir, self.vocabulary, self.threshold = model_dir, vocabulary, threshold
        self.version = (
            f"1:{model_dir.name}:{len(vocabulary)}:{abs(hash(tuple(vocabulary))) % 10**8}"
        )
        self._model: Any = None
        self._processor: Any = None
        self._text: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, library_dir: Path) -> ClipTagger:
        if not settings.clip_model:
            raise TaggerUnavailable("set clip_model to a local CLIP folder in dreamdepot.toml")
        model_dir = Path(settings.clip_model)
        vocab = DEFAULT_VOCABULARY
        vocab_file = Path(settings.clip_vocabulary or library_dir / "clip-vocabulary.txt")
        if vocab_file.is_file():
            vocab = [
                v.strip()
                for v in vocab_file.read_text(encoding="utf-8").splitlines()
                if v.strip() and not v.startswith("#")
            ]
        return cls(model_dir, vocab, settings.clip_threshold)

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import CLIPModel, CLIPProcessor

        self._processor = CLIPProcessor.from_pretrained(self.model_dir, local_files_only=True)
        self._model = CLIPModel.from_pretrained(self.model_dir, local_files_only=True).eval()
        prompts = [f"a picture of {v}" for v in self.vocabulary]
        inputs = self._processor(text=prompts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            text = self._model.get_text_features(**inputs)
        text = text if isinstance(text, torch.Tensor) else text.pooler_output
        self._text = torch.nn.functional.normalize(text, dim=-1)

    def tag(self, subject: Subject) -> list[Proposal]:
        import torch

        if subject.pixels is None:
            return []
        with self._lock:
            if self._model is None:
                self._load()
            inputs = self._processor(images=subject.pixels, return_tensors="pt")
            with torch.inference_mode():
                image = self._model.get_image_features(**inputs)
            image = image if isinstance(image, torch.Tensor) else image.pooler_output
            image = torch.nn.functional.normalize(image, dim=-1)
            scale = float(self._model.logit_scale.detach().exp())
            logits = (scale * image @ self._text.T)[0].numpy()
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        return [
            Proposal(v, round(float(p), 3))
            for v, p in zip(self.vocabulary, probs, strict=True)
            if p >= self.threshold
        ]
