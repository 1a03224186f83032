"""Conformance over ../shared/corpus: real files from real generators, expected values
from upstream tests or the embedded text (every MANIFEST*.tsv). Negative controls (files with
no generation metadata) must read as nothing. Skips when the corpus is absent."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from conftest import CORPUS
from dreamdepot.ingest.metadata import read_generation


def _rows() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for manifest in sorted(CORPUS.glob("MANIFEST*.tsv")):
        with open(manifest, encoding="utf-8", newline="") as f:
            rows += csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    return rows


def _negative_control(row: dict[str, str]) -> bool:
    return "negative control" in row["generator"]


def _unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")


def _lines(text: str) -> str:
    return "\n".join(line.strip() for line in text.replace("\r\n", "\n").split("\n")).strip()


def _without_note(value: str) -> str:
    """Expected values may carry a note in parentheses, e.g. '... (read)'."""
    return re.sub(r"\s*\((?:read|hash|scheduler|from|test)[^)]*\)\s*$", "", value).strip()


ROWS = _rows()


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_corpus_file_matches_its_expected_values(row: dict[str, str], corpus: Path) -> None:
    g = read_generation(corpus / "files" / row["file"])
    if _negative_control(row):
        assert g is None or (g.prompt is None and g.seed is None), (g.generator, g.prompt)
        return
    assert g is not None, "no metadata read"
    expected_prompt = _lines(_unescape(row["expected_positive_prompt_first80"]))
    if expected_prompt:
        prompts = [_lines(g.prompt or "")]
        if "first listed shown" in row["notes"]:  # several area prompts, any order is valid
            prompts += [_lines(p) for p in g.params.get("prompts", [])]
        assert any(p.startswith(expected_prompt) for p in prompts), (g.prompt, expected_prompt)
    if row["expected_seed"]:
        assert str(g.seed) == row["expected_seed"]
    if row["expected_steps"]:
        assert str(g.steps) == row["expected_steps"]
    if row["expected_sampler"]:
        m = re.fullmatch(r"(.+?)(?: \(scheduler (.+)\))?", row["expected_sampler"])
        assert m is not None
        assert g.sampler == m.group(1)
        if m.group(2):
            assert g.scheduler == m.group(2)
    if row["expected_model"]:
        expected = _without_note(row["expected_model"]).removeprefix("softwareAgent ")
        candidates = {g.model, f"{g.model} {g.model_hash}"}
        assert expected in candidates, (g.model, g.model_hash, expected)


def test_c2pa_file_is_ai_generated_by_openai_without_a_prompt(corpus: Path) -> None:
    g = read_generation(corpus / "files" / "enslo__chatgpt-image2.png")
    assert g is not None
    assert g.generator == "openai" and g.ai_generated and g.prompt is None
    assert g.params["claim_generator"] == "OpenAI Media Service API"
    assert g.params["digital_source_type"].endswith("trainedAlgorithmicMedia")
    assert g.source == ["png:c2pa"]


def test_forge_and_novelai_stealth_copies_agree_with_their_chunks(corpus: Path) -> None:
    """These files carry the same metadata twice: in text chunks and in the alpha LSBs."""
    from dreamdepot.ingest.metadata.readers import stealth

    for name in ("enslo__forge.png", "llmkira__nai_sample-0316.png"):
        path = corpus / "files" / name
        chunks = read_generation(path)
        pixels = stealth.read_pixels(path)
        assert pixels is not None and chunks is not None
        found = stealth.decode_stealth(pixels)
        assert found is not None and found[0] == "stealth_pngcomp"
        hidden = stealth.generation_from_payload(*found)
        assert hidden is not None
        assert (hidden.seed, hidden.steps) == (chunks.seed, chunks.steps)
        assert _lines(hidden.prompt or "") == _lines(chunks.prompt or "")


def test_generators_are_named(corpus: Path) -> None:
    names = {r["file"]: read_generation(corpus / "files" / r["file"]) for r in ROWS}
    assert names["enslo__forge.png"].generator == "forge"  # type: ignore[union-attr]
    assert names["enslo__sd-webui.png"].generator == "a1111"  # type: ignore[union-attr]
    assert names["enslo__swarmui.png"].graph is not None  # type: ignore[union-attr]
    assert names["enslo__stability-matrix.png"].generator == "stability-matrix"  # type: ignore[union-attr]
    flux = names["comfyex__flux_kontext_example_comic.webp"]
    assert flux is not None and len(flux.passes) == 6 and flux.params["guidance"] == 2.5
    night = names["sdparsers__comfyui_night_evening_day_morning_cropped.png"]
    assert night is not None and len(night.params["prompts"]) == 5
    [hires] = night.passes
    assert (hires.kind, hires.seed, hires.steps, hires.model) == (
        "hires",
        1122440447966177,
        14,
        "AbyssOrangeMix2_hard.safetensors",
    )
    dream = names["sdparsers__invokeai_dream1.png"]
    assert dream is not None and dream.negative_prompt == "rendering, glowing eyes, skinny"
