"""Probe one file: identity, container, generation metadata. Runs in worker processes, so
it returns a plain, picklable record and never raises for a bad file."""

from __future__ import annotations

import errno
import json
import os
import stat as stat_mod
from pathlib import Path

from dreamdepot.catalog.records import Probe
from dreamdepot.errors import CorruptImageError, MetadataError, UnsupportedImageError
from dreamdepot.ingest.metadata.containers import read_container
from dreamdepot.ingest.metadata.model import Generation, model_name
from dreamdepot.ingest.metadata.registry import generation_from_container
from dreamdepot.media.identity import sampled_hash

INT64_MAX = 2**63 - 1
MAX_RAW_CHARS = 256 * 1024


def probe(root: str, rel_path: str, stealth_check: bool = True) -> Probe:
    p = Probe(rel_path=rel_path)
    path = os.path.join(root, rel_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        p.vanished = True
        return p
    except PermissionError:
        p.error = "permission denied: cannot open the file"
        return p
    except OSError as exc:
        p.error = f"cannot open: {exc.strerror or exc}"
        return p
    try:
        st = os.fstat(fd)
        if not stat_mod.S_ISREG(st.st_mode):
            p.error = "not a regular file"
            return p
        p.size, p.mtime_ns = st.st_size, st.st_mtime_ns
        if st.st_size == 0:
            p.error = "empty file (0 bytes)"
            return p
        with os.fdopen(fd, "rb", buffering=64 * 1024, closefd=False) as f:
            try:
                c = read_container(f, st.st_size)
            except UnsupportedImageError as exc:
                p.error = str(exc)
                return p
            except CorruptImageError as exc:
                p.error = f"corrupt image: {exc}"
                return p
            except (OSError, ValueError, IndexError) as exc:
                p.error = f"corrupt image: {exc}"
                return p
            if not c.complete:
                p.incomplete = True
                p.error = f"truncated {c.format.upper()}: the file ends before its end marker"
                return p
            p.content_hash = sampled_hash(f, st.st_size)
        p.format, p.width, p.height = c.format, c.width, c.height
        p.duration, p.frames, p.fps = c.duration, c.frames, c.fps
        try:
            g = generation_from_container(c, Path(path), stealth_check=stealth_check)
        except MetadataError as exc:
            p.metadata_error = str(exc)
            g = None
        except (RecursionError, MemoryError, ValueError, IndexError, KeyError, TypeError) as exc:
            p.metadata_error = f"metadata reader failed: {type(exc).__name__}: {exc}"
            g = None
        if g is not None:
            _fill(p, g)
        elif c.warnings:
            p.metadata_error = "; ".join(c.warnings)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            p.vanished = True
        else:
            p.error = f"read error: {exc.strerror or exc}"
    finally:
        os.close(fd)
    return p


def _fill(p: Probe, g: Generation) -> None:
    p.prompt = _clean(g.prompt)
    p.negative_prompt = _clean(g.negative_prompt)
    seed = g.seed
    params = dict(g.params)
    if seed is not None and not (-INT64_MAX - 1 <= seed <= INT64_MAX):
        params["seed"] = str(seed)
        seed = None
    if g.passes:
        params["passes"] = [
            {k: v for k, v in vars(x).items() if v not in (None, {}, [])} for x in g.passes
        ]
    if g.embeddings:
        params["embeddings"] = [e.to_dict() for e in g.embeddings]
    raw = g.raw
    if raw is not None and len(raw) > MAX_RAW_CHARS:
        raw = raw[:MAX_RAW_CHARS]
        params["raw_truncated"] = True
    p.fields = {
        "generator": g.generator,
        "generator_version": g.generator_version,
        "model": model_name(g.model),
        "model_raw": g.model,
        "model_hash": g.model_hash,
        "vae": g.vae,
        "sampler": g.sampler,
        "scheduler": g.scheduler,
        "steps": g.steps,
        "cfg_scale": g.cfg_scale,
        "seed": seed,
        "denoise": g.denoise,
        "clip_skip": g.clip_skip,
        "loras": json.dumps([r.to_dict() for r in g.loras], ensure_ascii=False)
        if g.loras
        else None,
        "params": json.dumps(params, ensure_ascii=False, default=str) if params else None,
        "raw_metadata": raw,
        "metadata_source": ",".join(g.source) or None,
    }
    if g.width and not p.width:
        p.width, p.height = g.width, g.height


def _clean(text: str | None) -> str | None:
    """Normalise a prompt for de-duplication: CRLF to LF, each line stripped."""
    if not text:
        return None
    lines = [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    out = "\n".join(lines).strip()
    return out or None


def probe_many(root: str, rel_paths: list[str], stealth_check: bool = True) -> list[Probe]:
    return [probe(root, rel, stealth_check) for rel in rel_paths]
