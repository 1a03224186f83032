"""A prompt as the words that say what is in the picture.

Both the dream cache (does this request ask for a picture we already have?) and the prompt
tagger need the same reading of a prompt: prompt syntax set aside (weights ``(x:1.2)``,
``[a|b]``, ``BREAK``, ``<lora:…>`` tags, Danbooru underscores, ``#``), quality boilerplate
dropped (``boilerplate.txt``, user-extensible), and each remaining word known by its lemma,
grammatical number, possible parts of speech (LemmInflect's lexicon) and, where it has one,
its *contrast class*: a small hand-written set of general word classes whose members name
mutually exclusive choices for a picture (colours, materials, counts, seasons, times of day,
weather, media, sizes, ages, spatial relations, negation). The classes are general English,
documented in docs/dream-cache.md, and were not derived from any evaluation pair.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

# --- contrast classes: class -> {word: canonical value} -------------------------------------


def _class(*groups: str) -> dict[str, str]:
    """``"grey gray"`` -> both words map to the group's first word."""
    out: dict[str, str] = {}
    for group in groups:
        words = group.split()
        for w in words:
            out[w] = words[0]
    return out


CLASSES: dict[str, dict[str, str]] = {
    "colour": _class(
        "red",
        "orange",
        "yellow",
        "green",
        "blue",
        "purple",
        "violet",
        "pink",
        "brown",
        "black",
        "white",
        "gray grey",
        "gold golden",
        "silver silvery",
        "cyan",
        "magenta",
        "teal",
        "turquoise",
        "beige",
        "crimson",
        "scarlet",
        "navy",
        "maroon",
        "blonde blond",
        "ginger",
        "brunette",
        "monochrome",
    ),
    "material": _class(
        "glass",
        "wood wooden",
        "metal metallic",
        "steel",
        "iron",
        "stone",
        "marble",
        "paper",
        "plastic",
        "leather",
        "velvet",
        "silk",
        "cotton",
        "wool woolen knitted",
        "crystal crystalline",
        "ice icy",
        "clay",
        "brass",
        "bronze",
        "copper",
        "porcelain",
        "ceramic",
        "concrete",
        "denim",
        "cardboard",
        "rubber",
        "lego",
    ),
    "count": _class(
        "0 zero",
        "1 one single solo lone",
        "2 two pair couple duo",
        "3 three trio",
        "4 four",
        "5 five",
        "6 six",
        "7 seven",
        "8 eight",
        "9 nine",
        "10 ten",
        "11 eleven",
        "12 twelve dozen",
        "few",
        "several",
        "many multiple numerous",
        "group crowd flock herd pack swarm bunch fleet army",
    ),
    "time of day": _class(
        "morning",
        "noon midday",
        "afternoon",
        "evening",
        "night nighttime midnight",
        "day daytime daylight",
        "dawn sunrise daybreak",
        "dusk twilight",
        "sunset",
    ),
    "season": _class("spring", "summer", "autumn fall autumnal", "winter wintry"),
    "weather": _class(
        "rain rainy raining",
        "snow snowy snowing snowfall",
        "storm stormy thunderstorm tempest",
        "fog foggy mist misty",
        "sunny",
        "cloudy overcast",
        "wind windy",
    ),
    "medium": _class(
        "photo photograph photography photographic",
        "painting painted painterly",
        "oil",
        "watercolor watercolour",
        "acrylic",
        "gouache",
        "sketch sketched",
        "drawing drawn",
        "pencil",
        "charcoal",
        "ink",
        "crayon",
        "pastel",
        "anime",
        "manga",
        "cartoon",
        "comic",
        "illustration",
        "render rendering rendered",
        "3d",
        "cgi cg",
        "pixel pixelated",
        "lowpoly",
        "vector",
        "claymation",
        "sculpture",
        "ukiyo",
        "engraving",
        "mosaic",
        "embroidery",
    ),
    "size": _class(
        "small tiny little mini miniature", "big large huge giant enormous massive gigantic"
    ),
    "age": _class("young youthful teenage", "old elderly aged"),
    "position": _class(
        "above atop over",
        "below under beneath underneath",
        "inside within",
        "outside",
        "front foreground",
        "behind background",
        "beside next alongside",
    ),
    "negation": _class("no not without never none nothing"),
}
# A broader word on one side, a narrower one on the other: not a different medium.
MEDIUM_PARENTS = {
    "painting": {"oil", "watercolor", "acrylic", "gouache"},
    "drawing": {"pencil", "charcoal", "crayon", "ink", "sketch", "pastel"},
    "illustration": {"anime", "manga", "cartoon", "comic", "painting", "drawing", "vector"},
    "render": {"3d", "cgi", "lowpoly"},
}
# Prepositions too ambiguous to carry a relation ("in the style of", "on mars"); a spatial
# word on one side contrasts with one of these on the other unless it is what they imply.
WEAK_PREPOSITIONS = {"on": {"above"}, "in": {"inside"}, "into": {"inside"}, "onto": {"above"}}


