"""Dream-cache evaluation: `python bench/cache_eval.py` prints precision/recall by threshold.

`bench/data/cache_pairs.jsonl` holds prompt pairs labelled same-intent (1) or different (0):
rewrites that must hit (reordered tags, weights syntax, added quality tags, synonyms,
spelling variants, case and punctuation, hand-written paraphrases) and changes that must miss
(colour, subject, count, time of day, season/weather, medium/style, negation, setting,
action, an added object). `--write` regenerates the file from the templates below
(deterministic); the checked-in file is what docs/dream-cache.md reports on.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

DATA = Path(__file__).resolve().parent / "data" / "cache_pairs.jsonl"

# (prompt as comma-separated segments, {kind: replacement prompt}) — the "different" variants
# are written by hand per base so each changes exactly one thing that matters.
BASES: list[tuple[str, dict[str, str]]] = [
    (
        "a cute corgi puppy wearing a yellow raincoat, rainy street, photo",
        {
            "colour": "a cute corgi puppy wearing a red raincoat, rainy street, photo",
            "subject": "a cute beagle puppy wearing a yellow raincoat, rainy street, photo",
            "medium": "a cute corgi puppy wearing a yellow raincoat, rainy street, watercolor",
        },
    ),
    (
        "cyberpunk city street at night, neon signs, rain, cinematic",
        {
            "time": "cyberpunk city street during the day, neon signs, rain, cinematic",
            "weather": "cyberpunk city street at night, neon signs, snow, cinematic",
            "object": "cyberpunk city street at night, neon signs, rain, flying cars, cinematic",
        },
    ),
    (
        "a red fox in the snow, winter forest, wildlife photography",
        {
            "colour": "an arctic white fox in the snow, winter forest, wildlife photography",
            "subject": "a grey wolf in the snow, winter forest, wildlife photography",
            "season": "a red fox in the grass, summer forest, wildlife photography",
        },
    ),
    (
        "portrait of an old fisherman, dramatic lighting, oil painting",
        {
            "subject": "portrait of a young fisherman, dramatic lighting, oil painting",
            "medium": "portrait of an old fisherman, dramatic lighting, pencil sketch",
            "object": "portrait of an old fisherman with a pipe, dramatic lighting, oil painting",
        },
    ),
    (
        "a bowl of ramen, steam rising, food photography, close-up",
        {
            "subject": "a bowl of pho, steam rising, food photography, close-up",
            "count": "two bowls of ramen, steam rising, food photography, close-up",
            "negation": "a bowl of ramen, no steam, food photography, close-up",
        },
    ),
    (
        "a lighthouse on a cliff during a storm, dramatic sky",
        {
            "weather": "a lighthouse on a cliff on a calm sunny day, clear sky",
            "subject": "a windmill on a cliff during a storm, dramatic sky",
            "setting": "a lighthouse on a beach during a storm, dramatic sky",
        },
    ),
    (
        "a cozy cabin in an autumn forest, warm light, fog",
        {
            "season": "a cozy cabin in a winter forest, warm light, fog",
            "subject": "a cozy treehouse in an autumn forest, warm light, fog",
            "negation": "a cozy cabin in an autumn forest, warm light, no fog",
        },
    ),
    (
        "a dragon made of glass, crystal scales, studio lighting",
        {
            "subject": "a phoenix made of glass, crystal feathers, studio lighting",
            "material": "a dragon made of gold, golden scales, studio lighting",
            "count": "three dragons made of glass, crystal scales, studio lighting",
        },
    ),
    (
        "a samurai cat, ukiyo-e style, woodblock print",
        {
            "subject": "a samurai dog, ukiyo-e style, woodblock print",
            "medium": "a samurai cat, anime style, digital art",
            "action": "a sleeping samurai cat, ukiyo-e style, woodblock print",
        },
    ),
    (
        "a floating island with waterfalls, fantasy landscape, sunset",
        {
            "time": "a floating island with waterfalls, fantasy landscape, midnight",
            "object": "a floating island with a castle and waterfalls, fantasy landscape, sunset",
            "count": "three floating islands with waterfalls, fantasy landscape, sunset",
        },
    ),
    (
        "a vintage robot reading a book in a library",
        {
            "action": "a vintage robot writing a letter in a library",
            "setting": "a vintage robot reading a book in a park",
            "subject": "a vintage astronaut reading a book in a library",
        },
    ),
    (
        "1girl, solo, long hair, blue eyes, school uniform, cherry blossoms",
        {
            "colour": "1girl, solo, long hair, green eyes, school uniform, cherry blossoms",
            "count": "2girls, long hair, blue eyes, school uniform, cherry blossoms",
            "subject": "1boy, solo, long hair, blue eyes, school uniform, cherry blossoms",
        },
    ),
    (
        "an astronaut riding a horse on the moon, photorealistic",
        {
            "subject": "an astronaut riding a camel on the moon, photorealistic",
            "setting": "an astronaut riding a horse on mars, photorealistic",
            "medium": "an astronaut riding a horse on the moon, cartoon",
        },
    ),
    (
        "a steampunk airship above victorian london, golden hour",
        {
            "time": "a steampunk airship above victorian london, at night",
            "setting": "a steampunk airship above victorian paris, golden hour",
            "count": "a fleet of steampunk airships above victorian london, golden hour",
        },
    ),
    (
        "a bouquet of white roses in a glass vase, still life",
        {
            "colour": "a bouquet of red roses in a glass vase, still life",
            "subject": "a bouquet of white tulips in a glass vase, still life",
            "object": "a bouquet of white roses in a glass vase next to a candle, still life",
        },
    ),
    (
        "a knight in shining armor on a black horse, medieval battlefield",
        {
            "colour": "a knight in shining armor on a white horse, medieval battlefield",
            "negation": "a knight without armor on a black horse, medieval battlefield",
            "setting": "a knight in shining armor on a black horse, castle courtyard",
        },
    ),
    (
        "a tiny frog sitting on a mushroom, macro photo, morning dew",
        {
            "subject": "a tiny snail sitting on a mushroom, macro photo, morning dew",
            "action": "a tiny frog jumping off a mushroom, macro photo, morning dew",
            "time": "a tiny frog sitting on a mushroom, macro photo, at night",
        },
    ),
    (
        "isometric low poly island with palm trees, pastel colors",
        {
            "object": "isometric low poly island with a volcano and palm trees, pastel colors",
            "style": "isometric low poly island with palm trees, neon colors",
            "subject": "isometric low poly desert with palm trees, pastel colors",
        },
    ),
    (
        "a wizard casting a fireball, dark fantasy, dynamic pose",
        {
            "subject": "a witch casting a fireball, dark fantasy, dynamic pose",
            "object": "a wizard casting a lightning bolt, dark fantasy, dynamic pose",
            "style": "a wizard casting a fireball, cute chibi style, dynamic pose",
        },
    ),
    (
        "a busy japanese market street, lanterns, evening, crowd",
        {
            "time": "a busy japanese market street, lanterns, morning, crowd",
            "negation": "an empty japanese market street, lanterns, evening, no people",
            "setting": "a busy moroccan market street, lanterns, evening, crowd",
        },
    ),
    (
        "a polar bear on an ice floe, arctic ocean, overcast",
        {
            "subject": "a penguin on an ice floe, arctic ocean, overcast",
            "count": "two polar bears on an ice floe, arctic ocean, overcast",
            "weather": "a polar bear on an ice floe, arctic ocean, clear blue sky",
        },
    ),
    (
        "a chess board with glass pieces, shallow depth of field",
        {
            "material": "a chess board with wooden pieces, shallow depth of field",
            "object": "a chess board with glass pieces and an hourglass, shallow depth of field",
            "subject": "a go board with glass stones, shallow depth of field",
        },
    ),
    (
        "a hot air balloon festival over cappadocia at sunrise",
        {
            "time": "a hot air balloon festival over cappadocia at sunset",
            "count": "a single hot air balloon over cappadocia at sunrise",
            "setting": "a hot air balloon festival over the alps at sunrise",
        },
    ),
    (
        "a girl with an umbrella in the rain, studio ghibli style",
        {
            "object": "a girl with a lantern in the rain, studio ghibli style",
            "weather": "a girl with an umbrella in the snow, studio ghibli style",
            "style": "a girl with an umbrella in the rain, film noir style",
        },
    ),
    (
        "a modern kitchen interior, marble countertops, natural light",
        {
            "material": "a modern kitchen interior, wooden countertops, natural light",
            "subject": "a modern bathroom interior, marble countertops, natural light",
            "time": "a modern kitchen interior, marble countertops, candlelight at night",
        },
    ),
    (
        "a tabby cat sleeping on a windowsill, sunbeam",
        {
            "colour": "a black cat sleeping on a windowsill, sunbeam",
            "action": "a tabby cat playing on a windowsill, sunbeam",
            "count": "three tabby cats sleeping on a windowsill, sunbeam",
        },
    ),
    (
        "an abandoned train station overgrown with plants, post-apocalyptic",
        {
            "subject": "an abandoned shopping mall overgrown with plants, post-apocalyptic",
            "negation": "an abandoned train station with no plants, post-apocalyptic",
            "season": "an abandoned train station covered in snow, post-apocalyptic",
        },
    ),
    (
        "a spaceship cockpit, view of a nebula, sci-fi concept art",
        {
            "object": "a spaceship cockpit, view of a black hole, sci-fi concept art",
            "colour": "a spaceship cockpit, view of a red nebula, sci-fi concept art",
            "medium": "a spaceship cockpit, view of a nebula, watercolor illustration",
        },
    ),
    (
        "a medieval village on a hill, autumn, aerial view",
        {
            "season": "a medieval village on a hill, spring, aerial view",
            "setting": "a medieval village by a lake, autumn, aerial view",
            "style": "a medieval village on a hill, autumn, aerial view, pixel art",
        },
    ),
    (
        "a jellyfish glowing in the deep sea, bioluminescent",
        {
            "subject": "an anglerfish glowing in the deep sea, bioluminescent",
            "count": "a swarm of jellyfish glowing in the deep sea, bioluminescent",
            "colour": "a pink jellyfish glowing in the deep sea, bioluminescent",
        },
    ),
    (
        "a man in a suit walking in the rain, film noir, black and white",
        {
            "subject": "a woman in a suit walking in the rain, film noir, black and white",
            "colour": "a man in a suit walking in the rain, film noir, vivid colors",
            "action": "a man in a suit running in the rain, film noir, black and white",
        },
    ),
    (
        "a treehouse in a giant oak tree, children's book illustration",
        {
            "subject": "a treehouse in a giant baobab tree, children's book illustration",
            "medium": "a treehouse in a giant oak tree, photorealistic render",
            "object": "a treehouse with a rope bridge in a giant oak tree, "
            "children's book illustration",
        },
    ),
    (
        "a viking ship sailing through a fjord, misty morning",
        {
            "time": "a viking ship sailing through a fjord, misty evening",
            "count": "a fleet of viking ships sailing through a fjord, misty morning",
            "weather": "a viking ship sailing through a fjord, stormy morning",
        },
    ),
    (
        "a cup of coffee with latte art, wooden table, top view",
        {
            "subject": "a cup of tea with latte art, wooden table, top view",
            "material": "a cup of coffee with latte art, marble table, top view",
            "count": "two cups of coffee with latte art, wooden table, top view",
        },
    ),
    (
        "a fantasy elf archer in a forest, detailed face",
        {
            "subject": "a fantasy dwarf archer in a forest, detailed face",
            "setting": "a fantasy elf archer in a desert, detailed face",
            "action": "a fantasy elf archer sleeping in a forest, detailed face",
        },
    ),
    (
        "a desert oasis with camels, sand dunes, midday sun",
        {
            "time": "a desert oasis with camels, sand dunes, under the stars",
            "negation": "a desert oasis without camels, sand dunes, midday sun",
            "subject": "a desert oasis with horses, sand dunes, midday sun",
        },
    ),
    (
        "a neon-lit arcade interior, retro 80s, synthwave",
        {
            "setting": "a neon-lit bowling alley interior, retro 80s, synthwave",
            "style": "a neon-lit arcade interior, retro 80s, sepia photograph",
            "negation": "a neon-lit arcade interior, retro 80s, synthwave, no people, empty",
        },
    ),
    (
        "a baby elephant playing in a mud pool, savanna",
        {
            "subject": "a baby rhino playing in a mud pool, savanna",
            "count": "three baby elephants playing in a mud pool, savanna",
            "action": "a baby elephant sleeping in a mud pool, savanna",
        },
    ),
    (
        "a cathedral interior with stained glass windows, rays of light",
        {
            "subject": "a mosque interior with stained glass windows, rays of light",
            "time": "a cathedral interior with stained glass windows, at night, candles",
            "negation": "a cathedral interior without windows, rays of light",
        },
    ),
    (
        "a mountain lake reflecting snowy peaks, sunrise, landscape photo",
        {
            "time": "a mountain lake reflecting snowy peaks, sunset, landscape photo",
            "season": "a mountain lake reflecting green peaks, summer, landscape photo",
            "medium": "a mountain lake reflecting snowy peaks, sunrise, oil painting",
        },
    ),
]

PARAPHRASES: list[tuple[str, str, int]] = [
    (
        "photorealistic astronaut on horseback on the lunar surface",
        "an astronaut riding a horse on the moon, photorealistic",
        1,
    ),
    ("a photo of a red fox in snow", "red fox in the snow, photograph", 1),
    ("portrait photo of a smiling old man", "a smiling old man, portrait photograph", 1),
    ("cat sleeping on a sofa", "a cat sleeping on the sofa", 1),
    ("a big wave with a surfer", "surfer riding a big wave", 1),
    ("oil painting of a sailboat at sea", "a sailboat on the ocean, oil painting", 1),
    ("a castle on a hill at sunset", "sunset, castle on top of a hill", 1),
    ("a blue car parked on a street", "a blue automobile parked on the road", 1),
    ("close-up of a bee on a sunflower, macro", "macro photo, a bee on a sunflower, closeup", 1),
    ("a corgi puppy in a yellow raincoat", "a corgi puppy in a red raincoat", 0),
    ("a cyberpunk street at night with neon", "a cyberpunk street during the day with neon", 0),
    ("two cats on a bed", "three cats on a bed", 0),
    ("a dog chasing a ball", "a dog chasing a cat", 0),
    ("a man holding an umbrella", "a man holding a sword", 0),
    ("a house by the lake in winter", "a house by the lake in summer", 0),
]

QUALITY = [
    "masterpiece, best quality",
    "highly detailed, 8k",
    "absurdres, high quality",
    "ultra detailed, sharp focus",
    "award winning, trending on artstation",
]


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1 :] if rng.random() < 0.5 else word[:i] + word[i] + word[i:]


def same_variants(prompt: str, rng: random.Random) -> list[tuple[str, str]]:
    segs = [s.strip() for s in prompt.split(",")]
    out = []
    shuffled = segs[:]
    while len(segs) > 1 and shuffled == segs:
        rng.shuffle(shuffled)
    out.append(("reordered", ", ".join(shuffled)))
    weighted = segs[:]
    k = rng.randrange(len(weighted))
    weighted[k] = f"({weighted[k]}:{rng.choice(['1.1', '1.2', '1.3', '0.9'])})"
    out.append(("weights", ", ".join(weighted)))
    out.append(("quality tags", f"{rng.choice(QUALITY)}, {prompt}"))
    long_words = [w for w in prompt.replace(",", " ").split() if len(w) >= 6 and w.isalpha()]
    if long_words:
        w = rng.choice(long_words)
        out.append(("spelling", prompt.replace(w, _typo(w, rng), 1)))
    out.append(("case and punctuation", prompt.upper().replace(",", " ,") + "."))
    return out


def build() -> list[dict[str, object]]:
    rng = random.Random(42)
    pairs: list[dict[str, object]] = []
    for base, diffs in BASES:
        for kind, variant in same_variants(base, rng):
            pairs.append({"a": base, "b": variant, "same": 1, "kind": kind})
        for kind, variant in diffs.items():
            pairs.append({"a": base, "b": variant, "same": 0, "kind": kind})
            # the change must also be caught when the other prompt is rewritten
            rewritten = same_variants(variant, rng)[rng.randrange(3)][1]
            pairs.append({"a": base, "b": rewritten, "same": 0, "kind": f"{kind} + rewrite"})
    for a, b, same in PARAPHRASES:
        pairs.append({"a": a, "b": b, "same": same, "kind": "paraphrase" if same else "hand"})
    return pairs


def evaluate(pairs: list[dict[str, object]]) -> None:
    from dreamdepot.semantic.embedders import load_embedder
    from dreamdepot.semantic.intent import same_intent

    emb = load_embedder()
    a = emb.embed_texts([str(p["a"]) for p in pairs])
    b = emb.embed_texts([str(p["b"]) for p in pairs])
    cos = (a * b).sum(1)
    checks = [same_intent(str(p["a"]), str(p["b"])).same for p in pairs]
    labels = [bool(p["same"]) for p in pairs]
    n_pos = sum(labels)
    print(f"{len(pairs)} pairs: {n_pos} same-intent, {len(pairs) - n_pos} different\n")
    print("threshold | cosine only: precision  recall | cosine + intent check: precision  recall")
    print("----------|-----------------------------------|---------------------------------------")
    for t in (0.70, 0.75, 0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.96):
        row = []
        for use_check in (False, True):
            pred = [c >= t and (ok or not use_check) for c, ok in zip(cos, checks, strict=True)]
            tp = sum(p and y for p, y in zip(pred, labels, strict=True))
            fp = sum(p and not y for p, y in zip(pred, labels, strict=True))
            precision = tp / (tp + fp) if tp + fp else 1.0
            row.append(f"{precision:10.3f} {tp / n_pos:7.3f}")
        print(f"{t:9.2f} | {row[0]:>33} | {row[1]:>38}")
    wrong = [
        (p, float(c)) for p, c, ok in zip(pairs, cos, checks, strict=True) if ok and not p["same"]
    ]
    print(f"\nintent check passes {len(wrong)} different-intent pair(s):")
    for p, c in wrong:
        print(f"  [{p['kind']}] {p['a']!r} vs {p['b']!r} (cos {c:.2f})")
    kinds: dict[str, list[int]] = {}
    for p, ok in zip(pairs, checks, strict=True):
        if p["same"]:
            kinds.setdefault(str(p["kind"]), []).append(int(ok))
    print("\nintent check recall by kind of rewrite:")
    for k, v in sorted(kinds.items()):
        print(f"  {k:22} {sum(v)}/{len(v)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true", help="regenerate bench/data/cache_pairs.jsonl")
    args = ap.parse_args()
    if args.write or not DATA.exists():
        DATA.parent.mkdir(exist_ok=True)
        DATA.write_text("".join(json.dumps(p) + "\n" for p in build()), encoding="utf-8")
    pairs = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    evaluate(pairs)


if __name__ == "__main__":
    main()
