"""The typed record every generator reader returns."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

MODEL_EXTENSIONS = re.compile(r"\.(safetensors|ckpt|gguf|pt|pth|bin|sft)$", re.IGNORECASE)


def model_name(raw: str | None) -> str | None:
    r"""One identity for a checkpoint however a generator names it: folder and file extension
    stripped (the version dots inside the name kept). The catalog's migration 0008 applies the
    same rules in SQL to existing rows.

    >>> model_name("sd_xl_base_1.0.safetensors"), model_name("SDXL\\sd_xl_base_1.0.ckpt")
    ('sd_xl_base_1.0', 'sd_xl_base_1.0')
    >>> model_name("NovelAI Diffusion V4.5"), model_name("  "), model_name(None)
    ('NovelAI Diffusion V4.5', None, None)
    """
    if raw is None:
        return None
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = MODEL_EXTENSIONS.sub("", name).strip()
    return name or None


@dataclass
class Resource:
    """A LoRA, embedding or other add-on model used by a generation."""

    name: str
    weight: float | None = None
    hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "hash": self.hash}


@dataclass
class Pass:
    """One sampling pass beyond the first: hires fix, refiner, second KSampler, upscale."""

    kind: str
    seed: int | None = None
    steps: int | None = None
    sampler: str | None = None
    scheduler: str | None = None
    cfg_scale: float | None = None
    denoise: float | None = None
    model: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Generation:
    """What a file says about how it was generated, normalised across generators.

    Fields a generator does not record stay ``None``. ``params`` keeps every other
    parameter under the generator's own key names; ``raw`` keeps the text as embedded.
    """

    generator: str
    generator_version: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    steps: int | None = None
    sampler: str | None = None
    scheduler: str | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    model: str | None = None
    model_hash: str | None = None
    vae: str | None = None
    denoise: float | None = None
    clip_skip: int | None = None
    loras: list[Resource] = field(default_factory=list)
    embeddings: list[Resource] = field(default_factory=list)
    passes: list[Pass] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    raw: str | None = None
    graph: dict[str, Any] | None = None
    source: list[str] = field(default_factory=list)
    ai_generated: bool = True

    def to_dict(self, include_graph: bool = False) -> dict[str, Any]:
        """The JSON shape shown by ``dreamdepot inspect --json`` and the API."""
        d = asdict(self)
        if not include_graph:
            d.pop("graph")
        return d


def to_int(value: Any) -> int | None:
    """Seeds, steps and sizes arrive as ints, floats or strings; normalise or give None.

    >>> to_int("42"), to_int(7.0), to_int("x"), to_int(None), to_int(True)
    (42, 7, None, None, None)
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        s = value.strip()
        try:
            return int(s)
        except ValueError:
            try:
                f = float(s)
            except ValueError:
                return None
            return int(f) if f.is_integer() else None
    return None


def to_float(value: Any) -> float | None:
    """Numbers arrive as numbers or strings; NaN and infinities are no value.

    >>> to_float("7.5"), to_float(7), to_float("nan"), to_float([])
    (7.5, 7.0, None, None)
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        f = float(value)
    elif isinstance(value, str):
        try:
            f = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return f if f == f and abs(f) != float("inf") else None


def to_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def parse_size(value: Any) -> tuple[int | None, int | None]:
    """'1024x768' or '(1024, 768)' -> (1024, 768).

    >>> parse_size("1024x768"), parse_size("(832, 1216)"), parse_size("bad")
    ((1024, 768), (832, 1216), (None, None))
    """
    if not isinstance(value, str):
        return None, None
    s = value.strip().strip("()[]")
    for sep in ("x", "X", "×", ","):
        if sep in s:
            a, _, b = s.partition(sep)
            return to_int(a), to_int(b)
    return None, None
