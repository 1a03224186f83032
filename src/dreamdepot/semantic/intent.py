"""Do two prompts ask for the same picture? A check beyond cosine similarity.

Sentence embeddings score "a corgi in a *yellow* raincoat" vs "… *red* raincoat" at 0.94,
higher than true paraphrases. So a cache hit also requires that the prompts' *content words*
agree once everything that does not change the picture's intent is set aside:

- word order, case, punctuation, weights syntax ``(word:1.2)``, ``[a|b]``, ``BREAK``,
  LoRA/embedding tags, and articles/prepositions;
- quality and boilerplate tags (``masterpiece``, ``best quality``, ``8k``, ``highly detailed``…);
- plural forms, spelling variants (one edit in words of 5+ letters, two in 9+), and a small
  synonym table (``photo``/``photograph``, ``realistic``/``photorealistic``…).

Any other word present in one prompt and not the other is a different request — a colour,
a count, a subject, a medium, a time of day, a negation — and the answer names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TAGS = re.compile(r"<[^<>]*>")
_WEIGHT = re.compile(r":\s*-?\d+(?:\.\d+)?")
_WORD = re.compile(
    r"[0-9a-z\u00c0-\u024f\u0370-\u03ff\u0400-\u04ff]+|[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]",
    re.IGNORECASE,
)

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "in",
        "on",
        "at",
        "by",
        "for",
        "to",
        "from",
        "with",
        "and",
        "or",
        "is",
        "are",
        "be",
        "into",
        "onto",
        "over",
        "under",
        "its",
        "it",
        "this",
        "that",
        "these",
        "those",
        "as",
        "very",
        "some",
    ]
)
FILLER = frozenset(
    [
        "masterpiece",
        "best",
        "quality",
        "high",
        "highly",
        "detailed",
        "detail",
        "details",
        "ultra",
        "ultrarealistic",
        "hd",
        "uhd",
        "hdr",
        "4k",
        "8k",
        "16k",
        "32k",
        "absurdres",
        "highres",
        "resolution",
        "sharp",
        "focus",
        "intricate",
        "professional",
        "award",
        "winning",
        "awardwinning",
        "trending",
        "artstation",
        "beautiful",
        "amazing",
        "stunning",
        "gorgeous",
        "aesthetic",
        "breathtaking",
        "epic",
        "nice",
        "good",
        "great",
        "perfect",
        "incredible",
        "extremely",
        "super",
        "insane",
        "official",
        "art",
        "illustration",
    ]
)
SYNONYMS = {
    "photograph": "photo",
    "photography": "photo",
    "photographic": "photo",
    "picture": "photo",
    "pic": "photo",
    "image": "photo",
    "photorealistic": "realistic",
    "photoreal": "realistic",
    "realism": "realistic",
    "lifelike": "realistic",
    "hyperrealistic": "realistic",
    "kitty": "cat",
    "doggy": "dog",
    "automobile": "car",
    "sea": "ocean",
    "seaside": "ocean",
    "woods": "forest",
    "alley": "street",
    "road": "street",
    "grey": "gray",
    "colour": "color",
    "colours": "color",
    "nighttime": "night",
    "daytime": "day",
    "midnight": "night",
    "sunrise": "dawn",
    "mountains": "mountain",
    "portrait": "portrait",
    "closeup": "close",
    "close-up": "close",
    "humanoid": "robot",
    "android": "robot",
    "woman": "woman",
    "lady": "woman",
    "girl": "girl",
    "man": "man",
    "guy": "man",
    "gentleman": "man",
    "huge": "big",
    "large": "big",
    "giant": "big",
    "tiny": "small",
    "little": "small",
    "cute": "cute",
    "adorable": "cute",
    "wearing": "wear",
    "wears": "wear",
    "dressed": "wear",
    "riding": "ride",
    "rides": "ride",
    "sitting": "sit",
    "sits": "sit",
    "standing": "stand",
    "stands": "stand",
}
CATEGORIES = {
    "colour": set(
        [
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
            "gray",
            "gold",
            "golden",
            "silver",
            "cyan",
            "magenta",
            "teal",
            "turquoise",
            "beige",
            "crimson",
            "scarlet",
            "navy",
            "maroon",
        ]
    ),
    "count": set(
        [
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "single",
            "pair",
            "couple",
            "dozen",
            "many",
            "several",
            "multiple",
            "group",
            "crowd",
            "solo",
            "duo",
            "trio",
        ]
    ),
    "time of day": set(
        [
            "night",
            "day",
            "dawn",
            "dusk",
            "sunset",
            "morning",
            "evening",
            "noon",
            "afternoon",
            "twilight",
        ]
    ),
    "season or weather": set(
        [
            "winter",
            "summer",
            "spring",
            "autumn",
            "fall",
            "rain",
            "rainy",
            "snow",
            "snowy",
            "storm",
            "stormy",
            "fog",
            "foggy",
            "sunny",
            "cloudy",
        ]
    ),
    "medium or style": set(
        [
            "oil",
            "watercolor",
            "watercolour",
            "painting",
            "sketch",
            "drawing",
            "pencil",
            "charcoal",
            "anime",
            "manga",
            "cartoon",
            "3d",
            "render",
            "cgi",
            "pixel",
            "lowpoly",
            "low",
            "poly",
            "photo",
            "realistic",
            "impressionist",
            "cubist",
            "surreal",
            "ukiyo",
            "ghibli",
            "vaporwave",
            "cyberpunk",
            "steampunk",
            "noir",
            "minimalist",
        ]
    ),
    "negation": set(["no", "not", "without", "never", "none"]),
}


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_words(prompt: str) -> set[str]:
    """The words that carry a prompt's intent, normalised.

    >>> sorted(content_words("(masterpiece:1.2), A Red FOX in the snow, <lora:x:0.5> BREAK 8k"))
    ['fox', 'red', 'snow']
    """
    return set(_content(prompt))


def _content(prompt: str) -> dict[str, str]:
    """Normalised content word -> the word as written (for spelling comparisons)."""
    text = _TAGS.sub(" ", prompt.lower())
    text = _WEIGHT.sub(" ", text).replace("break", " ")
    words: dict[str, str] = {}
    for raw in _WORD.findall(text):
        w = SYNONYMS.get(raw, raw)
        w = SYNONYMS.get(_stem(w), _stem(w))
        if w in STOPWORDS or w in FILLER or raw in FILLER:
            continue
        words.setdefault(w, raw)
    return words


def _edit_distance_at_most(a: str, b: str, limit: int) -> bool:
    if abs(len(a) - len(b)) > limit:
        return False
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > limit:
            return False
        prev = cur
    return prev[-1] <= limit


def _spelling_pairs(only_a: dict[str, str], only_b: dict[str, str]) -> tuple[set[str], set[str]]:
    """Drop word pairs that are spelling variants of each other (compared as written).

    Words of one category (two colours) never pair; a misspelt category word (``yelllow``)
    pairs with its category word only from six letters on, so ``brown``/``crown`` stay apart.
    """
    left, right = set(only_a), set(only_b)
    for a in sorted(only_a):
        raw_a = only_a[a]
        for b in sorted(right):
            raw_b = only_b[b]
            shorter = min(len(raw_a), len(raw_b))
            limit = 2 if shorter >= 9 else 1 if shorter >= 5 else 0
            if not limit or not _edit_distance_at_most(raw_a, raw_b, limit):
                continue
            ca, cb = _category(a), _category(b)
            if ca != cb and ((ca and cb) or shorter < 6):
                continue
            left.discard(a)
            right.discard(b)
            break
    return left, right


def _category(word: str) -> str | None:
    return next((name for name, words in CATEGORIES.items() if word in words), None)


@dataclass(frozen=True)
class IntentCheck:
    same: bool
    reason: str
    differing: tuple[str, ...] = ()


def same_intent(a: str, b: str) -> IntentCheck:
    """Whether prompts ``a`` and ``b`` ask for the same picture, and if not, why.

    >>> same_intent("a red fox, masterpiece", "best quality, (red:1.1) fox").same
    True
    >>> same_intent("a corgi in a yellow raincoat", "a corgi in a red raincoat").reason
    'different colour: red, yellow'
    """
    wa, wb = _content(a), _content(b)
    only_a, only_b = _spelling_pairs(
        {w: r for w, r in wa.items() if w not in wb}, {w: r for w, r in wb.items() if w not in wa}
    )
    diff = only_a | only_b
    if not diff:
        return IntentCheck(True, "same content words")
    for name in CATEGORIES:
        hit = sorted(w for w in diff if w in CATEGORIES[name])
        if hit:
            return IntentCheck(False, f"different {name}: {', '.join(hit)}", tuple(sorted(diff)))
    return IntentCheck(
        False, f"different words: {', '.join(sorted(diff)[:6])}", tuple(sorted(diff))
    )
