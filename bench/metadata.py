"""Metadata read benchmark: `python bench/metadata.py` prints a table.

Header-only reads (`read_generation`) in one process (= per core), warm file cache, per
format: PNG with A1111 text, PNG with a ComfyUI graph, JPEG and WebP with EXIF, and the
real files of ../shared/corpus. Also scores sd-parsers on that corpus when it is installed
(`pip install sd-parsers`), for docs/metadata-readers.md.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_table
from dreamdepot.ingest.metadata import read_generation
from ingest import OUT, large_corpus, realistic_corpus, small_corpus

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def _rate(paths: list[Path], repeats: int = 3) -> tuple[float, int]:
    for p in paths[:50]:  # warm the cache
        p.read_bytes()
    best = 0.0
    found = 0
    for _ in range(repeats):
        t = time.perf_counter()
        found = sum(1 for p in paths if read_generation(p) is not None)
        best = max(best, len(paths) / (time.perf_counter() - t))
    return best, found


def _comfy_pngs(root: Path, n: int = 3000) -> list[Path]:
    if not (root / ".complete").exists():
        from PIL import Image, PngImagePlugin

        root.mkdir(parents=True, exist_ok=True)
        base = Image.new("RGB", (64, 64), (30, 60, 90))
        for i in range(n):
            graph = {
                "4": {
                    "class_type": "CheckpointLoaderSimple",
                    "inputs": {"ckpt_name": "m.safetensors"},
                },
                "10": {
                    "class_type": "LoraLoader",
                    "inputs": {
                        "lora_name": "l.safetensors",
                        "strength_model": 0.7,
                        "model": ["4", 0],
                        "clip": ["4", 1],
                    },
                },
                "6": {
                    "class_type": "CLIPTextEncode",
                    "inputs": {"text": f"comfy prompt {i}", "clip": ["10", 1]},
                },
                "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "bad", "clip": ["10", 1]}},
                "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64}},
                "3": {
                    "class_type": "KSampler",
                    "inputs": {
                        "seed": i,
                        "steps": 20,
                        "cfg": 7,
                        "sampler_name": "euler",
                        "scheduler": "normal",
                        "denoise": 1.0,
                        "model": ["10", 0],
                        "positive": ["6", 0],
                        "negative": ["7", 0],
                        "latent_image": ["5", 0],
                    },
                },
                "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
                "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
            }
            workflow = {
                "nodes": [{"id": k, "type": "X", "widgets_values": [k] * 20} for k in range(40)],
                "links": [[k, k, 0, k + 1, 0, "MODEL"] for k in range(40)],
            }
            info = PngImagePlugin.PngInfo()
            info.add_text("prompt", json.dumps(graph))
            info.add_text("workflow", json.dumps(workflow))
            base.save(root / f"{i:05d}.png", "PNG", pnginfo=info)
        (root / ".complete").touch()
    return sorted(root.glob("*.png"))


def score_sd_parsers() -> list[str]:
    """Field-by-field score of sd-parsers against MANIFEST.tsv (same rules as our test)."""
    try:
        from sd_parsers import ParserManager
    except ImportError:
        return ["sd-parsers not installed: `pip install sd-parsers` to score it"]
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    pm = ParserManager()

    def norm(t: str | None) -> str:
        lines = (t or "").replace("\\n", "\n").replace("\r", "").split("\n")
        return "\n".join(x.strip() for x in lines).strip()

    ours = theirs = total = 0
    t_ours = t_theirs = 0.0
    misses: list[str] = []
    for r in rows:
        path = CORPUS / "files" / r["file"]
        t = time.perf_counter()
        try:
            info = pm.parse(str(path))
        except Exception:
            info = None
        t_theirs += time.perf_counter() - t
        t = time.perf_counter()
        g = read_generation(path)
        t_ours += time.perf_counter() - t
        sampler = info.samplers[0] if info and info.samplers else None
        their = {
            "prompt": norm(" ".join(p.value for p in sampler.prompts))
            if sampler and sampler.prompts
            else "",
            "seed": str(sampler.parameters.get("seed")) if sampler else "",
            "steps": str(sampler.parameters.get("steps")) if sampler else "",
            "sampler": sampler.name if sampler else "",
            "model": (sampler.model.name if sampler and sampler.model else "") or "",
        }
        mine = {
            "prompt": norm(g.prompt) if g else "",
            "seed": str(g.seed) if g else "",
            "steps": str(g.steps) if g else "",
            "sampler": (g.sampler or "") if g else "",
            "model": (g.model or "") if g else "",
        }
        exp = {
            "prompt": norm(r["expected_positive_prompt_first80"]),
            "seed": r["expected_seed"],
            "steps": r["expected_steps"],
            "sampler": re.sub(r" \(scheduler .*\)$", "", r["expected_sampler"]),
            "model": re.sub(
                r"\s*\((?:read|hash|from|test)[^)]*\)$", "", r["expected_model"]
            ).removeprefix("softwareAgent "),
        }
        for key, want in exp.items():
            if not want:
                continue
            total += 1
            ok_t = their[key].startswith(want) if key == "prompt" else their[key] == want
            ok_o = (
                mine[key].startswith(want)
                if key == "prompt"
                else (
                    mine[key] == want or f"{g.model} {g.model_hash}" == want
                    if g and key == "model"
                    else mine[key] == want
                )
            )
            if key == "prompt" and not ok_o and g:
                ok_o = any(norm(p).startswith(want) for p in g.params.get("prompts", []))
            theirs += ok_t
            ours += ok_o
            if not ok_t:
                misses.append(f"{r['file']}:{key}")
    n = len(rows)
    return [
        f"corpus fields checked: {total} over {n} files",
        f"dreamdepot: {ours}/{total} fields right, {n / t_ours:,.0f} files/s",
        f"sd-parsers 0.6: {theirs}/{total} fields right, {n / t_theirs:,.0f} files/s",
        f"sd-parsers misses ({len(misses)}): " + ", ".join(misses),
    ]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    rows: list[tuple[str, int, float, int]] = []
    small = sorted(small_corpus(OUT / "small").glob("*/*.png"))[:10_000]
    rows.append(("PNG 64x64, A1111 parameters (tEXt)", len(small), *_rate(small)))
    comfy = _comfy_pngs(OUT / "comfy-small")
    rows.append(("PNG 64x64, ComfyUI prompt + workflow", len(comfy), *_rate(comfy)))
    tiny = sorted(large_corpus(OUT / "large").glob("d00[0-4]/*.png"))
    rows.append(("PNG 1x1, A1111 (minimal file)", len(tiny), *_rate(tiny)))
    real = realistic_corpus(OUT / "realistic")
    for fmt, label in (
        ("png", "PNG 512-1024 px, 2-30 KB text"),
        ("jpeg", "JPEG 512-1024 px, EXIF"),
        ("webp", "WebP 512-1024 px, EXIF"),
    ):
        paths = sorted((real / fmt).iterdir())[:1500]
        rows.append((label, len(paths), *_rate(paths)))
    if (CORPUS / "files").is_dir():
        files = sorted((CORPUS / "files").iterdir())
        rows.append((f"shared corpus: {len(files)} real files, all generators", len(files),
                     *_rate(files, 5)))  # fmt: skip
    print_table(
        ("files (one process, warm cache)", "n", "files/s", "read"),
        [(name, f"{n:,}", f"{rate:,.0f}", f"{found}/{n}") for name, n, rate, found in rows],
        note_last=False,
    )
    if (CORPUS / "MANIFEST.tsv").is_file():
        print()
        for line in score_sd_parsers():
            print(line)


if __name__ == "__main__":
    main()