def _split(words: str) -> frozenset[str]:
    return frozenset(words.split())


FUNCTION_WORDS = _split(
    """a an the of and or with to for from as at by is are was were be been being am has have
    had do does did it its it's this that these those there their them they he she him her
    his hers you your we our us i me my which who whom whose while when where so very some
    any each every all both just also then than too into onto upon through across toward
    towards about after before during until till since among amongst between around along
    against amid amidst throughout via per off out up down away despite except like unlike
    s image picture pic shot style styled shows showing depicting features featuring"""
)
# Verbs that state how a thing is shown rather than what it does: present on one side only,
# they elaborate ("a red fox *standing* in the snow"); any other verb on one side only is an
# action the other prompt does not ask for ("a *sleeping* cat").
LIGHT_VERBS = _split("be have wear dress stand sit pose hold show depict feature contain make look")
_DANBOORU_COUNT = re.compile(r"^(\d+)(girl|boy|other|koma)s?$")
_TAG = re.compile(r"<[^<>]*>")
_WEIGHT = re.compile(r"(?<=[^\W\d_]|[)\]\s]):\s*-?\d+(?:\.\d+)?(?=\s*[)\],]|\s*$)")
_SCORE = re.compile(r"\bscore_\d+(?:_up)?\b", re.IGNORECASE)
_BREAK = re.compile(r"\bBREAK\b")
# Multi-word spellings of one word, so each side reads them alike.
_PHRASES = [
    (re.compile(r"\bnext to\b"), "beside"),
    (re.compile(r"\bin front of\b"), "front"),
    (re.compile(r"\bon top of\b"), "atop"),
    (re.compile(r"\b(night|day) time\b"), r"\1"),
    (re.compile(r"\bclose[ -]up\b"), "closeup"),
]
_SEGMENT = re.compile(r"[,.;:!?\n|()\[\]{}]+")
_WORD = re.compile(
    r"[0-9a-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff'’-]+|[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]+"
)


@dataclass(frozen=True)
class Term:
    """One content word of a prompt."""

    word: str  # as written, normalised (lower case)
    lemma: str
    plural: bool
    pos: frozenset[str]  # possible parts of speech (NOUN, VERB, ADJ, ADV, PROPN)
    klass: str | None  # contrast class, if any
    value: str | None  # canonical value within the class
    segment: int
    index: int  # position among the prompt's words (function words included)
    noun_follows: bool = False  # a noun comes next, function words aside ("full of pears")
    adjunct: bool = False  # a noun comes right next: "holiday season", "rose field"
    verb: bool = False  # an inflected verb in context: "riding", "stands calmly", "chased"

    @property
    def known(self) -> bool:
        """In the lexicon (typos and names are not)."""
        return bool(self.pos) or self.word.isdigit() or not self.word.isascii()

    @property
    def nounish(self) -> bool:
        """Names a thing: a noun (a word that can also be an adjective or adverb counts only
        where no noun follows it: "young" in "young dog" qualifies), or a word the lexicon
        does not know (names: "miku", "spiderman")."""
        if not self.pos:
            return not self.word.isdigit()
        if self.verb or "NOUN" not in self.pos:
            return False
        if self.pos & {"ADJ", "ADV"}:
            return not self.noun_follows
        return True


@dataclass(frozen=True)
class Reading:
    terms: tuple[Term, ...]
    weak: tuple[tuple[int, str], ...]  # (index, word) of weak prepositions

    def by_segment(self) -> dict[int, list[Term]]:
        out: dict[int, list[Term]] = {}
        for t in self.terms:
            out.setdefault(t.segment, []).append(t)
        return out


