"""Video files and animations: probe, poster frame, hover preview — through PyAV.

PyAV (``av`` on PyPI) ships its own FFmpeg libraries, so nothing is shelled out and the
same decoders run on every machine. Probing reads the container header only (well under a
millisecond for a typical generation); decoding happens in the background media stage.

- :func:`is_video_head` names MP4/MOV (ISO BMFF ``ftyp``) and WebM/Matroska (EBML) files
  from their first bytes, the way the image formats are sniffed;
- :func:`probe_video` returns size, duration, frame count, frame rate and the container's
  text tags (lower-cased keys: MP4 says ``comment``, Matroska ``COMMENT``);
- :func:`poster` decodes the first frame (what VideoHelperSuite saves as its PNG too);
- :func:`write_preview` encodes a short, muted, small H.264 MP4 from any frame source, so a
  4K generation or a 40 MB GIF plays on hover as a few hundred kilobytes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, ImageSequence

from dreamdepot.errors import CorruptImageError, UnsupportedImageError
from dreamdepot.media.decode import MAX_DECODE_PIXELS, TooLargeError, decode_reduced

VIDEO_FORMATS = frozenset({"mp4", "mov", "webm", "mkv"})
MEDIA_TYPES = {
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
}
# ISO BMFF brands of video files (AVIF/HEIF brands are images and sniffed elsewhere)
_QUICKTIME_BRANDS = frozenset({b"qt  "})
_MP4_BRANDS = frozenset(
    {b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ",
     b"M4VP", b"dash", b"mmp4", b"MSNV", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"f4v "}
)  # fmt: skip
_EBML = b"\x1a\x45\xdf\xa3"

PREVIEW_SIDE = 256  # the grid tile's size: a preview is never shown larger
PREVIEW_SECONDS = 3.0
PREVIEW_MAX_FPS = 12
MAX_TAG_CHARS = 8 * 1024 * 1024


def is_video_head(head: bytes) -> str | None:
    """The video container named by a file's first 32 bytes, or None.

    >>> is_video_head(b"\\x00\\x00\\x00\\x20ftypisom\\x00\\x00\\x02\\x00")
    'mp4'
    >>> is_video_head(b"\\x00\\x00\\x00\\x14ftypqt  \\x00\\x00\\x02\\x00")
    'mov'
    >>> is_video_head(b"\\x1a\\x45\\xdf\\xa3\\x9fB\\x86\\x81\\x01B\\xf7\\x81\\x01B\\xf2webm")
    'webm'
    >>> is_video_head(b"\\x00\\x00\\x00\\x1cftypavif") is None
    True
    """
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _QUICKTIME_BRANDS:
            return "mov"
        if brand in _MP4_BRANDS:
            return "mp4"
        return None
    if head.startswith(_EBML):
        return "webm" if b"webm" in head else "mkv"
    return None


@dataclass
class VideoInfo:
    """What a video container says about itself, without decoding a frame."""

    format: str
    width: int
    height: int
    duration: float | None
    frames: int | None
    fps: float | None
    codec: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # a minimal install: say what is missing, index the rest
        raise UnsupportedImageError(
            "a video file: reading videos needs PyAV (pip install av)"
        ) from exc
    return av


def probe_video(f: BinaryIO, fmt: str) -> VideoInfo:
    """Header facts and text tags of an open video file; CorruptImageError when FFmpeg
    cannot read its structure or it has no video stream."""
    av = _av()
    f.seek(0)
    try:
        with av.open(f, mode="r") as c:
            if not c.streams.video:
                raise CorruptImageError(f"{fmt.upper()}: no video stream")
            stream = c.streams.video[0]
            width, height = int(stream.width or 0), int(stream.height or 0)
            if not width or not height:
                raise CorruptImageError(f"{fmt.upper()}: the video stream has no size")
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            duration = _duration(c, stream)
            frames = int(stream.frames) if stream.frames else None
            if frames is None and duration and fps:
                frames = round(duration * fps)
            info = VideoInfo(
                format=fmt,
                width=width,
                height=height,
                duration=round(duration, 3) if duration is not None else None,
                frames=frames,
                fps=round(fps, 3) if fps else None,
                codec=stream.codec_context.name if stream.codec_context else None,
            )
            for source in (stream.metadata, c.metadata):
                for key, value in source.items():
                    _put_tag(info, key, value)
            return info
    except (UnsupportedImageError, CorruptImageError):
        raise
    except (av.error.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise CorruptImageError(f"{fmt.upper()}: {exc}") from exc


def _duration(container: Any, stream: Any) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _put_tag(info: VideoInfo, key: str, value: str) -> None:
    if len(value) > MAX_TAG_CHARS:
        info.warnings.append(f"{info.format.upper()}: tag {key!r} over the size cap; skipped")
        return
    info.tags.setdefault(key.lower(), value)


# --- frames ------------------------------------------------------------------------------


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_DECODE_PIXELS:
        raise TooLargeError(
            f"{width}×{height} is {width * height / 1e6:.0f} M pixels per frame, over the "
            f"decode budget of {MAX_DECODE_PIXELS / 1e6:.0f} M"
        )


def _video_frames(path: str, seconds: float | None) -> Iterator[tuple[Image.Image, float]]:
    """Decoded frames (RGB) with their time in seconds, up to ``seconds`` if given."""
    av = _av()
    with av.open(path, mode="r") as c:
        stream = c.streams.video[0]
        _check_pixels(int(stream.width or 0), int(stream.height or 0))
        stream.thread_type = "AUTO"
        try:
            for frame in c.decode(stream):
                t = float(frame.time) if frame.time is not None else 0.0
                if seconds is not None and t >= seconds:
                    break
                yield frame.to_image(), t
        except av.error.FFmpegError:
            return  # a damaged tail: keep the frames decoded so far


def _animation_frames(path: str, seconds: float | None) -> Iterator[tuple[Image.Image, float]]:
    """Frames of an animated GIF or WebP (Pillow), with their start times."""
    with Image.open(path) as im:
        _check_pixels(im.width, im.height)
        t = 0.0
        for frame in ImageSequence.Iterator(im):
            if seconds is not None and t >= seconds:
                break
            yield frame.convert("RGB"), t
            t += max(int(frame.info.get("duration") or 100), 10) / 1000


def frames(
    path: str, fmt: str, seconds: float | None = None
) -> Iterator[tuple[Image.Image, float]]:
    """Frames of a video or an animation, whichever ``fmt`` names."""
    if fmt in VIDEO_FORMATS:
        return _video_frames(path, seconds)
    return _animation_frames(path, seconds)


def poster(path: str, fmt: str) -> Image.Image:
    """The first frame; OSError/ValueError when there is none to decode."""
    av = _av()
    try:
        for image, _ in frames(path, fmt, seconds=None):
            return image
    except av.error.FFmpegError as exc:
        raise ValueError(f"cannot decode a frame: {exc}") from exc
    raise ValueError("no frame could be decoded")


def decode_still(source: str | Path, side: int) -> Image.Image:
    """The image — or a video's first frame — reduced towards ``side`` (never enlarged): what
    thumbnails and taggers look at. Raises what :func:`decode_reduced` raises."""
    with open(source, "rb") as f:
        fmt = is_video_head(f.read(32))
    if fmt is None:
        return decode_reduced(source, side)
    try:
        frame = poster(os.fspath(source), fmt)
    except UnsupportedImageError as exc:  # PyAV missing: callers expect a decode error
        raise ValueError(str(exc)) from exc
    factor = max(1, min(frame.width, frame.height) // max(1, side))
    return frame.reduce(factor) if factor > 1 else frame


def write_preview(path: str, fmt: str, out_path: str, side: int = PREVIEW_SIDE) -> None:
    """A short muted H.264 MP4 of the first seconds, the shorter side ``side`` px (even
    numbers, as H.264's 4:2:0 needs), written atomically to ``out_path``."""
    av = _av()
    tmp = f"{out_path}.{os.getpid()}.part"
    out = av.open(tmp, mode="w", format="mp4", options={"movflags": "+faststart"})
    written = 0
    try:
        stream = None
        step = 1.0 / PREVIEW_MAX_FPS
        next_t = 0.0
        for image, t in frames(path, fmt, seconds=PREVIEW_SECONDS):
            if t + 1e-6 < next_t:
                continue  # keep at most PREVIEW_MAX_FPS frames a second
            next_t = t + step
            if stream is None:
                w, h = _preview_size(image.width, image.height, side)
                stream = out.add_stream("libx264", rate=Fraction(PREVIEW_MAX_FPS))
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.options = {"crf": "28", "preset": "veryfast"}
                stream.time_base = Fraction(1, 1000)
            frame = av.VideoFrame.from_image(image.resize((stream.width, stream.height)))
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
            written += 1
        if stream is None:
            raise ValueError("no frame could be decoded")
        for packet in stream.encode(None):
            out.mux(packet)
    except BaseException:
        with contextlib.suppress(Exception):
            out.close()
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    out.close()
    os.replace(tmp, out_path)


def _preview_size(width: int, height: int, side: int) -> tuple[int, int]:
    """Scale so the shorter side is ``side`` (never enlarged), both sides even.

    >>> _preview_size(1920, 1080, 256), _preview_size(64, 48, 256), _preview_size(513, 300, 256)
    ((454, 256), (64, 48), (438, 256))
    """
    scale = min(1.0, side / min(width, height))
    w, h = max(2, round(width * scale)), max(2, round(height * scale))
    return w - w % 2, h - h % 2
