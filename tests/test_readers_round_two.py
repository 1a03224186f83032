"""Metadata, round two, by mechanism (synthetic graphs, not the corpus files): text and
models followed through switches, concatenations, pass-throughs and custom prompt nodes;
run-time-only text recorded as unresolved; the first pass is the image's own; a degenerate
infotext beside a graph loses; Civitai's on-site JPEGs with urn:air resources; TensorArt's
human model name. The real files are checked by tests/test_corpus_conformance.py."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import jpeg_user_comment, png
from conftest import Cli
from dreamdepot.errors import MetadataError
from dreamdepot.ingest.metadata import read_generation
from dreamdepot.ingest.metadata.comfyui import generation_from_graph


def ksampler(
    seed: int,
    steps: int,
    positive: str,
    latent: list[Any],
    model: str = "ckpt",
    sampler: str = "euler",
) -> dict[str, Any]:
    return {
        "class_type": "KSampler",
        "inputs": {
            "seed": seed,
            "steps": steps,
            "cfg": 7,
            "sampler_name": sampler,
            "scheduler": "normal",
            "denoise": 1.0,
            "model": [model, 0],
            "positive": [positive, 0],
            "negative": ["neg", 0],
            "latent_image": latent,
        },
    }


BASE: dict[str, Any] = {
    "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
    "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly", "clip": ["ckpt", 1]}},
    "lat": {
        "class_type": "EmptyLatentImage",
        "inputs": {"width": 64, "height": 64, "batch_size": 1},
    },
}


def test_custom_prompt_node_with_an_optional_clip() -> None:
    graph = {
        **BASE,
        "pp": {
            "class_type": "Power Prompt (rgthree)",
            "inputs": {"prompt": "a lighthouse at dawn", "opt_clip": ["ckpt", 1]},
        },
        "s": ksampler(1, 20, "pp", ["lat", 0]),
        "out": {"class_type": "SaveImage", "inputs": {"images": ["s", 0]}},
    }
    assert generation_from_graph(graph).prompt == "a lighthouse at dawn"


def test_switches_concatenations_and_run_time_text() -> None:
    graph = {
        **BASE,
        "user": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "a red fox"}},
        "style": {"class_type": "PrimitiveString", "inputs": {"value": "oil painting"}},
        "cat": {
            "class_type": "StringConcatenate",
            "inputs": {"string_a": ["user", 0], "string_b": ["style", 0], "delimiter": ", "},
        },
        "llm": {"class_type": "SomeLLMWriter", "inputs": {"prompt": ["cat", 0], "max_length": 256}},
        "on": {"class_type": "PrimitiveBoolean", "inputs": {"value": True}},
        "sw": {
            "class_type": "ComfySwitchNode",
            "inputs": {"switch": ["on", 0], "on_true": ["llm", 0], "on_false": ["cat", 0]},
        },
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["sw", 0]}},
        "enc": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": ["show", 0], "clip": ["ckpt", 1]},
        },
        "mswitch": {
            "class_type": "ComfySwitchNode",
            "inputs": {"switch": False, "on_true": ["ckpt", 0], "on_false": ["ckpt", 0]},
        },
        "s": ksampler(1, 20, "enc", ["lat", 0], model="mswitch"),
        "out": {"class_type": "SaveImage", "inputs": {"images": ["s", 0]}},
    }
    g = generation_from_graph(graph)
    # the selected branch is an LLM's run-time output: the switch's other branch is the text
    assert g.prompt == "a red fox, oil painting"
    assert g.params["unresolved"] == ["SomeLLMWriter#llm"]
    assert g.model == "base.safetensors"  # through a switch on the model path


def test_the_first_pass_is_the_image_s_own() -> None:
    graph = {
        **BASE,
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "castle", "clip": ["ckpt", 1]}},
        "s1": ksampler(111, 24, "pos", ["lat", 0]),
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["s1", 0], "vae": ["ckpt", 2]}},
        "up": {
            "class_type": "ImageScaleBy",
            "inputs": {"image": ["dec", 0], "scale_by": 1.5, "upscale_method": "lanczos"},
        },
        "enc": {"class_type": "VAEEncode", "inputs": {"pixels": ["up", 0], "vae": ["ckpt", 2]}},
        "s2": ksampler(222, 10, "pos", ["enc", 0], sampler="dpmpp_2m"),
        "dec2": {"class_type": "VAEDecode", "inputs": {"samples": ["s2", 0], "vae": ["ckpt", 2]}},
        "out": {"class_type": "SaveImage", "inputs": {"images": ["dec2", 0]}},
    }
    g = generation_from_graph(graph)
    assert (g.seed, g.steps, g.sampler) == (111, 24, "euler")
    assert [(p.kind, p.seed, p.steps, p.sampler) for p in g.passes] == [
        ("hires", 222, 10, "dpmpp_2m")
    ]


def test_a_degenerate_infotext_does_not_override_the_graph(tmp_path: Path) -> None:
    graph = {
        **BASE,
        "pos": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "a teapot", "clip": ["ckpt", 1]},
        },
        "s": ksampler(987654, 30, "pos", ["lat", 0]),
        "out": {"class_type": "SaveImage", "inputs": {"images": ["s", 0]}},
    }
    unwired = "unknown\nNegative prompt: unknown\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 0"
    g = read_generation(
        png(tmp_path / "a.png", {"prompt": json.dumps(graph), "parameters": unwired})
    )
    assert g is not None and (g.prompt, g.seed, g.steps) == ("a teapot", 987654, 30)
    assert "unknown" in g.params["ignored_infotext"]
    wired = "a teapot, summary\nSteps: 30, Sampler: Euler, CFG scale: 7, Seed: 987654"
    g = read_generation(png(tmp_path / "b.png", {"prompt": json.dumps(graph), "parameters": wired}))
    assert g is not None and g.prompt == "a teapot, summary"  # a real summary still wins


def test_civitai_on_site_jpeg_with_air_resources(tmp_path: Path) -> None:
    ckpt = "urn:air:sdxl:checkpoint:civitai:101@202"
    lora = "urn:air:sdxl:lora:civitai:303@404"
    graph = {
        "resource-stack": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "neg": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "bad", "clip": ["resource-stack", 1]},
        },
        "pos": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": "graph prompt", "clip": ["resource-stack", 1]},
        },
        "lat": BASE["lat"],
        "s": {**ksampler(5, 20, "pos", ["lat", 0], model="resource-stack")},
        "out": {"class_type": "SaveImage", "inputs": {"images": ["s", 0]}},
        "extra": {"airs": [ckpt, lora]},
        "extraMetadata": json.dumps(
            {
                "prompt": "a fox in snow",
                "negativePrompt": "bad",
                "steps": 25,
                "cfgScale": 5,
                "sampler": "euler_ancestral",
                "seed": 1311,
                "workflowId": "txt2img",
            }
        ),
    }
    g = read_generation(jpeg_user_comment(tmp_path / "c.jpg", json.dumps(graph)))
    assert g is not None and g.generator == "civitai"
    assert (g.prompt, g.seed, g.steps, g.sampler, g.scheduler) == (
        "a fox in snow",
        1311,
        25,
        "euler_ancestral",
        "normal",
    )
    assert g.model == ckpt and [r.name for r in g.loras] == [lora]
    assert g.params["base_model"] == "sdxl"
    upscale_only = {"extra": {"airs": []}, "extraMetadata": json.dumps({"prompt": "p", "seed": 9})}
    g = read_generation(jpeg_user_comment(tmp_path / "u.jpg", json.dumps(upscale_only)))
    assert g is not None and (g.prompt, g.seed) == ("p", 9)


def test_tensorart_prefers_the_human_model_name(tmp_path: Path) -> None:
    graph = {
        **BASE,
        "ckpt": {
            "class_type": "ECHOCheckpointLoaderSimple",
            "inputs": {"ckpt_name": "EMS-1234-EMS.safetensors"},
        },
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["ckpt", 1]}},
        "s": ksampler(1, 20, "pos", ["lat", 0]),
        "out": {"class_type": "SaveImage", "inputs": {"images": ["s", 0]}},
    }
    data = {"prompt": "x", "baseModel": {"modelFileName": "WAI-illustrious-v14", "hash": "ab"}}
    g = read_generation(
        png(tmp_path / "t.png", {"prompt": json.dumps(graph), "generation_data": json.dumps(data)})
    )
    assert g is not None and g.model == "WAI-illustrious-v14"
    assert g.params["model_id"] == "EMS-1234-EMS.safetensors"


def test_unresolved_nodes_show_in_inspect_and_doctor(cli: Cli, tmp_path: Path) -> None:
    graph = {
        **BASE,
        "llm": {"class_type": "TIPO", "inputs": {"tags": "1girl", "temperature": 0.5}},
        "enc": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": ["llm", 0], "clip": ["ckpt", 1]},
        },
        "s": ksampler(1, 20, "enc", ["lat", 0]),
        "out": {"class_type": "SaveImage", "inputs": {"images": ["s", 0]}},
    }
    f = png(tmp_path / "pics" / "tipo.png", {"prompt": json.dumps(graph)})
    assert cli.json("inspect", str(f), "--json")["unresolved"] == ["TIPO#llm"]
    cli("add", str(tmp_path / "pics"))
    report = cli.json("doctor", "--json")
    assert report["unresolved"][0]["nodes"] == ["TIPO#llm"]
    assert "unresolved" in cli("doctor").stdout


NODE_TYPES = [
    "ComfySwitchNode",
    "StringConcatenate",
    "PreviewAny",
    "PrimitiveString",
    "CLIPTextEncode",
    "KSampler",
    "TextGenerate",
    "Reroute",
    "Power Prompt (rgthree)",
]
INPUT_NAMES = [
    "switch",
    "on_true",
    "on_false",
    "string_a",
    "string_b",
    "delimiter",
    "source",
    "value",
    "text",
    "clip",
    "opt_clip",
    "prompt",
    "max_length",
    "seed",
    "steps",
    "positive",
    "negative",
    "model",
    "latent_image",
    "sampler_name",
]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_fuzz_graphs_with_switches_and_concatenations(data: st.DataObject) -> None:
    ids = [str(i) for i in range(data.draw(st.integers(1, 8)))]
    value = st.one_of(
        st.text(max_size=8),
        st.integers(),
        st.booleans(),
        st.none(),
        st.tuples(st.sampled_from(ids), st.integers(0, 2)).map(list),
    )
    graph = {
        nid: {
            "class_type": data.draw(st.sampled_from(NODE_TYPES)),
            "inputs": data.draw(st.dictionaries(st.sampled_from(INPUT_NAMES), value, max_size=6)),
        }
        for nid in ids
    }
    with contextlib.suppress(MetadataError):  # the only exception a reader may raise
        generation_from_graph(graph)
