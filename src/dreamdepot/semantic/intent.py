"""Do two prompts ask for the same picture? The alignment behind a dream-cache hit.

Sentence embeddings score "a corgi in a *yellow* raincoat" vs "… *red* raincoat" at 0.94,
higher than true paraphrases, so cosine similarity only finds candidates. This module then
aligns the two prompts' content (``terms.read``) and forgives what does not change the
picture while refusing what does:

forgiven
    word order between segments, prompt syntax and boilerplate (``terms``); function words;
    the same lemma in another form; spelling variants; compounds written apart
    ("candle light"/"candlelight"); synonyms, judged by the embedding model's own word
    vectors (cosine ≥ ``SYNONYM``) rather than a hand-written table; and elaboration: a
    modifier or verb present on one side only ("a red fox *standing* in snow").
a contrast
    a contrast-class word that differs or is present on one side only (colour, material,
    count, time of day, season, weather, medium, size, age, negation); a spatial relation
    replaced by another ("on"/"under"); the same noun singular on one side and plural on the
    other; a thing (noun) added, removed or replaced; other words replaced by unrelated ones;
    two things that swap roles around a verb ("a horse riding an astronaut"); an attribute
    moved from one thing to another ("short *red* hair, *gray* guitar").

The first contrast found is the reason a request is not answered from the library.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dreamdepot.semantic.lexical import wordnet
from dreamdepot.semantic.terms import (
    LIGHT_VERBS,
    MEDIUM_PARENTS,
    WEAK_PREPOSITIONS,
    Reading,
    Term,
    lexicon,
    read,
    verb_lemma,
)

# Word-vector cosine (``wordsim.FRAME``) at or above which two different words name the same
# thing: the lowest value no co-hyponym pair of a general calibration list reaches
# (``python bench/wordsim_calibration.py``; the list is not drawn from the evaluation set).
SYNONYM = 0.78

WordSimilarity = Callable[[Sequence[str], Sequence[str]], "list[list[float]]"]
"""``sim(left, right)[i][j]``: cosine of word (or phrase) ``left[i]`` and ``right[j]``."""


@dataclass(frozen=True)
class IntentCheck:
    same: bool
    reason: str
    differing: tuple[str, ...] = ()
    kind: str = ""  # the class of the first contrast ("colour", "object", "role", …)
    forgiven: tuple[str, ...] = field(default=(), compare=False)


def content_words(prompt: str) -> set[str]:
    """The lemmas that carry a prompt's intent.

    >>> sorted(content_words("(masterpiece:1.2), A Red FOX in the snow, <lora:x:0.5> BREAK 8k"))
    ['fox', 'red', 'snow']
    """
    return {t.lemma for t in read(prompt).terms}


def same_intent(
    a: str,
    b: str,
    similarity: WordSimilarity | None = None,
    boilerplate_file: str | None = None,
) -> IntentCheck:
    """Whether prompts ``a`` and ``b`` ask for the same picture, and if not, why.

    ``boilerplate_file``: a library's own additions to the boilerplate list.

    >>> same_intent("a red fox, masterpiece", "best quality, (red:1.1) fox").same
    True
    >>> same_intent("a corgi in a yellow raincoat", "a corgi in a red raincoat").reason
    'different colour: yellow / red'
    >>> same_intent("a cat on a bench", "a cat under a bench").kind
    'position'
    """
    ra, rb = read(a, boilerplate_file), read(b, boilerplate_file)
    paired: set[int] = set()
    return (
        _classes(ra, rb, similarity, paired)
        or _positions(ra, rb)
        or _words(ra, rb, similarity, paired)
        or _roles(ra, rb)
        or _bindings(ra, rb)
        or IntentCheck(True, "same content")
    )


def _contrast(kind: str, left: Sequence[str], right: Sequence[str]) -> IntentCheck:
    l_txt, r_txt = ", ".join(left) or "—", ", ".join(right) or "—"
    if kind in ("object", "words"):
        what = "a different thing" if left and right else "an added or removed thing"
        if kind == "words":
            what = "different words"
        return IntentCheck(False, f"{what}: {l_txt} / {r_txt}", (*left, *right), kind)
    return IntentCheck(False, f"different {kind}: {l_txt} / {r_txt}", (*left, *right), kind)


def _values(r: Reading, klass: str) -> dict[str, str]:
    return {t.value: t.word for t in r.terms if t.klass == klass and t.value}


def _narrower(medium: str) -> set[str]:
    """Every medium under ``medium`` ("illustration" -> painting -> watercolor …)."""
    out: set[str] = set()
    todo = [medium]
    while todo:
        for child in MEDIUM_PARENTS.get(todo.pop(), ()):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _related_medium(v: str, others: set[str]) -> bool:
    return any(v in _narrower(o) or o in _narrower(v) for o in others)


def _classes(
    ra: Reading, rb: Reading, similarity: WordSimilarity | None, paired: set[int]
) -> IntentCheck | None:
    order = (
        "negation",
        "colour",
        "material",
        "count",
        "medium",
        "time of day",
        "season",
        "weather",
        "size",
        "age",
    )
    for klass in order:
        va, vb = _values(ra, klass), _values(rb, klass)
        only_a = {v for v in va if v not in vb}
        only_b = {v for v in vb if v not in va}
        if klass == "count":  # "a cat" and "one cat" ask for the same number
            only_a.discard("1")
            only_b.discard("1")
        if klass == "medium":
            only_a = {v for v in only_a if not _related_medium(v, set(vb))}
            only_b = {v for v in only_b if not _related_medium(v, set(va))}
        if similarity is not None and bool(only_a) != bool(only_b):
            # a class word on one side may be another side's ordinary word ("old"/"vintage")
            only_a = _pair_with_plain(only_a, ra, klass, rb, similarity, paired)
            only_b = _pair_with_plain(only_b, rb, klass, ra, similarity, paired)
        if only_a or only_b:
            return _contrast(
                klass, [va[v] for v in sorted(only_a)], [vb[v] for v in sorted(only_b)]
            )
    plural_a = {t.lemma: t for t in ra.terms if t.klass is None and (t.nounish or not t.known)}
    for t in rb.terms:
        other = plural_a.get(t.lemma)
        if (
            other is not None
            and t.klass is None
            and other.plural != t.plural
            and not (t.adjunct or other.adjunct)
        ):
            return _contrast("count", [other.word], [t.word])
    return None


def _pair_with_plain(
    values: set[str],
    own: Reading,
    klass: str,
    other: Reading,
    similarity: WordSimilarity,
    paired: set[int],
) -> set[str]:
    if not values:
        return values
    own_lemmas = {t.lemma for t in own.terms}
    plain = [
        t
        for t in other.terms
        if t.klass is None and t.lemma not in own_lemmas and id(t) not in paired
    ]
    words = [t for t in own.terms if t.klass == klass and t.value in values]
    if not plain or not words:
        return values
    sims = similarity([t.word for t in words], [t.word for t in plain])
    left = set(values)
    for t, row in zip(words, sims, strict=True):
        for j, u in enumerate(plain):
            typo = not u.known and _spelling_variant(t.word, u.word)  # "yelllow"
            if (typo or _same_meaning([t], [u], row[j]) is not None) and id(u) not in paired:
                paired.add(id(u))
                left.discard(t.value or "")
                break
    return left


def _positions(ra: Reading, rb: Reading) -> IntentCheck | None:
    va, vb = _values(ra, "position"), _values(rb, "position")
    only_a = [v for v in va if v not in vb]
    only_b = [v for v in vb if v not in va]

    def implied(v: str, r: Reading) -> bool:
        return any(v in WEAK_PREPOSITIONS[w] for _, w in r.weak)

    if (
        (only_a and only_b)
        or any(not implied(v, rb) for v in only_a)
        or any(not implied(v, ra) for v in only_b)
    ):
        weak_a = [w for _, w in ra.weak] if not only_a else []
        weak_b = [w for _, w in rb.weak] if not only_b else []
        return _contrast(
            "position", [va[v] for v in only_a] or weak_a, [vb[v] for v in only_b] or weak_b
        )
    return None


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


def _spelling_variant(a: str, b: str) -> bool:
    shorter = min(len(a), len(b))
    limit = 2 if shorter >= 9 else 1 if shorter >= 4 else 0
    return bool(limit) and a[0] == b[0] and _edit_distance_at_most(a, b, limit)


def _joined(terms: list[Term]) -> dict[str, tuple[Term, Term]]:
    """Adjacent words written as one ("candle light" -> "candlelight"), by word and lemma."""
    out: dict[str, tuple[Term, Term]] = {}
    for x, y in itertools.pairwise(terms):
        if x.segment == y.segment and y.index == x.index + 1:
            word = x.word + y.word
            out[word] = (x, y)
            out[lexicon(word)[0]] = (x, y)
    return out


def _words(
    ra: Reading, rb: Reading, similarity: WordSimilarity | None, paired: set[int]
) -> IntentCheck | None:
    plain_a = [t for t in ra.terms if t.klass is None and id(t) not in paired]
    plain_b = [t for t in rb.terms if t.klass is None and id(t) not in paired]
    lemmas_a = {t.lemma for t in plain_a} | {t.word for t in plain_a}
    lemmas_b = {t.lemma for t in plain_b} | {t.word for t in plain_b}
    left = [t for t in plain_a if t.lemma not in lemmas_b and t.word not in lemmas_b]
    right = [t for t in plain_b if t.lemma not in lemmas_a and t.word not in lemmas_a]
    if not left and not right:
        return None
    left, right = _pair_compounds(left, right, plain_a, plain_b)
    left, right = _pair_spelling(left, right)
    if left and right:
        left, right = _pair_similar(left, right, similarity)
    if similarity is not None:  # a thing the other side already names, in other words
        left = _drop_implied(left, plain_a, plain_b, similarity)
        right = _drop_implied(right, plain_b, plain_a, similarity)
    nouns_a = [t.word for t in left if t.nounish]
    nouns_b = [t.word for t in right if t.nounish]
    if nouns_a or nouns_b:
        return _contrast("object", nouns_a, nouns_b)
    acts_a = _actions(left, plain_b, similarity)
    acts_b = _actions(right, plain_a, similarity)
    if bool(acts_a) != bool(acts_b):
        return _contrast("action", acts_a, acts_b)
    if left and right:
        return _contrast("words", [t.word for t in left], [t.word for t in right])
    return None


def _actions(extra: list[Term], other: list[Term], similarity: WordSimilarity | None) -> list[str]:
    """Verbs on one side only that are actions, not how a thing is shown, and that no word
    of the other side says in other words ("riding" / "on horseback")."""
    verbs = [t for t in extra if t.verb and verb_lemma(t.word) not in LIGHT_VERBS]
    if verbs and similarity is not None and other:
        sims = similarity([t.word for t in verbs], [t.word for t in other])
        verbs = [
            t
            for t, row in zip(verbs, sims, strict=True)
            if all(_same_meaning([t], [u], c) is None for u, c in zip(other, row, strict=True))
        ]
    return [t.word for t in verbs]


def _pair_compounds(
    left: list[Term], right: list[Term], all_a: list[Term], all_b: list[Term]
) -> tuple[list[Term], list[Term]]:
    joined_a, joined_b = _joined(all_a), _joined(all_b)
    drop: set[int] = set()
    for t in right:
        parts = joined_a.get(t.word) or joined_a.get(t.lemma)
        if parts:
            drop.update({id(t), id(parts[0]), id(parts[1])})
    for t in left:
        parts = joined_b.get(t.word) or joined_b.get(t.lemma)
        if parts:
            drop.update({id(t), id(parts[0]), id(parts[1])})
    return [t for t in left if id(t) not in drop], [t for t in right if id(t) not in drop]


def _pair_spelling(left: list[Term], right: list[Term]) -> tuple[list[Term], list[Term]]:
    used: set[int] = set()
    keep_left = []
    for a in left:
        match = next(
            (
                b
                for b in right
                if id(b) not in used
                and not (a.known and b.known)  # "brown"/"crown" are two words, not a typo
                and _spelling_variant(a.word, b.word)
            ),
            None,
        )
        if match is None:
            keep_left.append(a)
        else:
            used.add(id(match))
    return keep_left, [b for b in right if id(b) not in used]


def _pair_similar(
    left: list[Term], right: list[Term], similarity: WordSimilarity | None
) -> tuple[list[Term], list[Term]]:
    """Greedy one-to-one pairing of words that mean the same; a word may also pair with two
    adjacent words of the other side ("puppy" / "young dog")."""
    cands_l = [([t], t.word) for t in left] + _phrases(left)
    cands_r = [([t], t.word) for t in right] + _phrases(right)
    sims = (
        similarity([c[1] for c in cands_l], [c[1] for c in cands_r])
        if similarity is not None
        else None
    )
    scored = []
    for i, (ta, _) in enumerate(cands_l):
        for j, (tb, _) in enumerate(cands_r):
            if len(ta) > 1 and len(tb) > 1:
                continue
            score = _same_meaning(ta, tb, sims[i][j] if sims is not None else None)
            if score is not None:
                scored.append((score, i, j))
    used: set[int] = set()
    for _score, i, j in sorted(scored, reverse=True):
        group = cands_l[i][0] + cands_r[j][0]
        if any(id(t) in used for t in group):
            continue
        used.update(id(t) for t in group)
    return [t for t in left if id(t) not in used], [t for t in right if id(t) not in used]


def _same_meaning(ta: list[Term], tb: list[Term], cosine: float | None) -> float | None:
    """A pairing score when the words mean the same, else None.

    WordNet decides where it knows both words: synonyms pair, antonyms never do, and two
    names of things (nouns) pair only as synonyms ("lion"/"lioness" do not). Elsewhere the
    word-vector cosine must reach ``SYNONYM``.
    """
    wn = wordnet()
    if wn is not None and len(ta) == 1 and len(tb) == 1:
        a, b = ta[0], tb[0]
        words_a, words_b = {a.word, a.lemma}, {b.word, b.lemma}
        if any(wn.synonyms(x, y) for x in words_a for y in words_b):
            return 2.0
        if any(wn.opposite(x, y) for x in words_a for y in words_b):
            return None
        if a.nounish and b.nounish and wn.known(a.lemma, "n") and wn.known(b.lemma, "n"):
            return None
    if cosine is not None and cosine >= SYNONYM:
        return cosine
    return None


def _phrases(terms: list[Term]) -> list[tuple[list[Term], str]]:
    return [
        ([x, y], f"{x.word} {y.word}")
        for x, y in itertools.pairwise(terms)
        if x.segment == y.segment and y.index == x.index + 1
    ]


def _drop_implied(
    extra: list[Term], own: list[Term], other: list[Term], similarity: WordSimilarity
) -> list[Term]:
    """Forgive an extra noun written right beside a word of the same meaning that both sides
    have ("ramen noodles" for "ramen")."""
    shared = {t.lemma for t in other}
    keep = []
    for t in extra:
        beside = [
            u.word
            for u in own
            if t.nounish
            and u.segment == t.segment
            and abs(u.index - t.index) == 1
            and u.lemma in shared
        ]
        sims = similarity([t.word], beside) if beside else [[]]
        if not (sims[0] and max(sims[0]) >= SYNONYM):
            keep.append(t)
    return keep


def _roles(ra: Reading, rb: Reading) -> IntentCheck | None:
    """Two things on both sides whose order around a verb differs: who does what to whom."""
    rel_a, rel_b = _relations(ra), _relations(rb)
    for (x, y), verb in rel_a.items():
        if (y, x) in rel_b and (x, y) not in rel_b:
            return _contrast("role", [f"{x} {verb} {y}"], [f"{y} {rel_b[(y, x)]} {x}"])
    for pair, verb in rel_a.items():
        if (pair[1], pair[0]) not in rel_b and pair not in rel_b and _adjacent(rb, pair):
            return _contrast("role", [f"{pair[0]} {verb} {pair[1]}"], [f"{pair[0]} {pair[1]}"])
    for pair, verb in rel_b.items():
        if (pair[1], pair[0]) not in rel_a and pair not in rel_a and _adjacent(ra, pair):
            return _contrast("role", [f"{pair[0]} {pair[1]}"], [f"{pair[0]} {verb} {pair[1]}"])
    return None


def _relations(r: Reading) -> dict[tuple[str, str], str]:
    """(subject, object) -> verb: the last thing before a verb and the first after it, within
    one segment ("a horse riding an astronaut" -> (horse, astronaut): ride)."""
    out: dict[tuple[str, str], str] = {}
    for terms in r.by_segment().values():
        for k, v in enumerate(terms):
            if not v.verb:
                continue
            before = next((t for t in reversed(terms[:k]) if t.nounish or t.verb), None)
            after = next((t for t in terms[k + 1 :] if t.nounish or t.verb), None)
            things = before is not None and after is not None and before.nounish and after.nounish
            if things and before is not None and after is not None and before.lemma != after.lemma:
                out.setdefault((before.lemma, after.lemma), v.lemma)
    return out


def _adjacent(r: Reading, pair: tuple[str, str]) -> bool:
    """Both things named next to each other, one qualifying the other ("samurai cat")."""
    for terms in r.by_segment().values():
        for x, y in itertools.pairwise(terms):
            if {x.lemma, y.lemma} == set(pair) and y.index == x.index + 1:
                return True
    return False


def _bindings(ra: Reading, rb: Reading) -> IntentCheck | None:
    """An attribute on another thing: "short red hair, gray guitar" vs "gray hair, red guitar"."""
    heads_a, heads_b = _heads(ra), _heads(rb)
    things = set(heads_a.values()) & set(heads_b.values())
    for value, head in heads_a.items():
        other = heads_b.get(value)
        if other and other != head and head in things and other in things:
            return _contrast("attribute", [f"{value} {head}"], [f"{value} {other}"])
    return None


def _heads(r: Reading) -> dict[str, str]:
    """Attribute value -> the thing it qualifies (the next noun in its segment)."""
    out: dict[str, str] = {}
    for terms in r.by_segment().values():
        for i, t in enumerate(terms):
            if t.klass in ("colour", "material", "size", "age") and t.value:
                head = next((u.lemma for u in terms[i + 1 :] if u.nounish and not u.klass), None)
                if head:
                    out.setdefault(t.value, head)
    return out
