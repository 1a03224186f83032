"""Tags from what the generation record says: LoRAs, the model, and the prompt's terms that
name what is in the picture.

A prompt is split on the syntaxes people use (commas, ``BREAK``, weights ``(x:1.2)``,
alternations ``[a|b]``, LoRA tags), normalised (width, case, ``#``, Danbooru underscores),
and cleared of quality boilerplate (the list the dream cache shares, ``semantic/
boilerplate.txt``, plus a library's own ``boilerplate.txt``). A long sentence fragment
becomes its noun phrases. Artist and style syntax (``artist:x``, ``by x``, ``in the style of
x``, ``x style``) becomes ``style:x``; ``character:x`` stays namespaced; a bare term is a
subject. Terms that a library uses across most of its unrelated prompt families carry no
information and are left out too (``common_terms``; cut-off in docs/autotag.md).
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from pathlib import Path

from dreamdepot.ingest.metadata.model import model_name
from dreamdepot.semantic import terms as prompt_reading
from dreamdepot.tagging.base import Proposal, Subject

_WEIGHTED = re.compile(r"\(([^():]+):\s*-?\d+(?:\.\d+)?\)")
_ALTERNATION = re.compile(r"\[([^\[\]]*\|[^\[\]]*)\]")
_NETWORK = re.compile(r"<[^<>]*>")
_STRIP = re.compile(r"[()\[\]{}]")
_STYLE = (
    re.compile(r"^(?:artist|style)\s*:\s*(.+)$"),
    re.compile(r"^(?:art )?by (.+)$"),
    re.compile(r"^in the style of (.+)$"),
    re.compile(r"^(.+?) style$"),
)
_CHARACTER = re.compile(r"^(?:character|char)\s*:\s*(.+)$")
MAX_SEGMENTS = 40
MAX_WORDS = 5  # longer segments are sentences: their noun phrases become tags
PLACEHOLDERS = frozenset({"unknown", "none", "null", "undefined", "n/a", "nan", "prompt"})
# A term in more than this share of a library's prompt families is left out (when the
# library has at least MIN_FAMILIES families); see docs/autotag.md.
COMMON_SHARE = 0.5
MIN_FAMILIES = 10
FAMILY_OVERLAP = 0.5


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


def normalise(text: str) -> str:
    """Width, case, ``#``, underscores and spacing: ``#テスト`` and ``テスト`` are one tag."""
    text = unicodedata.normalize("NFKC", text).replace("_", " ").replace("#", " ")
    return " ".join(_STRIP.sub(" ", text).split()).lower().strip(" .:;!?'\"")


def prompt_segments(prompt: str) -> list[str]:
    """Comma-separated segments, normalised.

    >>> prompt_segments("(masterpiece:1.2), [cat|dog], red_fox BREAK #snow, <lora:x:1>, ((sky))")
    ['masterpiece', 'cat', 'dog', 'red fox', 'snow', 'sky']
    """
    text, previous = prompt, None
    while text != previous:  # nested <setmacro[x]:<random:a|b>> (SwarmUI) goes inside out
        previous, text = text, _NETWORK.sub(",", text)
    text = text.replace("<", ",").replace(">", ",")
    text = _WEIGHTED.sub(r"\1", text)
    text = _ALTERNATION.sub(lambda m: ",".join(m.group(1).split("|")), text)
    text = re.sub(r"\bBREAK\b", ",", text).replace("\n", ",")
    out: list[str] = []
    for raw in re.split(r"[,。、]|(?<=[a-z\)])\.(?=\s|$)", text):
        seg = re.sub(r":\s*-?\d+(?:\.\d+)?$", "", normalise(raw)).strip()
        if seg and seg not in out:
            out.append(seg)
        if len(out) >= MAX_SEGMENTS:
            break
    return out


def _without_boilerplate(segment: str, boilerplate_file: str | None) -> str:
    """The segment with boilerplate phrases taken out ("ultra-detailed" counts as two words;
    a word goes only when all its parts do)."""
    words = segment.split()
    parts = [[p for p in w.split("-") if p] or [w] for w in words]
    flat = [p for ps in parts for p in ps]
    kept = prompt_reading.strip_boilerplate(flat, prompt_reading.boilerplate(boilerplate_file))
    out, i = [], 0
    for w, ps in zip(words, parts, strict=True):
        if any(kept[i : i + len(ps)]):
            out.append(w)
        i += len(ps)
    return " ".join(out)


