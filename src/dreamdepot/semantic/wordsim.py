"""Word similarity from the prompt embedder itself, so "couch" ≈ "sofa" needs no synonym
table. Vectors of single words and short phrases are cached per process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from dreamdepot.semantic.embedders import Embedder

CACHE_WORDS = 50_000
# Sentence models are trained on sentences: a word alone is out of distribution. Inside a
# neutral frame, synonyms separate from co-hyponyms better (bench/wordsim_calibration.py:
# AUC 0.90 vs 0.85 on a general word list kept apart from the cache's evaluation set).
FRAME = "a photo of {}"


class WordVectors:
    """``WordVectors(embedder)(left, right)`` -> the cosine matrix of two word lists."""

    def __init__(self, embedder: Embedder, capacity: int = CACHE_WORDS) -> None:
        self.embedder: Embedder = getattr(embedder, "inner", embedder)  # words as they are
        self.capacity = capacity
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def vectors(self, words: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = [w for w in dict.fromkeys(words) if w not in self._vectors]
        if missing:
            fresh = self.embedder.embed_texts([FRAME.format(w) for w in missing])
            with self._lock:
                for w, v in zip(missing, fresh, strict=True):
                    self._vectors[w] = v
                while len(self._vectors) > self.capacity:
                    self._vectors.popitem(last=False)
        with self._lock:
            rows = []
            for w in words:
                self._vectors.move_to_end(w)
                rows.append(self._vectors[w])
        return np.stack(rows) if rows else np.zeros((0, self.embedder.dim), np.float32)

    def __call__(self, left: Sequence[str], right: Sequence[str]) -> list[list[float]]:
        if not left or not right:
            return [[] for _ in left]
        both = self.vectors([*left, *right])
        matrix = both[: len(left)] @ both[len(left) :].T
        return [[float(x) for x in row] for row in matrix]


_shared: dict[int, WordVectors] = {}


def word_vectors(embedder: Embedder) -> WordVectors:
    """One cache per embedder per process."""
    key = id(embedder)
    if key not in _shared:
        _shared[key] = WordVectors(embedder)
    return _shared[key]
