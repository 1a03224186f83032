"""Calibrate the synonym threshold of the dream cache's word alignment.

`python bench/wordsim_calibration.py` embeds two general English word lists — synonyms and
co-hyponyms (different things of one kind) — with the prompt embedder, bare and inside
`wordsim.FRAME`, and prints how well each separates them. `intent.SYNONYM` is the lowest
cosine that no co-hyponym pair reaches in the frame. The lists were written for this purpose
and are not drawn from the evaluation set (bench/data/cache_eval_v2.txt).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SYNONYMS = [
    ("couch", "sofa"), ("car", "automobile"), ("rock", "stone"), ("shop", "store"),
    ("kid", "child"), ("cup", "mug"), ("sea", "ocean"), ("road", "street"), ("pistol", "gun"),
    ("trash", "garbage"), ("film", "movie"), ("jumper", "sweater"), ("lorry", "truck"),
    ("taxi", "cab"), ("rabbit", "bunny"), ("dad", "father"), ("stairs", "staircase"),
    ("tiny", "small"), ("big", "large"), ("quick", "fast"), ("woods", "forest"),
    ("hill", "mound"), ("boulder", "big rock"), ("puppy", "young dog"),
    ("kitten", "young cat"), ("ship", "vessel"),
]  # fmt: skip
CO_HYPONYMS = [
    ("cat", "dog"), ("car", "truck"), ("apple", "orange"), ("chair", "table"),
    ("tiger", "leopard"), ("rose", "tulip"), ("violin", "cello"), ("piano", "guitar"),
    ("shirt", "trousers"), ("bus", "train"), ("sheep", "goat"), ("eagle", "hawk"),
    ("knife", "fork"), ("church", "mosque"), ("boy", "girl"), ("king", "queen"),
    ("wolf", "fox"), ("river", "lake"), ("cake", "pie"), ("wine", "beer"),
    ("laughing", "crying"), ("running", "walking"), ("happy", "angry"), ("hot", "cold"),
    ("horse", "donkey"), ("owl", "parrot"),
]  # fmt: skip


def main() -> None:
    import numpy as np

    from dreamdepot.semantic.embedders import MiniLMEmbedder
    from dreamdepot.semantic.intent import SYNONYM
    from dreamdepot.semantic.wordsim import FRAME

    emb = MiniLMEmbedder()

    def cosines(pairs: list[tuple[str, str]], frame: str) -> np.ndarray:
        a = emb.embed_texts([frame.format(x) for x, _ in pairs])
        b = emb.embed_texts([frame.format(y) for _, y in pairs])
        return (a * b).sum(1)

    print("| words embedded as | synonyms: median | co-hyponyms: median | max | AUC |")
    print("|---|---|---|---|---|")
    for frame in ("{}", FRAME):
        s, c = cosines(SYNONYMS, frame), cosines(CO_HYPONYMS, frame)
        auc = float(np.mean([x > y for x in s for y in c]))
        print(
            f"| `{frame}` | {np.median(s):.3f} | {np.median(c):.3f} | {c.max():.3f} | {auc:.3f} |"
        )
    s, c = cosines(SYNONYMS, FRAME), cosines(CO_HYPONYMS, FRAME)
    print(
        f"\nAt SYNONYM = {SYNONYM}: {(s >= SYNONYM).sum()}/{len(s)} synonym pairs pass, "
        f"{(c >= SYNONYM).sum()}/{len(c)} co-hyponym pairs pass."
    )


if __name__ == "__main__":
    main()