def boilerplate(extra_file: str | None = None) -> tuple[tuple[str, ...], ...]:
    """The boilerplate phrases as word tuples, longest first (``boilerplate.txt``, plus a
    library's own file: a line adds a term, ``-term`` removes one). An edited file is
    read again."""
    return _boilerplate(extra_file, _mtime(extra_file))


def _mtime(path: str | None) -> float:
    try:
        return Path(path).stat().st_mtime if path else 0.0
    except OSError:
        return 0.0


@functools.lru_cache(maxsize=8)
def _boilerplate(extra_file: str | None, _mtime: float) -> tuple[tuple[str, ...], ...]:
    lines = resources.files("dreamdepot.semantic").joinpath("boilerplate.txt").read_text("utf-8")
    terms = {ln.strip().lower() for ln in lines.splitlines() if ln.strip() and ln[0] != "#"}
    if extra_file and Path(extra_file).is_file():
        for ln in Path(extra_file).read_text(encoding="utf-8").splitlines():
            ln = ln.strip().lower()
            if not ln or ln.startswith("#"):
                continue
            if ln.startswith("-"):
                terms.discard(ln[1:].strip())
            else:
                terms.add(ln)
    phrases = {tuple(_WORD.findall(t.replace("_", " ").replace("-", " "))) for t in terms}
    return tuple(sorted((p for p in phrases if p), key=len, reverse=True))


def normalise(prompt: str) -> str:
    """Prompt syntax set aside: tags, weights, ``BREAK``, underscores, width; lower case."""
    text = unicodedata.normalize("NFKC", prompt)
    text = _TAG.sub(",", text)
    text = _SCORE.sub(",", text)
    text = _BREAK.sub(",", text)
    text = _WEIGHT.sub("", text)
    text = text.replace("_", " ").replace("#", " ").replace("\\", " ").lower()
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=65536)
def lexicon(word: str) -> tuple[str, frozenset[str], bool]:
    """(lemma, possible parts of speech, plural) from LemmInflect's lexicon."""
    import lemminflect

    lemmas = lemminflect.getAllLemmas(word)
    if not lemmas:
        if word.isdigit() or not word.isascii():
            return word, frozenset(), False
        guess = lemminflect.getAllLemmasOOV(word, "NOUN").get("NOUN", (word,))[0]
        return guess, frozenset(), guess != word and len(word) > 3
    noun = lemmas.get("NOUN")
    lemma = noun[0] if noun else next(iter(lemmas.values()))[0]
    verb = lemmas.get("VERB")
    if verb and word.endswith(("ing", "ed")) and not noun:
        lemma = verb[0]
    plural = bool(noun) and noun[0] != word and not word.endswith(("ing", "ed"))
    return lemma, frozenset(lemmas), plural


@functools.lru_cache(maxsize=16384)
def verb_lemma(word: str) -> str:
    """ "standing" -> "stand" (``lexicon`` prefers the noun reading)."""
    import lemminflect

    return lemminflect.getAllLemmas(word).get("VERB", (word,))[0]


def _words(segment_text: str) -> list[str]:
    out: list[str] = []
    for raw in _WORD.findall(segment_text):
        raw = raw.strip("'’-")
        if not raw:
            continue
        if raw.endswith(("'s", "’s")):
            raw = raw[:-2]
        if "-" in raw:
            import lemminflect

            if not lemminflect.getAllLemmas(raw):
                out.extend(p for p in raw.split("-") if p)
                continue
        out.append(raw)
    return out


def strip_boilerplate(words: list[str], phrases: tuple[tuple[str, ...], ...]) -> list[str | None]:
    kept: list[str | None] = list(words)
    for phrase in phrases:
        n = len(phrase)
        for i in range(len(words) - n + 1):
            if tuple(words[i : i + n]) == phrase and all(kept[i : i + n]):
                for j in range(i, i + n):
                    kept[j] = None
    return kept


def read(prompt: str, extra_boilerplate: str | None = None) -> Reading:
    """Parse a prompt into its content terms (see the module docstring)."""
    return _read(prompt, extra_boilerplate, _mtime(extra_boilerplate))