def _noun_phrases(segment: str) -> list[str]:
    """The noun phrases of a sentence fragment: runs of up to three adjacent content words
    that end in a thing ("holding a rectangular sign out in front" -> "rectangular sign")."""
    reading = prompt_reading.read(segment)
    out: list[str] = []
    run: list[prompt_reading.Term] = []

    def flush() -> None:
        while run and not run[-1].nounish:
            run.pop()
        if run:
            out.append(" ".join(t.word for t in run[-3:]))
        run.clear()

    for t in reading.terms:
        if run and (t.index != run[-1].index + 1 or t.verb):
            flush()
        if not t.verb and not t.word.isdigit() and t.klass != "position":
            run.append(t)
    flush()
    return out


def segment_terms(prompt: str, boilerplate_file: str | None = None) -> list[str]:
    """The tags one prompt gives, in order, namespaced where its syntax says so."""
    out: list[str] = []
    for seg in prompt_segments(prompt):
        namespaced = _namespaced(seg)
        if namespaced:
            out.append(namespaced)
            continue
        seg = re.sub(r"^(?:a|an|the|some)\s+", "", seg)
        cleaned = _without_boilerplate(seg, boilerplate_file)
        if not cleaned or cleaned in PLACEHOLDERS or cleaned.replace(" ", "").isdigit():
            continue
        if cleaned != seg and len(cleaned.split()) > 1:  # what boilerplate left of a phrase
            out.extend(p for p in _noun_phrases(cleaned) if p not in PLACEHOLDERS)
            continue
        seg = cleaned
        if len(seg.split()) > MAX_WORDS:
            out.extend(p for p in _noun_phrases(seg) if p not in PLACEHOLDERS)
        else:
            out.append(seg)
    seen: list[str] = []
    for t in out:
        if t not in seen:
            seen.append(t)
    return seen


def _namespaced(segment: str) -> str | None:
    m = _CHARACTER.match(segment)
    if m:
        return f"character:{m.group(1).strip()}"
    for pattern in _STYLE:
        m = pattern.match(segment)
        if m and 0 < len(m.group(1).split()) <= 4:
            return f"style:{m.group(1).strip()}"
    return None


def common_terms(conn: sqlite3.Connection, limit: int = 20_000) -> set[str]:
    """Terms used across most of the library's unrelated prompt families.

    A family is a group of prompts that share at least half their terms (greedy, most used
    prompts first); a term in more than ``COMMON_SHARE`` of the families, in a library of at
    least ``MIN_FAMILIES`` families, says nothing about any one image.
    """
    rows = conn.execute(
        "SELECT text FROM prompts WHERE image_count > 0 ORDER BY image_count DESC LIMIT ?",
        (limit,),
    ).fetchall()
    families: list[set[str]] = []
    for (text,) in rows:
        mine = set(segment_terms(text))
        if not mine:
            continue
        for family in families:
            if len(mine & family) >= FAMILY_OVERLAP * min(len(mine), len(family)):
                family |= mine
                break
        else:
            families.append(set(mine))
    if len(families) < MIN_FAMILIES:
        return set()
    counts: dict[str, int] = {}
    for family in families:
        for term in family:
            counts[term] = counts.get(term, 0) + 1
    return {t for t, c in counts.items() if c > COMMON_SHARE * len(families)}


class PromptTermsTagger:
    name = "prompt"
    version = "3"  # 3: boilerplate and placeholders out, namespaces, noun phrases, common terms
    needs_pixels = False

    def __init__(
        self,
        synonyms: dict[str, str] | None = None,
        boilerplate_file: str | None = None,
        common: set[str] | None = None,
    ) -> None:
        self.synonyms = synonyms or {}
        self.boilerplate_file = boilerplate_file
        self.common = common or set()

    def tag(self, subject: Subject) -> list[Proposal]:
        tags: list[str] = []
        for lora in subject.loras:  # names as model_name gives them: "v1.5" stays whole
            if name := model_name(str(lora.get("name") or "")):
                tags.append(f"lora:{name}")
        if name := model_name(subject.model):
            tags.append(f"model:{name}")
        for term in segment_terms(subject.prompt or "", self.boilerplate_file):
            term = self.synonyms.get(term, term)
            if term not in self.common:
                tags.append(term)
        seen: list[str] = []
        for t in tags:
            if t not in seen:
                seen.append(t)
        return [Proposal(t, 1.0) for t in seen]
