"""Video benchmark: `python bench/video.py` prints a table (see docs/performance.md).

The corpus (bench/out/videos, reused when present) is 2,000 real video files as the tools
write them: 512×512 H.264 MP4 and VP9 WebM, 2–6 s at 8–16 fps (1.8 MB on average). Forty base
clips are encoded once; each file is a stream copy of one of them with its own metadata
(a different seed and prompt, so 2,000 distinct images): 40% VideoHelperSuite (one JSON
``comment`` with the prompt graph and a ~20 KB workflow), 30% ComfyUI SaveVideo (``prompt``
and ``workflow`` tags), 20% AnimateDiff for A1111 (infotext ``Comment``), 10% WebM (VHS).

Rows: the first scan (metadata only: probe, identity, generation, catalog rows) in process
and as a whole `dreamdepot add` process; then the background media stage (poster frame →
AVIF thumbnail and placeholder, plus the 3 s hover clip) on 100 of them.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_table
from dreamdepot.library import Library

OUT = Path(__file__).resolve().parent / "out"
N_VIDEOS = 2_000
N_BASES = 40


def _graph(i: int) -> dict[str, object]:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode",
              "inputs": {"text": f"a koi pond at dusk, ripples, take {i}", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage",
              "inputs": {"width": 512, "height": 512, "batch_size": 16}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": i, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "VHS_VideoCombine", "inputs": {"images": ["8", 0], "frame_rate": 8}},
    }  # fmt: skip


WORKFLOW = {"nodes": [{"id": n, "type": "Node", "widgets_values": ["x" * 180]} for n in range(100)]}


def _base(path: Path, k: int) -> None:
    import av
    import numpy as np

    webm = path.suffix == ".webm"
    fps, frames = (8, 16, 12)[k % 3], 16 + 8 * (k % 5)
    out = av.open(str(path), "w")
    stream = out.add_stream("libvpx-vp9" if webm else "libx264", rate=fps)
    stream.width = stream.height = 512
    stream.pix_fmt = "yuv420p"
    stream.options = {"deadline": "realtime", "cpu-used": "8"} if webm else {"preset": "ultrafast"}
    rng = np.random.default_rng(k)
    x = np.mgrid[0:512, 0:512][1]
    for f in range(frames):
        phase = f / frames * 6.28
        pixels = np.stack(
            [(128 + 100 * np.sin(x / 40 + phase + c)).astype(np.uint8) for c in range(3)], -1
        )
        pixels = np.clip(pixels.astype(int) + rng.integers(-20, 20, pixels.shape), 0, 255)
        frame = av.VideoFrame.from_ndarray(pixels.astype(np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()


def _copy_with_tags(src: Path, dst: Path, tags: dict[str, str], options: dict[str, str]) -> None:
    """A stream copy (no re-encode) with the container tags a tool would write."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", options=options) as out:
        for key, value in tags.items():
            out.metadata[key] = value
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)


def video_corpus(root: Path) -> Path:
    if (root / ".complete").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    bases = root.parent / "video-bases"
    bases.mkdir(parents=True, exist_ok=True)
    for k in range(N_BASES):
        for ext in (".mp4", ".webm"):
            if not (bases / f"{k}{ext}").exists():
                _base(bases / f"{k}{ext}", k)
    for i in range(N_VIDEOS):
        kind = i % 10
        folder = root / f"day{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        graph = json.dumps(_graph(i))
        if kind < 4 or kind == 9:  # VideoHelperSuite: one JSON comment
            tags = {"comment": json.dumps({"prompt": graph, "workflow": WORKFLOW})}
            ext, options = (".webm" if kind == 9 else ".mp4"), {}
        elif kind < 7:  # ComfyUI SaveVideo
            tags = {"prompt": graph, "workflow": json.dumps(WORKFLOW)}
            ext, options = ".mp4", {"movflags": "use_metadata_tags"}
        else:  # AnimateDiff for A1111
            tags = {"Comment": (
                f"a koi pond at dusk, take {i}\nNegative prompt: blurry\nSteps: 20, Sampler: "
                f"Euler a, CFG scale: 7, Seed: {i}, Size: 512x512, Model: sd15, AnimateDiff: "
                '"enable: True, model: mm_sd15_v3.safetensors, video_length: 16, fps: 8"'
            )}  # fmt: skip
            ext, options = ".mp4", {}
        _copy_with_tags(bases / f"{i % N_BASES}{ext}", folder / f"AnimateDiff_{i:05d}{ext}",
                        tags, options)  # fmt: skip
    (root / ".complete").touch()
    return root


