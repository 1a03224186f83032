"""Build image files the way each generator writes them, independently of our writers
(Pillow's PngInfo and piexif, as the generators themselves use), for the tests."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import piexif
import piexif.helper
from PIL import Image, PngImagePlugin

A1111_TEXT = (
    "a red fox in the snow, <lora:foxy:0.7>\n"
    "Negative prompt: lowres, blurry\n"
    "Steps: 25, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 1234, "
    "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, "
    'Lora hashes: "foxy: abcdef123456", Version: v1.10.1'
)


def image(
    size: tuple[int, int] = (16, 16), colour: tuple[int, ...] = (120, 80, 200), mode: str = "RGB"
) -> Image.Image:
    return Image.new(mode, size, colour)


def png(
    path: Path,
    texts: dict[str, str] | None = None,
    im: Image.Image | None = None,
    ztxt: dict[str, str] | None = None,
) -> Path:
    info = PngImagePlugin.PngInfo()
    for k, v in (texts or {}).items():
        info.add_text(k, v)
    for k, v in (ztxt or {}).items():
        info.add_text(k, v, zip=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    (im or image()).save(path, "PNG", pnginfo=info)
    return path


def jpeg_user_comment(
    path: Path, text: str, encoding: str = "unicode", im: Image.Image | None = None
) -> Path:
    exif = piexif.dump(
        {
            "Exif": {
                piexif.ExifIFD.UserComment: piexif.helper.UserComment.dump(text, encoding=encoding)
            }
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    (im or image()).save(path, "JPEG", exif=exif)
    return path


def webp_exif(
    path: Path, exif: bytes, im: Image.Image | None = None, lossless: bool = False
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (im or image()).save(path, "WEBP", exif=exif, lossless=lossless)
    return path


def chunk(ctype: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + ctype
        + data
        + struct.pack(">I", zlib.crc32(ctype + data) & 0xFFFFFFFF)
    )


def raw_png(
    texts_before: list[tuple[bytes, bytes]] = (),
    texts_after: list[tuple[bytes, bytes]] = (),
    width: int = 1,
    height: int = 1,
    end: bool = True,
) -> bytes:
    """A grey PNG assembled chunk by chunk (so tests control exactly where chunks sit)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for ctype, data in texts_before:
        out += chunk(ctype, data)
    out += chunk(b"IDAT", zlib.compress(raw))
    for ctype, data in texts_after:
        out += chunk(ctype, data)
    if end:
        out += chunk(b"IEND", b"")
    return out


def text_chunk(key: str, value: str) -> tuple[bytes, bytes]:
    return b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1")


def png_bytes(texts: dict[str, str], size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    for k, v in texts.items():
        info.add_text(k, v)
    image(size).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def tiny_clip(folder: Path) -> Path:
    """A tiny random CLIP (model, tokenizer from a byte-level vocabulary, image processor)."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], pad_token="<|endoftext|>")
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "max_position_embeddings": 77,
            "projection_dim": 16,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 16,
        },
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(folder)
    return folder


# --- videos and animations, written as the tools write them (PyAV, Pillow) ---------------

COMFY_GRAPH = {
    "4": {"class_type": "CheckpointLoaderSimple",
          "inputs": {"ckpt_name": "dreamshaper_8.safetensors"}},
    "6": {"class_type": "CLIPTextEncode",
          "inputs": {"text": "a red fox running in snow", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    "5": {"class_type": "EmptyLatentImage",
          "inputs": {"width": 512, "height": 512, "batch_size": 16}},
    "3": {"class_type": "KSampler", "inputs": {
        "seed": 5, "steps": 20, "cfg": 7.5, "sampler_name": "euler", "scheduler": "normal",
        "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
        "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "VHS_VideoCombine", "inputs": {
        "images": ["8", 0], "frame_rate": 8, "format": "video/h264-mp4"}},
}  # fmt: skip
COMFY_WORKFLOW = {"last_node_id": 9, "nodes": [{"id": 9, "type": "VHS_VideoCombine"}], "links": []}
ANIMATEDIFF_TEXT = (
    "a cat on a sofa\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, "
    'Seed: 1234, Size: 512x512, Model: dreamshaper_8, AnimateDiff: "enable: True, model: '
    'mm_sd15_v3.safetensors, video_length: 16, fps: 8", Version: v1.9.4'
)


def video(
    path: Path,
    tags: dict[str, str] | None = None,
    frames: int = 16,
    fps: int = 8,
    size: tuple[int, int] = (64, 48),
    codec: str = "libx264",
    options: dict[str, str] | None = None,
) -> Path:
    """A real H.264 MP4/MOV or VP9 WebM with container tags, written through PyAV (what
    ComfyUI's SaveVideo and AnimateDiff for A1111 use; VideoHelperSuite's FFmpeg writes the
    same tags)."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    out = av.open(str(path), "w", options=options or {})
    for key, value in (tags or {}).items():
        out.metadata[key] = value
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    for i in range(frames):
        pixels = np.zeros((size[1], size[0], 3), np.uint8)
        pixels[:, : max(1, size[0] * (i + 1) // frames)] = (200, 90, 40)  # a bar that grows
        for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    return path


def vhs_video(path: Path) -> Path:
    """VideoHelperSuite's Video Combine: one JSON ``comment`` tag holding the prompt (as JSON
    text) and the workflow, and the first frame as a PNG with both chunks beside it."""
    comment = json.dumps({"prompt": json.dumps(COMFY_GRAPH), "workflow": COMFY_WORKFLOW})
    return video(path, {"comment": comment})


def animation(
    path: Path, fmt: str, frames: int = 6, delay_ms: int = 100, comment: str = ""
) -> Path:
    """An animated GIF or WebP as Pillow writes it (VideoHelperSuite's image/gif, image/webp)."""
    pictures = [Image.new("RGB", (32, 24), (40 * i, 90, 200 - 30 * i)) for i in range(frames)]
    path.parent.mkdir(parents=True, exist_ok=True)
    extra: dict[str, object] = {"comment": comment} if comment and fmt == "GIF" else {}
    pictures[0].save(path, fmt, save_all=True, append_images=pictures[1:], duration=delay_ms,
                     loop=0, **extra)  # fmt: skip
    return path
