"""Dream-cache evaluation: `python bench/cache_eval.py [--split dev|held|all|regression]`.

The main set, `bench/data/cache_eval_v2.txt`, was frozen (commit 4d6dbc9) before the v2 hit
decision was written: 468 labelled pairs on 57 real base prompts (the demo library's
prompts, prompts embedded in the shared corpus's files, example prompts shipped in
diffusers), by category; the file states its labelling rule and its split. The decision is
tuned on the development half only; the held-out half is what docs/dream-cache.md and the
README report. `--split v3` scores `cache_eval_v3.txt`, a second held-out set frozen after
v2's held-out half had been scored and read, before the changes made in its light.
`--split regression` runs the older 455-pair set (`cache_pairs.jsonl`), which
was written alongside the v1 check: a regression check, not a measure of accuracy.

A pair is a hit when the two prompts' embedding cosine reaches the threshold and
`intent.same_intent` (with the embedder's word vectors) finds no contrast: exactly what
`DreamCache.lookup` decides for a candidate before parameters are compared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

HERE = Path(__file__).resolve().parent / "data"
EVAL_SET = HERE / "cache_eval_v2.txt"
SECOND_HELD_OUT = HERE / "cache_eval_v3.txt"
REGRESSION_SET = HERE / "cache_pairs.jsonl"
THRESHOLDS = (0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90)


@dataclass
class Pair:
    a: str
    b: str
    same: bool
    category: str
    split: str
    source: str = ""


def split_of(base: str) -> str:
    """The held-out half: bases whose SHA-1 has an odd first byte (fixed with the file)."""
    return "held" if hashlib.sha1(base.encode("utf-8")).digest()[0] % 2 else "dev"


def load_eval_set(path: Path = EVAL_SET, split: str | None = None) -> list[Pair]:
    pairs: list[Pair] = []
    base = source = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            source, base = (s.strip() for s in line[3:].split(" | ", 1))
            base = line[3:].split(" | ", 1)[1]
        elif line[:2] in ("+ ", "- "):
            category, other = line[2:].split(" | ", 1)
            pairs.append(
                Pair(base, other, line[0] == "+", category.strip(), split or split_of(base), source)
            )
    return pairs


def load_regression_set(path: Path = REGRESSION_SET) -> list[Pair]:
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    return [Pair(r["a"], r["b"], bool(r["same"]), r["kind"], "regression") for r in rows]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def score(pairs: list[Pair]) -> tuple[list[float], list[Any]]:
    """Embedding cosine and the intent check for every pair, through the library's code."""
    from dreamdepot.semantic.embedders import load_embedder
    from dreamdepot.semantic.intent import same_intent
    from dreamdepot.semantic.wordsim import word_vectors

    emb = load_embedder()
    words = word_vectors(emb)
    a = emb.embed_texts([p.a for p in pairs])
    b = emb.embed_texts([p.b for p in pairs])
    cos = [float(x) for x in (a * b).sum(1)]
    checks: list[Any] = [same_intent(p.a, p.b, words) for p in pairs]
    return cos, checks


def metrics(pairs: list[Pair], cos: list[float], checks: list[Any], t: float) -> dict:
    pred = [c >= t and bool(k.same) for c, k in zip(cos, checks, strict=True)]
    tp = sum(p and x.same for p, x in zip(pred, pairs, strict=True))
    fp = sum(p and not x.same for p, x in zip(pred, pairs, strict=True))
    pos = sum(x.same for x in pairs)
    return {
        "threshold": t,
        "pairs": len(pairs),
        "positives": pos,
        "tp": tp,
        "fp": fp,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "precision_ci": wilson(tp, tp + fp),
        "recall": tp / pos if pos else 1.0,
        "recall_ci": wilson(tp, pos),
    }


def report(name: str, pairs: list[Pair], cos: list[float], checks: list[Any]) -> dict:
    from dreamdepot.semantic.cache import DEFAULT_THRESHOLD

    pos = sum(p.same for p in pairs)
    print(f"\n## {name}: {len(pairs)} pairs ({pos} same picture, {len(pairs) - pos} different)\n")
    print("| threshold | cosine only: precision | recall | decision: precision | recall |")
    print("|---|---|---|---|---|")
    for t in THRESHOLDS:
        only = metrics(pairs, cos, [_Yes] * len(pairs), t)
        full = metrics(pairs, cos, checks, t)
        mark = "**" if abs(t - DEFAULT_THRESHOLD) < 1e-9 else ""
        print(
            f"| {mark}{t:.2f}{mark} | {only['precision']:.3f} | {only['recall']:.3f} "
            f"| {full['precision']:.3f} | {full['recall']:.3f} |"
        )
    m = metrics(pairs, cos, checks, DEFAULT_THRESHOLD)
    lo_p, hi_p = m["precision_ci"]
    lo_r, hi_r = m["recall_ci"]
    print(
        f"\nAt the default threshold {DEFAULT_THRESHOLD:.2f}: precision {m['precision']:.3f} "
        f"(95% CI {lo_p:.3f}–{hi_p:.3f}, {m['tp']} of {m['tp'] + m['fp']} hits right), "
        f"recall {m['recall']:.3f} (95% CI {lo_r:.3f}–{hi_r:.3f}, {m['tp']} of {pos})"
    )
    by_cat: dict[tuple[bool, str], list[int]] = {}
    for p, c, k in zip(pairs, cos, checks, strict=True):
        hit = c >= DEFAULT_THRESHOLD and bool(k.same)
        by_cat.setdefault((p.same, p.category), []).append(int(hit == p.same))
    print("\n| label | category | right |\n|---|---|---|")
    for (same, cat), v in sorted(by_cat.items(), key=lambda kv: (not kv[0][0], kv[0][1])):
        print(f"| {'hit' if same else 'miss'} | {cat} | {sum(v)}/{len(v)} |")
    print("\nFailures at the default threshold:\n")
    print(
        "| should | category | prompt A | prompt B | cosine | decision |\n|---|---|---|---|---|---|"
    )
    for p, c, k in zip(pairs, cos, checks, strict=True):
        hit = c >= DEFAULT_THRESHOLD and bool(k.same)
        if hit != p.same:
            why = k.reason if c >= DEFAULT_THRESHOLD else "below threshold"
            print(
                f"| {'hit' if p.same else 'miss'} | {p.category} | {_cell(p.a)} | {_cell(p.b)} "
                f"| {c:.2f} | {_cell(why)} |"
            )
    return m


class _Always:
    same = True


_Yes = _Always()


def _cell(text: str, limit: int = 90) -> str:
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--split",
        choices=("dev", "held", "all", "v3", "regression"),
        default="dev",
        help="which pairs to score (tune on dev; report held and v3)",
    )
    ap.add_argument("--json", type=Path, help="also write the default-threshold figures here")
    args = ap.parse_args()
    if args.split == "regression":
        pairs = load_regression_set()
    elif args.split == "v3":
        pairs = load_eval_set(SECOND_HELD_OUT, "v3")
    else:
        pairs = [p for p in load_eval_set() if args.split == "all" or p.split == args.split]
    cos, checks = score(pairs)
    m = report(args.split, pairs, cos, checks)
    if args.json:
        args.json.write_text(json.dumps(m, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
