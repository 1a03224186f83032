"""Each generator's format, built here from its spec (Pillow, piexif), odd cases included."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import piexif
import piexif.helper
import pytest
from PIL import Image

from builders import (
    A1111_TEXT,
    chunk,
    image,
    jpeg_user_comment,
    png,
    raw_png,
    text_chunk,
    webp_exif,
)
from dreamdepot.ingest.metadata import read_generation
from dreamdepot.ingest.metadata.infotext import format_infotext, parse_infotext, parse_params_line

# --- container rules ----------------------------------------------------------------------


def test_png_text_after_idat_and_ztxt_and_itxt(tmp_path: Path) -> None:
    p = tmp_path / "after.png"
    p.write_bytes(raw_png(texts_after=[text_chunk("parameters", A1111_TEXT)]))
    assert read_generation(p).seed == 1234  # type: ignore[union-attr]
    z = png(tmp_path / "z.png", ztxt={"parameters": A1111_TEXT})
    assert read_generation(z).steps == 25  # type: ignore[union-attr]
    i = png(tmp_path / "i.png", {"parameters": A1111_TEXT.replace("red fox", "赤い狐")})
    assert read_generation(i).prompt.startswith("a 赤い狐")  # type: ignore[union-attr]


def test_tEXt_with_raw_utf8_bytes_is_read_as_utf8(tmp_path: Path) -> None:
    text = A1111_TEXT.replace("red fox", "#テスト fox").encode("utf-8")
    p = tmp_path / "sm.png"
    p.write_bytes(raw_png([(b"tEXt", b"parameters\x00" + text)]))
    assert "#テスト fox" in read_generation(p).prompt  # type: ignore[operator, union-attr]


def test_png_named_jpeg_is_detected_by_magic(tmp_path: Path) -> None:
    p = png(tmp_path / "really-a-png.jpeg", {"parameters": A1111_TEXT})
    assert read_generation(p).seed == 1234  # type: ignore[union-attr]


@pytest.mark.parametrize("encoding", ["unicode", "ascii", "jis"])
def test_jpeg_user_comment_charsets(tmp_path: Path, encoding: str) -> None:
    text = A1111_TEXT if encoding != "jis" else A1111_TEXT.replace("red fox", "狐")
    p = jpeg_user_comment(tmp_path / f"{encoding}.jpg", text, encoding=encoding)
    g = read_generation(p)
    assert g is not None and g.seed == 1234 and g.source == ["jpeg:exif:UserComment"]


def test_user_comment_utf16_little_endian_and_in_ifd0(tmp_path: Path) -> None:
    comment = b"UNICODE\x00" + A1111_TEXT.encode("utf-16-le")
    exif = piexif.dump(
        {
            "0th": {piexif.ImageIFD.XPComment: b"x\x00"},
            "Exif": {piexif.ExifIFD.UserComment: comment},
        }
    )
    p = tmp_path / "le.webp"
    webp_exif(p, exif)
    assert read_generation(p).seed == 1234  # type: ignore[union-attr]
    # IFD0 UserComment without prefix (Fooocus, SaveImagePlus)
    ifd0 = Image.Exif()
    ifd0[0x9286] = A1111_TEXT
    q = tmp_path / "ifd0.jpg"
    image().save(q, "JPEG", exif=ifd0.tobytes())
    assert read_generation(q).steps == 25  # type: ignore[union-attr]


def test_webp_exif_with_and_without_the_exif_prefix(tmp_path: Path) -> None:
    tiff = piexif.dump(
        {"Exif": {piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(A1111_TEXT)}}
    )
    assert tiff.startswith(b"Exif\x00\x00")
    for name, data in (("with.webp", tiff), ("without.webp", tiff[6:])):
        p = webp_exif(tmp_path / name, data)
        assert read_generation(p).seed == 1234, name  # type: ignore[union-attr]


def test_gif_comment_and_avif_exif(tmp_path: Path) -> None:
    g = tmp_path / "a.gif"
    image(mode="P", colour=1).save(g, "GIF", comment=A1111_TEXT.encode())
    assert read_generation(g).seed == 1234  # type: ignore[union-attr]
    a = tmp_path / "a.avif"
    exif = piexif.dump(
        {
            "Exif": {
                piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(
                    A1111_TEXT, encoding="unicode"
                )
            }
        }
    )
    image().save(a, "AVIF", exif=exif)
    assert read_generation(a).steps == 25  # type: ignore[union-attr]


def test_an_image_without_metadata_reads_as_none(tmp_path: Path) -> None:
    assert read_generation(png(tmp_path / "plain.png")) is None


# --- A1111 infotext -----------------------------------------------------------------------


def test_infotext_grammar_quotes_brackets_hashes_and_passes() -> None:
    text = (
        "masterpiece, <lora:detail:0.6> (fox:1.2),\nsecond line\n"
        "Negative prompt: blurry,\nbad hands\n"
        "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 42, Size: 832x1216, "
        "Model hash: 1234567890, Model: mdl, Denoising strength: 0.4, Clip skip: 2, "
        'Hires upscale: 1.5, Hires steps: 10, Hires upscaler: "4x-UltraSharp", '
        'Lora hashes: "detail: aaaa1111", TI hashes: "easyneg: bbbb2222, bad: cccc", '
        'Emphasis: "Original, No norm", '
        'Civitai resources: [{"type":"checkpoint","modelVersionId":1,"name":"a, b"}], '
        "Version: f2.0.1v1.10.1-previous"
    )
    g = parse_infotext(text)
    assert g.prompt == "masterpiece, <lora:detail:0.6> (fox:1.2),\nsecond line"
    assert g.negative_prompt == "blurry,\nbad hands"
    assert (g.steps, g.seed, g.cfg_scale, g.width, g.height) == (30, 42, 6.5, 832, 1216)
    assert (g.denoise, g.clip_skip, g.sampler) == (0.4, 2, "DPM++ 2M Karras")
    assert [(r.name, r.weight, r.hash) for r in g.loras] == [("detail", 0.6, "aaaa1111")]
    assert [(e.name, e.hash) for e in g.embeddings] == [("easyneg", "bbbb2222"), ("bad", "cccc")]
    assert g.params["Emphasis"] == "Original, No norm"
    assert g.params["Civitai resources"][0]["name"] == "a, b"
    assert g.passes[0].kind == "hires" and g.passes[0].steps == 10
    assert g.generator_version == "f2.0.1v1.10.1-previous"


def test_infotext_without_parameters_line_is_all_prompt() -> None:
    g = parse_infotext("just a prompt\nwith: colons, but only two: pairs")
    assert g.prompt == "just a prompt\nwith: colons, but only two: pairs" and g.steps is None


def test_format_infotext_round_trips() -> None:
    g = parse_infotext(A1111_TEXT)
    again = parse_infotext(format_infotext(g))
    assert (
        again.prompt,
        again.negative_prompt,
        again.seed,
        again.steps,
        again.sampler,
        again.scheduler,
        again.cfg_scale,
        again.model,
    ) == (
        g.prompt,
        g.negative_prompt,
        g.seed,
        g.steps,
        g.sampler,
        g.scheduler,
        g.cfg_scale,
        g.model,
    )


def test_params_line_with_escaped_quotes() -> None:
    d = parse_params_line(r'Prompt: "say \"hi\", ok", Steps: 3')
    assert d == {"Prompt": 'say "hi", ok', "Steps": "3"}


@pytest.mark.parametrize(
    ("version", "extra", "generator"),
    [
        ("f2.0.1v1.10.1", "", "forge"),
        ("neo", "", "forge-neo"),
        ("v1.10.1", ", App: SD.Next", "sdnext"),
        ("v1.10.1", "", "a1111"),
    ],
)
def test_a1111_family_is_told_apart(
    tmp_path: Path, version: str, extra: str, generator: str
) -> None:
    text = A1111_TEXT.replace("Version: v1.10.1", f"Version: {version}{extra}")
    assert read_generation(png(tmp_path / "x.png", {"parameters": text})).generator == generator  # type: ignore[union-attr]


def test_postprocessing_chunk(tmp_path: Path) -> None:
    p = png(
        tmp_path / "extras.png",
        {
            "postprocessing": "Postprocess upscale by: 4, "
            "Postprocess upscaler: R-ESRGAN 4x+, Other: 1"
        },
    )
    g = read_generation(p)
    assert g is not None and g.params["Postprocess upscale by"] == "4"


# --- stealth pnginfo ------------------------------------------------------------------------


def _embed_stealth(im: Image.Image, magic: bytes, payload: bytes, mode: str) -> Image.Image:
    bits = np.unpackbits(
        np.frombuffer(magic + struct.pack(">I", len(payload) * 8) + payload, dtype=np.uint8)
    )
    arr = np.array(im.convert("RGBA" if mode == "alpha" else "RGB"))
    h, w = arr.shape[:2]
    if mode == "alpha":
        plane = arr[:, :, 3].T.reshape(-1).copy()
        plane[: bits.size] = (plane[: bits.size] & 0xFE) | bits
        arr[:, :, 3] = plane.reshape(w, h).T
    else:
        flat = arr[:, :, :3].transpose(1, 0, 2).reshape(-1).copy()
        flat[: bits.size] = (flat[: bits.size] & 0xFE) | bits
        arr[:, :, :3] = flat.reshape(w, h, 3).transpose(1, 0, 2)
    return Image.fromarray(arr)


@pytest.mark.parametrize(
    ("magic", "mode", "compress"),
    [
        (b"stealth_pnginfo", "alpha", False),
        (b"stealth_pngcomp", "alpha", True),
        (b"stealth_rgbinfo", "rgb", False),
        (b"stealth_rgbcomp", "rgb", True),
    ],
)
def test_stealth_info_in_alpha_or_rgb(
    tmp_path: Path, magic: bytes, mode: str, compress: bool
) -> None:
    payload = A1111_TEXT.encode()
    if compress:
        payload = gzip.compress(payload)
    im = _embed_stealth(Image.new("RGBA", (64, 48), (10, 200, 30, 255)), magic, payload, mode)
    p = tmp_path / "stealth.png"
    im.save(p)
    g = read_generation(p)
    assert g is not None and g.seed == 1234 and g.source == [f"png:stealth:{magic.decode()}"]
    assert read_generation(p, stealth_check=False) is None


def test_stealth_is_not_read_when_chunks_exist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dreamdepot.ingest.metadata.readers import stealth

    def boom(*a: object) -> None:
        raise AssertionError("pixels decoded although chunks had metadata")

    monkeypatch.setattr(stealth, "read", boom)
    assert read_generation(png(tmp_path / "x.png", {"parameters": A1111_TEXT})) is not None


# --- ComfyUI --------------------------------------------------------------------------------


def _custom_advanced_graph() -> dict[str, object]:
    return {
        "ckpt": {
            "class_type": "CheckpointLoaderSimple",
            "inputs": {"ckpt_name": "base.safetensors"},
        },
        "lora": {
            "class_type": "LoraLoader",
            "inputs": {
                "lora_name": "style.safetensors",
                "strength_model": 0.8,
                "strength_clip": 1.0,
                "model": ["ckpt", 0],
                "clip": ["ckpt", 1],
            },
        },
        "msd": {
            "class_type": "ModelSamplingDiscrete",
            "inputs": {"sampling": "eps", "zsnr": False, "model": ["lora", 0]},
        },
        "txt": {"class_type": "PrimitiveString", "inputs": {"value": "a knight, NaN-proof"}},
        "pos": {
            "class_type": "CLIPTextEncode",
            "inputs": {"text": ["txt", 0], "clip": ["lora", 1]},
        },
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["lora", 1]}},
        "cn": {
            "class_type": "ControlNetApplyAdvanced",
            "inputs": {"positive": ["pos", 0], "negative": ["neg", 0], "strength": 0.5},
        },
        "guider": {
            "class_type": "CFGGuider",
            "inputs": {
                "cfg": 4.5,
                "model": ["msd", 0],
                "positive": ["cn", 0],
                "negative": ["cn", 1],
            },
        },
        "noise": {"class_type": "RandomNoise", "inputs": {"noise_seed": 123456789012345}},
        "select": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "dpmpp_2m"}},
        "sched": {
            "class_type": "BasicScheduler",
            "inputs": {"scheduler": "karras", "steps": 28, "denoise": 1.0, "model": ["msd", 0]},
        },
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 832, "height": 1216}},
        "sampler": {
            "class_type": "SamplerCustomAdvanced",
            "inputs": {
                "noise": ["noise", 0],
                "guider": ["guider", 0],
                "sampler": ["select", 0],
                "sigmas": ["sched", 0],
                "latent_image": ["latent", 0],
            },
        },
        "decode": {
            "class_type": "VAEDecode",
            "inputs": {"samples": ["sampler", 0], "vae": ["ckpt", 2]},
        },
        "save": {
            "class_type": "SaveImage",
            "inputs": {"images": ["decode", 0], "value": float("nan")},
        },
    }


def test_comfyui_sampler_custom_advanced_walk(tmp_path: Path) -> None:
    graph = json.dumps(_custom_advanced_graph())  # writes NaN, as ComfyUI does
    assert "NaN" in graph
    workflow = json.dumps(
        {"nodes": [{"id": i, "widgets_values": ["x" * 1000]} for i in range(150)], "links": []}
    )
    assert len(workflow) > 100_000
    g = read_generation(png(tmp_path / "c.png", {"prompt": graph, "workflow": workflow}))
    assert g is not None and g.generator == "comfyui"
    assert (g.prompt, g.negative_prompt) == ("a knight, NaN-proof", "blurry")
    assert (g.seed, g.steps, g.cfg_scale) == (123456789012345, 28, 4.5)
    assert (g.sampler, g.scheduler, g.model) == ("dpmpp_2m", "karras", "base.safetensors")
    assert [(r.name, r.weight) for r in g.loras] == [("style.safetensors", 0.8)]
    assert (g.width, g.height) == (832, 1216)
    assert g.params["workflow"] == {"bytes": len(workflow)}


def test_comfyui_custom_save_nodes(tmp_path: Path) -> None:
    graph = _custom_advanced_graph()
    text = json.dumps(graph)
    # SaveImagePlus: IFD0 UserComment holding {"prompt": ..., "workflow": ...}
    plus = Image.Exif()
    plus[0x9286] = json.dumps({"prompt": graph, "workflow": {}})
    p1 = tmp_path / "plus.webp"
    webp_exif(p1, plus.tobytes())
    assert read_generation(p1).seed == 123456789012345  # type: ignore[union-attr]
    # Save Image Extended: Make "Prompt: {...}", ImageDescription "Workflow: {...}"
    ext = piexif.dump(
        {
            "0th": {
                piexif.ImageIFD.Make: ("Prompt: " + text).encode(),
                piexif.ImageIFD.ImageDescription: b"Workflow: {}",
            }
        }
    )
    p2 = tmp_path / "ext.jpg"
    image().save(p2, "JPEG", exif=ext)
    assert read_generation(p2).steps == 28  # type: ignore[union-attr]
    # SaveImageWithMetaData: A1111 parameters plus the graph: both kept
    p3 = png(tmp_path / "meta.png", {"parameters": A1111_TEXT, "prompt": text})
    g = read_generation(p3)
    assert g is not None and g.generator == "comfyui" and g.seed == 1234 and g.graph
    assert "png:prompt" in g.source and "png:parameters" in g.source
    # ComfyUI's own WebP: EXIF Model "prompt:{...}", Make "workflow:{...}"
    native = piexif.dump(
        {
            "0th": {
                piexif.ImageIFD.Model: ("prompt:" + text).encode(),
                piexif.ImageIFD.Make: b"workflow:{}",
            }
        }
    )
    p4 = tmp_path / "native.webp"
    webp_exif(p4, native[6:])
    assert read_generation(p4).model == "base.safetensors"  # type: ignore[union-attr]


def test_comfyui_without_a_sampler_still_reports_prompt_and_model(tmp_path: Path) -> None:
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.ckpt"}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "hello", "clip": ["1", 1]}},
    }
    g = read_generation(png(tmp_path / "x.png", {"prompt": json.dumps(graph)}))
    assert g is not None and g.prompt == "hello" and g.model == "m.ckpt"


# --- the rest of the generators --------------------------------------------------------------


def test_invokeai_v4_model_object(tmp_path: Path) -> None:
    meta = {
        "positive_prompt": "castle",
        "negative_prompt": "",
        "seed": 5,
        "steps": 30,
        "cfg_scale": 7.5,
        "scheduler": "dpmpp_2m_k",
        "width": 512,
        "height": 512,
        "model": {
            "key": "k",
            "hash": "blake3:abc",
            "name": "dreamshaper",
            "base": "sd-1",
            "type": "main",
        },
        "loras": [{"model": {"name": "ink", "hash": "blake3:def"}, "weight": 0.5}],
        "app_version": "5.0.0",
    }
    g = read_generation(png(tmp_path / "i.png", {"invokeai_metadata": json.dumps(meta)}))
    assert g is not None and g.generator == "invokeai"
    assert (g.model, g.model_hash, g.sampler, g.generator_version) == (
        "dreamshaper",
        "blake3:abc",
        "dpmpp_2m_k",
        "5.0.0",
    )
    assert g.negative_prompt is None and g.loras[0].name == "ink"


def test_novelai_webp_exif_and_v4_captions(tmp_path: Path) -> None:
    comment = {
        "prompt": "1girl, rain",
        "uc": "lowres",
        "steps": 28,
        "scale": 5.0,
        "seed": 99,
        "sampler": "k_euler_ancestral",
        "noise_schedule": "karras",
        "width": 832,
        "height": 1216,
        "v4_prompt": {
            "caption": {
                "base_caption": "1girl, rain",
                "char_captions": [{"char_caption": "girl, red hair", "centers": []}],
            }
        },
    }
    exif = piexif.dump(
        {
            "0th": {
                piexif.ImageIFD.Software: b"NovelAI",
                piexif.ImageIFD.DocumentName: b"NovelAI generated image",
                piexif.ImageIFD.ImageDescription: b"\x00\x00\x00\x001girl, rain",
            },
            "Exif": {
                piexif.ExifIFD.UserComment: b"ASCII\x00\x00\x00"
                + json.dumps({"Comment": json.dumps(comment)}).encode()
            },
        }
    )
    p = webp_exif(tmp_path / "nai.webp", exif)
    g = read_generation(p)
    assert g is not None and g.generator == "novelai"
    assert (g.prompt, g.negative_prompt, g.seed, g.scheduler) == (
        "1girl, rain",
        "lowres",
        99,
        "karras",
    )
    assert g.params["character_prompts"] == ["girl, red hair"]


def test_fooocus_jpeg_and_forks(tmp_path: Path) -> None:
    data = {
        "prompt": "a goldfish",
        "negative_prompt": "",
        "steps": 30,
        "guidance_scale": 4,
        "sampler": "dpmpp_2m_sde_gpu",
        "scheduler": "karras",
        "seed": "6952411511246973023",
        "resolution": "(1152, 896)",
        "base_model": "juggernautXL",
        "loras": [["lcm.safetensors", 0.5]],
        "version": "Fooocus v2.5.0",
        "full_prompt": ["a goldfish"],
        "metadata_scheme": "fooocus",
    }
    exif = Image.Exif()
    exif[0x9286] = json.dumps(data)
    exif[0x0131] = "Fooocus v2.5.0"
    p = tmp_path / "f.jpg"
    image().save(p, "JPEG", exif=exif.tobytes())
    g = read_generation(p)
    assert g is not None and g.generator == "fooocus" and g.seed == 6952411511246973023
    assert (g.width, g.height) == (1152, 896) and g.loras[0].name == "lcm.safetensors"
    mre = {
        "prompt": "mre",
        "negative_prompt": "",
        "width": 512,
        "height": 512,
        "cfg": 7,
        "seed": 3,
        "sampler": "dpmpp",
        "base_model": "sdxl",
    }
    assert (
        read_generation(png(tmp_path / "m.png", {"Comment": json.dumps(mre)})).generator
        == "fooocus-mre"
    )  # type: ignore[union-attr]


def test_swarmui_old_model_tag_and_le_user_comment(tmp_path: Path) -> None:
    params = {
        "sui_image_params": {
            "prompt": "cat",
            "seed": "8",
            "steps": 20,
            "model": "m",
            "loras": ["a", "b"],
            "loraweights": ["0.5", "1"],
        }
    }
    comment = b"UNICODE\x00" + json.dumps(params).encode("utf-16-le")
    p = jpeg_user_comment(tmp_path / "s.jpg", "x")
    exif = piexif.dump({"Exif": {piexif.ExifIFD.UserComment: comment}})
    image().save(p, "JPEG", exif=exif)
    g = read_generation(p)
    assert g is not None and g.generator == "swarmui" and g.seed == 8
    assert [(r.name, r.weight) for r in g.loras] == [("a", 0.5), ("b", 1.0)]
    old = piexif.dump({"0th": {piexif.ImageIFD.Model: json.dumps(params).encode()}})
    q = tmp_path / "old.jpg"
    image().save(q, "JPEG", exif=old)
    assert read_generation(q).prompt == "cat"  # type: ignore[union-attr]


def test_easy_diffusion_chunks_display_names_and_sidecars(tmp_path: Path) -> None:
    chunks = {
        "prompt": "a boat",
        "negative_prompt": "",
        "seed": "11",
        "num_inference_steps": "25",
        "guidance_scale": "7.5",
        "sampler_name": "euler_a",
        "width": "512",
        "height": "512",
        "use_stable_diffusion_model": "C:\\models\\sd-v1-5.safetensors",
    }
    g = read_generation(png(tmp_path / "e.png", chunks))
    assert g is not None and g.generator == "easydiffusion" and g.model == "sd-v1-5.safetensors"
    display = {
        "Prompt": "a boat",
        "Seed": "12",
        "Steps": "20",
        "Stable Diffusion model": "/m/sd.ckpt",
    }
    assert read_generation(png(tmp_path / "d.png", display)).seed == 12  # type: ignore[union-attr]
    side = png(tmp_path / "side.png")
    side.with_suffix(".txt").write_text(
        "Prompt: from a sidecar\nSeed: 13\nStable Diffusion model: sd-v1-5\n"
    )
    assert read_generation(side).prompt == "from a sidecar"  # type: ignore[union-attr]
    js = png(tmp_path / "js.png")
    js.with_suffix(".json").write_text(
        json.dumps({"prompt": "json side", "seed": 14, "use_stable_diffusion_model": "x"})
    )
    assert read_generation(js).seed == 14  # type: ignore[union-attr]


def test_draw_things_xmp(tmp_path: Path) -> None:
    comment = json.dumps(
        {
            "c": "a lake",
            "uc": "ugly",
            "seed": 21,
            "steps": 8,
            "scale": 5,
            "sampler": "DPM++ 2M AYS",
            "model": "flux_1_schnell_q5p.ckpt",
            "size": "1024x768",
        }
    )
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
        'xmp:CreatorTool="Draw Things"><exif:UserComment><rdf:Alt><rdf:li xml:lang="x-default">'
        + comment.replace('"', "&quot;")
        + "</rdf:li></rdf:Alt></exif:UserComment>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    g = read_generation(png(tmp_path / "dt.png", {"XML:com.adobe.xmp": xmp}))
    assert g is not None and g.generator == "drawthings"
    assert (g.prompt, g.seed, g.width, g.height) == ("a lake", 21, 1024, 768)


def test_midjourney_web_download_and_discord_name(tmp_path: Path) -> None:
    desc = (
        "https://s.mj.run/abc a lighthouse at dawn, cinematic --ar 16:9 --v 6.1 "
        "--stylize 250 --seed 777 --no birds --raw Job ID: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    )
    g = read_generation(png(tmp_path / "mj.png", {"Description": desc, "Author": "someone"}))
    assert g is not None and g.generator == "midjourney"
    assert g.prompt == "a lighthouse at dawn, cinematic"
    assert (g.seed, g.generator_version, g.negative_prompt) == (777, "6.1", "birds")
    assert g.params["ar"] == "16:9" and g.params["stylize"] == "250" and g.params["raw"] is True
    name = (
        "peterkaminski_example_--ar_21_--stylize_80_--v_6_"
        "a7421d2f-1b2c-4d5e-8f90-123456789abc_2.png"
    )
    d = read_generation(png(tmp_path / name))
    assert d is not None and d.prompt == "example" and d.params["grid_index"] == 2
    assert d.params["job_id"] == "a7421d2f-1b2c-4d5e-8f90-123456789abc"


def test_dalle_file_name_and_labs_marker(tmp_path: Path) -> None:
    name = "DALL·E 2023-10-01 12.30.45 - a cat wearing a hat, digital art.png"
    g = read_generation(png(tmp_path / name))
    assert (
        g is not None and g.generator == "openai" and g.prompt == "a cat wearing a hat, digital art"
    )
    labs = piexif.dump(
        {
            "0th": {piexif.ImageIFD.Make: b"x"},
            "Exif": {
                piexif.ExifIFD.MakerNote: b"OpenAI",
                piexif.ExifIFD.UserComment: b"ASCII\x00\x00\x00Made with OpenAI Labs",
            },
        }
    )
    p = tmp_path / "labs.png"
    image().save(p, exif=labs)
    g2 = read_generation(p)
    assert g2 is not None and g2.generator == "openai" and g2.model == "DALL·E 2"


def test_gradio_and_stability_matrix_json(tmp_path: Path) -> None:
    hf = {
        "prompt": "p",
        "negative_prompt": "n",
        "resolution": "832 x 1216",
        "guidance_scale": 5,
        "num_inference_steps": 28,
        "seed": 1,
        "sampler": "Euler a",
        "Model": "animagine",
    }
    g = read_generation(png(tmp_path / "hf.png", {"parameters": json.dumps(hf)}))
    assert g is not None and g.generator == "gradio" and (g.width, g.height) == (832, 1216)
    sm = {"PositivePrompt": "sm prompt", "Seed": 5, "Steps": 9, "ModelName": "x.safetensors"}
    g2 = read_generation(
        png(
            tmp_path / "sm.png",
            {
                "parameters-json": json.dumps(sm),
                "parameters": "sm prompt\nSteps: 9, Seed: 5, Size: 8x8",
            },
        )
    )
    assert g2 is not None and g2.generator == "stability-matrix" and g2.seed == 5


def test_broken_json_metadata_is_a_metadata_error_not_a_crash(tmp_path: Path) -> None:
    from dreamdepot.errors import MetadataError

    p = png(tmp_path / "bad.png", {"prompt": '{"1": {"class_type": "KSampler", "inputs": [}'})
    with pytest.raises(MetadataError):
        read_generation(p)


def test_truncated_raw_png_chunk_stream(tmp_path: Path) -> None:
    from dreamdepot.errors import CorruptImageError
    from dreamdepot.ingest.metadata.containers import read_container_bytes

    data = raw_png([text_chunk("parameters", A1111_TEXT)])
    c = read_container_bytes(data[:-12])
    assert not c.complete and c.texts["parameters"] == A1111_TEXT
    with pytest.raises(CorruptImageError):
        read_container_bytes(data[:20])
    assert chunk(b"IEND", b"") == data[-12:]


def test_jpeg_with_bytes_after_its_end_marker_is_complete(tmp_path: Path) -> None:
    from dreamdepot.ingest.metadata.containers import read_container_bytes

    noisy = Image.effect_noise((256, 256), 60).convert("RGB")
    data = jpeg_user_comment(tmp_path / "x.jpg", A1111_TEXT, im=noisy).read_bytes()
    assert read_container_bytes(data + b"trailing junk").complete
    assert not read_container_bytes(data[: len(data) - 5000]).complete
