"""Property tests: any input gives a record, None or a typed error — never another
exception, never a hang — for the chunk, EXIF, infotext, graph and C2PA readers."""

from __future__ import annotations

import contextlib
import json
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import A1111_TEXT, chunk, png_bytes, raw_png
from dreamdepot.errors import CorruptImageError, MetadataError, UnsupportedImageError
from dreamdepot.ingest.metadata.c2pa import summarise
from dreamdepot.ingest.metadata.comfyui import generation_from_graph, load_graph
from dreamdepot.ingest.metadata.containers import Container, read_container_bytes
from dreamdepot.ingest.metadata.exif import decode_user_comment, parse_exif
from dreamdepot.ingest.metadata.infotext import parse_infotext, parse_params_line
from dreamdepot.ingest.metadata.model import Generation
from dreamdepot.ingest.metadata.registry import BUILTIN_READERS

TYPED = (MetadataError, CorruptImageError, UnsupportedImageError)
FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [
    png_bytes({"parameters": A1111_TEXT}),
    raw_png([(b"zTXt", b"parameters\x00\x00" + zlib.compress(A1111_TEXT.encode()))]),
    raw_png(
        [
            (
                b"eXIf",
                b"MM\x00*\x00\x00\x00\x08\x00\x01\x92\x86\x00\x07\x00\x00\x00\x10"
                b"\x00\x00\x00\x1aASCII\x00\x00\x00hello!!!",
            )
        ]
    ),
]


def _container_or_typed_error(data: bytes) -> None:
    try:
        c = read_container_bytes(data)
    except TYPED:
        return
    assert isinstance(c, Container)
    for reader in BUILTIN_READERS:
        try:
            result = reader.read(c, None)
        except MetadataError:
            continue
        assert result is None or isinstance(result, Generation)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _container_or_typed_error(data)


@FUZZ
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=12),
    st.integers(0, 4000),
)
def test_mutated_pngs(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    _container_or_typed_error(bytes(data[: max(8, len(data) - cut)]))


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "parameters",
                "prompt",
                "workflow",
                "Comment",
                "Software",
                "invokeai_metadata",
                "sd-metadata",
                "Dream",
                "Description",
                "fooocus_scheme",
                "generation_data",
                "parameters-json",
                "smproj",
                "Source",
            ]
        ),
        st.one_of(
            st.text(max_size=300),
            st.recursive(
                st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                lambda c: (
                    st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4)
                ),
                max_leaves=20,
            ).map(json.dumps),
        ),
        max_size=4,
    )
)
def test_readers_on_arbitrary_chunk_texts(texts: dict[str, str]) -> None:
    if "Software" in texts:
        texts["Software"] = "NovelAI"
    data = raw_png(
        [
            (b"iTXt", k.encode() + b"\x00\x00\x00\x00\x00" + v.encode("utf-8", "replace"))
            for k, v in texts.items()
        ]
    )
    _container_or_typed_error(data)


@FUZZ
@given(st.binary(max_size=600))
def test_exif(data: bytes) -> None:
    for blob in (data, b"MM\x00*\x00\x00\x00\x08" + data, b"II*\x00\x08\x00\x00\x00" + data):
        try:
            tags = parse_exif(blob)
        except MetadataError:
            continue
        assert all(isinstance(v, bytes) for v in tags.values())
    assert isinstance(decode_user_comment(data), str)


@FUZZ
@given(st.text(max_size=600))
def test_infotext(text: str) -> None:
    g = parse_infotext(text)
    assert isinstance(g, Generation)
    assert isinstance(parse_params_line(text), dict)


_link = st.tuples(st.sampled_from(["1", "2", "3", "4", "x"]), st.integers(0, 2)).map(list)
_value = st.one_of(
    st.integers(-5, 10**20),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    _link,
    st.none(),
    st.booleans(),
)
_node = st.fixed_dictionaries(
    {
        "class_type": st.sampled_from(
            [
                "KSampler",
                "CLIPTextEncode",
                "CheckpointLoaderSimple",
                "SamplerCustomAdvanced",
                "CFGGuider",
                "RandomNoise",
                "LoraLoader",
                "SaveImage",
                "ConditioningCombine",
                "Other",
            ]
        ),
        "inputs": st.dictionaries(
            st.sampled_from(
                [
                    "seed",
                    "noise_seed",
                    "steps",
                    "cfg",
                    "text",
                    "positive",
                    "negative",
                    "model",
                    "clip",
                    "ckpt_name",
                    "sampler_name",
                    "noise",
                    "guider",
                    "sigmas",
                    "sampler",
                    "latent_image",
                    "conditioning",
                    "lora_name",
                    "images",
                ]
            ),
            _value,
            max_size=8,
        ),
    }
)


@FUZZ
@given(st.dictionaries(st.sampled_from(["1", "2", "3", "4", "x"]), _node, min_size=1, max_size=5))
def test_comfyui_graphs(graph: dict[str, object]) -> None:
    try:
        g = generation_from_graph(load_graph(json.dumps(graph)))
    except MetadataError:
        return
    assert isinstance(g, Generation)


def test_comfyui_graph_cycles_terminate() -> None:
    graph = {
        "1": {
            "class_type": "KSampler",
            "inputs": {
                "seed": ["2", 0],
                "steps": 3,
                "model": ["3", 0],
                "positive": ["4", 0],
                "negative": ["4", 0],
            },
        },
        "2": {"class_type": "Loop", "inputs": {"seed": ["2", 0]}},
        "3": {"class_type": "LoraLoader", "inputs": {"lora_name": "l", "model": ["3", 0]}},
        "4": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["4", 0]}},
    }
    g = generation_from_graph(load_graph(json.dumps(graph)))
    assert g.seed is None and g.steps == 3 and g.prompt is None


@FUZZ
@given(st.binary(max_size=1500))
def test_c2pa(data: bytes) -> None:
    for blob in (data, b"\x00\x00\x00\x20jumb" + data, chunk(b"xxxx", data)[4:]):
        with contextlib.suppress(MetadataError):
            summarise(blob)