@functools.lru_cache(maxsize=4096)
def _read(prompt: str, extra_boilerplate: str | None, _mtime: float) -> Reading:
    phrases = boilerplate(extra_boilerplate)
    terms: list[Term] = []
    weak: list[tuple[int, str]] = []
    index = 0
    for seg_no, segment in enumerate(_SEGMENT.split(normalise(prompt))):
        words = _words(segment)
        kept = strip_boilerplate(words, phrases)
        seg_terms: list[Term] = []
        gaps: dict[int, list[str]] = {}  # index of a term -> function words just before it
        skipped: list[str] = []
        for word in kept:
            index += 1
            if word is None:
                skipped.append("")
                continue
            if len(word) == 1 and word.isascii() and word.isalpha():
                continue  # "e" of "ukiyo-e", stray letters
            if word in WEAK_PREPOSITIONS:
                weak.append((index, word))
                skipped.append(word)
                continue
            if word in FUNCTION_WORDS:
                skipped.append(word)
                continue
            gaps[index], skipped = skipped, []
            m = _DANBOORU_COUNT.match(word)
            if m:
                seg_terms.append(_term(m.group(1), seg_no, index, ("count", m.group(1))))
                seg_terms.append(_term(m.group(2), seg_no, index, plural=m.group(1) != "1"))
                continue
            seg_terms.append(_term(word, seg_no, index))
        terms.extend(_in_context(seg_terms, gaps))
    return Reading(tuple(terms), tuple(weak))


def _can_be_noun(t: Term) -> bool:
    return (not t.pos and not t.word.isdigit()) or ("NOUN" in t.pos and not _ing_or_ed(t))


def _ing_or_ed(t: Term) -> bool:
    return "VERB" in t.pos and len(t.word) > 4 and t.word.endswith(("ing", "ed"))


def _in_context(seg: list[Term], gaps: dict[int, list[str]]) -> list[Term]:
    """Flags that need the neighbours: what follows a word, and whether an "-s" word is a
    verb ("the girl *stands*") or a plural ("neon *signs*")."""
    out: list[Term] = []
    for i, t in enumerate(seg):
        nxt = seg[i + 1] if i + 1 < len(seg) else None
        prev = out[-1] if out else None
        verb = _ing_or_ed(t)
        if not verb and "VERB" in t.pos and t.word.endswith("s") and len(t.word) > 3:
            verb = "NOUN" not in t.pos or (
                prev is not None
                and prev.nounish
                and prev.index >= t.index - 2
                and (nxt is None or not _can_be_noun(nxt) or nxt.index > t.index + 1)
            )
        out.append(
            replace(
                t,
                verb=verb,
                noun_follows=nxt is not None
                and _can_be_noun(nxt)
                and not nxt.klass
                and all(w in ("of", "a", "an", "the") for w in gaps.get(nxt.index, [])),
                adjunct=nxt is not None and nxt.index == t.index + 1 and _can_be_noun(nxt),
            )
        )
    return out


def _term(
    word: str,
    segment: int,
    index: int,
    klass: tuple[str, str] | None = None,
    plural: bool | None = None,
) -> Term:
    lemma, pos, is_plural = lexicon(word)
    if klass is None:
        klass = classify(word, lemma)

    return Term(
        word=word,
        lemma=lemma,
        plural=is_plural if plural is None else plural,
        pos=pos,
        klass=klass[0] if klass else None,
        value=klass[1] if klass else None,
        segment=segment,
        index=index,
    )


def classify(word: str, lemma: str | None = None) -> tuple[str, str] | None:
    """The word's contrast class and canonical value, if it has one."""
    if word.isdigit():
        return ("count", str(int(word)))
    for name, members in CLASSES.items():
        if word in members:
            return (name, members[word])
    for name, members in CLASSES.items():  # "photos" -> photo; not "woods" -> wood
        if lemma and lemma in members and name != "material":
            return (name, members[lemma])
    return None


@functools.lru_cache(maxsize=4096)
def content_text(prompt: str) -> str:
    """The prompt as it is embedded: syntax and boilerplate set aside, words and segments
    kept in order ("masterpiece, (red fox:1.2), 8k" -> "red fox"). Without this a prompt's
    vector is dominated by its quality tags: "masterpiece, best quality, a red fox in the
    snow, 8k" scores 0.61 against "a red fox in the snow"."""
    phrases = boilerplate(None)
    segments = []
    for segment in _SEGMENT.split(normalise(prompt)):
        words = [w for w in strip_boilerplate(_words(segment), phrases) if w]
        if words:
            segments.append(" ".join(words))
    return ", ".join(segments)
