"""Tags from what the generation record says: LoRAs, the model, prompt segments."""

from __future__ import annotations

import re
from pathlib import Path

from dreamdepot.ingest.metadata.model import model_name
from dreamdepot.tagging.base import Proposal, Subject

_WEIGHTED = re.compile(r"\(([^():]+):\s*-?\d+(?:\.\d+)?\)")
_ALTERNATION = re.compile(r"\[([^\[\]]*\|[^\[\]]*)\]")
_NETWORK = re.compile(r"<[^<>]*>")
_STRIP = re.compile(r"[()\[\]{}]")
MAX_SEGMENTS = 40
MAX_LENGTH = 48


def load_synonyms(path: Path | None) -> dict[str, str]:
    """``alias = canonical`` per line (``#`` comments); keys compare lower-case."""
    if path is None or not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("#", 1)[0]
        alias, sep, canonical = line.partition("=")
        if sep and alias.strip() and canonical.strip():
            out[alias.strip().lower()] = canonical.strip()
    return out


def prompt_segments(prompt: str) -> list[str]:
    """Comma-separated segments, normalised.

    >>> prompt_segments("(masterpiece:1.2), [cat|dog], red fox BREAK snow, <lora:x:1>, ((sky))")
    ['masterpiece', 'cat', 'dog', 'red fox', 'snow', 'sky']
    """
    text = _NETWORK.sub(",", prompt)
    text = _WEIGHTED.sub(r"\1", text)
    text = _ALTERNATION.sub(lambda m: ",".join(m.group(1).split("|")), text)
    text = text.replace("BREAK", ",").replace("\n", ",")
    out: list[str] = []
    for raw in text.split(","):
        seg = " ".join(_STRIP.sub(" ", raw).split()).lower().strip(" .:;")
        seg = re.sub(r":\s*-?\d+(?:\.\d+)?$", "", seg).strip()
        if seg and len(seg) <= MAX_LENGTH and seg not in out:
            out.append(seg)
        if len(out) >= MAX_SEGMENTS:
            break
    return out


class PromptTermsTagger:
    name = "prompt"
    version = "2"  # 2: model and LoRA names keep their version dots
    needs_pixels = False

    def __init__(self, synonyms: dict[str, str] | None = None) -> None:
        self.synonyms = synonyms or {}

    def tag(self, subject: Subject) -> list[Proposal]:
        tags: list[str] = []
        for lora in subject.loras:  # names as model_name gives them: "v1.5" stays whole
            if name := model_name(str(lora.get("name") or "")):
                tags.append(f"lora:{name}")
        if name := model_name(subject.model):
            tags.append(f"model:{name}")
        for seg in prompt_segments(subject.prompt or ""):
            tags.append(self.synonyms.get(seg, seg))
        seen: list[str] = []
        for t in tags:
            if t not in seen:
                seen.append(t)
        return [Proposal(t, 1.0) for t in seen]