def first_scans(corpus: Path, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        lib_path = OUT / "libraries" / "videos"
        shutil.rmtree(lib_path, ignore_errors=True)
        with Library.open(lib_path) as lib:
            root = lib.add_root(corpus)
            t = time.perf_counter()
            stats = lib.indexer().scan([root])
            times.append(time.perf_counter() - t)
            assert stats.errors == 0 and stats.new_images == N_VIDEOS, stats
            with_prompt = lib.conn.execute(
                "SELECT count(*) FROM images WHERE prompt_id IS NOT NULL AND duration > 0"
            ).fetchone()[0]
            assert with_prompt == N_VIDEOS, f"only {with_prompt} videos read fully"
    return times


def whole_process(corpus: Path, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        lib_path = OUT / "libraries" / "videos-cli"
        shutil.rmtree(lib_path, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "dreamdepot.cli", "--library", str(lib_path), "add",
             "--no-watch", str(corpus)], check=True, capture_output=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
        )  # fmt: skip
        times.append(time.perf_counter() - t)
    return times


def media_stage(corpus: Path, n: int = 100) -> tuple[float, int, int]:
    """Seconds for posters, thumbnails and clips of ``n`` videos (worker processes as
    configured), and the clips' median and largest size in bytes."""
    lib_path = OUT / "libraries" / "videos-media"
    shutil.rmtree(lib_path, ignore_errors=True)
    sample = OUT / "video-sample"
    shutil.rmtree(sample, ignore_errors=True)
    sample.mkdir(parents=True)
    for path in sorted(corpus.rglob("AnimateDiff_*"))[:n]:
        os.link(path, sample / path.name)
    with Library.open(lib_path) as lib:
        lib.indexer().scan([lib.add_root(sample)])
        t = time.perf_counter()
        done = lib.make_thumbnails()
        seconds = time.perf_counter() - t
        assert done == n
        clips = [p.stat().st_size for p in lib.thumbs_dir.rglob("*-preview.mp4")]
        assert len(clips) == n, f"{len(clips)} clips for {n} videos"
    return seconds, int(statistics.median(clips)), max(clips)


def main() -> None:
    repeats = 3
    t = time.perf_counter()
    corpus = video_corpus(OUT / "videos")
    print(f"video corpus ready ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
    files = sorted(p for p in corpus.rglob("*") if p.suffix in (".mp4", ".webm"))
    sizes = [p.stat().st_size for p in files]
    scans = first_scans(corpus, repeats)
    whole = whole_process(corpus, repeats)
    media_s, clip_median, clip_max = media_stage(corpus)
    n = len(files)
    rows = [
        (f"first scan, {n:,} videos ({sum(sizes) / 1e6:.0f} MB), metadata only, median of "
         f"{repeats}", f"{statistics.median(scans):.2f} s",
         f"{n / statistics.median(scans):,.0f} files/s (target >= 200)"),
        (f"whole `dreamdepot add` process, same corpus, median of {repeats}",
         f"{statistics.median(whole):.2f} s", f"{n / statistics.median(whole):,.0f} files/s"),
        ("media stage: poster -> AVIF thumbnail + placeholder + 3 s hover clip, 100 videos",
         f"{media_s:.2f} s", f"{100 / media_s:.1f} videos/s (background)"),
        ("hover clip size (256 px, <= 12 fps, H.264), median / max",
         f"{clip_median / 1e3:.0f} / {clip_max / 1e3:.0f} KB", ""),
    ]  # fmt: skip
    print_table(("measure", "value", "note"), rows)


if __name__ == "__main__":
    main()
