"""The auto-tagging stage: which images each tagger still owes, running them (pixels decoded
once per image, in worker processes), and writing their proposals.

Rules the writer keeps:
- an auto tag never replaces a user's tag (the user's row stays as it is);
- a tag the user rejected on an image never comes back from any re-run;
- a tagger whose version changed runs again on every image, replacing its own old tags.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from dreamdepot.catalog.engine import same_name
from dreamdepot.catalog.images import compile_query
from dreamdepot.catalog.paths import from_db
from dreamdepot.catalog.tags import tag_id
from dreamdepot.config import Settings
from dreamdepot.media.video import decode_still
from dreamdepot.tagging.base import Proposal, Subject, Tagger, TaggerUnavailable
from dreamdepot.workers import map_chunks

PIXEL_SIDE = 768
BATCH = 16


def build_taggers(
    settings: Settings, library_dir: Path, names: list[str] | None = None
) -> tuple[list[Tagger], list[str]]:
    """The enabled taggers, and one clear message per tagger that cannot run here."""
    from dreamdepot.tagging.clip import ClipTagger
    from dreamdepot.tagging.colour import ColourTagger
    from dreamdepot.tagging.faces import FaceTagger
    from dreamdepot.tagging.prompt_terms import PromptTermsTagger, load_synonyms
    from dreamdepot.tagging.wd14 import Wd14Tagger

    wanted = names or settings.autotag
    taggers: list[Tagger] = []
    problems: list[str] = []
    for name in wanted:
        try:
            if name == "prompt":
                syn = Path(settings.tag_synonyms or library_dir / "tag-synonyms.txt")
                own = library_dir / "boilerplate.txt"
                taggers.append(
                    PromptTermsTagger(load_synonyms(syn), str(own) if own.is_file() else None)
                )
            elif name == "colour":
                taggers.append(ColourTagger())
            elif name == "faces":
                tagger = FaceTagger(settings.faces_min_confidence)
                tagger._load()  # fail now, with the message, rather than per image
                taggers.append(tagger)
            elif name == "clip":
                taggers.append(ClipTagger.from_settings(settings, library_dir))
            elif name == "wd14":
                taggers.append(Wd14Tagger.from_settings(settings, library_dir))
            elif name == "nsfw":
                from dreamdepot.tagging.nsfw import NsfwTagger

                taggers.append(NsfwTagger())
            else:
                problems.append(
                    f"unknown tagger {name!r}; known: prompt, colour, faces, clip, wd14, nsfw"
                )
        except TaggerUnavailable as exc:
            problems.append(f"{name}: {exc}")
    return taggers, problems


@dataclass
class AutotagResult:
    images: int = 0
    tags_added: int = 0
    errors: int = 0
    per_tagger: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    unavailable: list[str] = field(default_factory=list)


def _pending(
    conn: sqlite3.Connection, taggers: list[Tagger], where: str, params: list[Any], force: bool
) -> dict[int, list[str]]:
    """image id -> names of the taggers that still owe it a run."""
    owed: dict[int, list[str]] = {}
    for t in taggers:
        done = (
            ""
            if force
            else (
                "AND NOT EXISTS (SELECT 1 FROM tagger_runs r WHERE r.tagger = ? AND "
                "r.image_id = images.id AND r.version = ?)"
            )
        )
        args = [*params] + ([] if force else [t.name, t.version])
        for (image_id,) in conn.execute(
            f"SELECT images.id FROM images WHERE ({where}) {done} ORDER BY images.id", args
        ):
            owed.setdefault(image_id, []).append(t.name)
    return owed


def _subject(conn: sqlite3.Connection, image_id: int) -> tuple[Subject, str | None]:
    row = conn.execute(
        "SELECT i.width, i.height, i.model, i.loras, i.params, p.text FROM images i "
        "LEFT JOIN prompts p ON p.id = i.prompt_id WHERE i.id = ?",
        (image_id,),
    ).fetchone()
    file = conn.execute(
        "SELECT r.path, f.rel_path FROM files f JOIN roots r ON r.id = f.root_id "
        "WHERE f.image_id = ? AND f.state = 'present' ORDER BY f.id LIMIT 1",
        (image_id,),
    ).fetchone()
    subject = Subject(
        image_id,
        row[0],
        row[1],
        row[5],
        row[2],
        json.loads(row[3]) if row[3] else [],
        json.loads(row[4]) if row[4] else {},
    )
    path = os.path.join(file[0], from_db(file[1])) if file else None
    return subject, path


Outcome = tuple[int, dict[str, list[Proposal]], dict[str, str], dict[str, str]]


def _run(
    items: list[tuple[Subject, str | None, list[str]]], taggers: dict[str, Tagger]
) -> list[Outcome]:
    out = []
    for subject, path, names in items:
        proposals: dict[str, list[Proposal]] = {}
        errors: dict[str, str] = {}
        if path and any(taggers[n].needs_pixels for n in names):
            try:
                im = decode_still(path, PIXEL_SIDE)
                im.thumbnail((PIXEL_SIDE, PIXEL_SIDE))
                subject.pixels = im.convert("RGB")
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                for n in names:
                    if taggers[n].needs_pixels:
                        errors[n] = f"cannot decode: {exc}"
        for n in names:
            if n in errors:
                continue
            t = taggers[n]
            if t.needs_pixels and subject.pixels is None:
                errors[n] = "no readable file"
                continue
            try:
                proposals[n] = t.tag(subject)
            except TaggerUnavailable as exc:
                errors[n] = str(exc)
            except Exception as exc:  # one image must not stop a tagger on a library
                errors[n] = f"{type(exc).__name__}: {exc}"
        subject.pixels = None
        out.append((subject.image_id, proposals, errors, dict(subject.notes)))
    return out


# Taggers hold models and locks that do not pickle: forked workers inherit them from here.
_FORKED_TAGGERS: dict[str, Tagger] = {}


def _run_in_worker(items: list[tuple[Subject, str | None, list[str]]]) -> list[Outcome]:
    return _run(items, _FORKED_TAGGERS)


def write_proposals(
    conn: sqlite3.Connection,
    taggers: dict[str, Tagger],
    image_id: int,
    proposals: dict[str, list[Proposal]],
    errors: dict[str, str],
    notes: dict[str, str] | None = None,
) -> int:
    """Inside the caller's transaction: replace this image's auto tags from these taggers."""
    added = 0
    now = time.time()
    rejected = {
        r[0]
        for r in conn.execute("SELECT tag_id FROM rejected_tags WHERE image_id = ?", (image_id,))
    }
    for name, props in proposals.items():
        conn.execute(
            "DELETE FROM image_tags WHERE image_id = ? AND source = 'auto' AND tagger = ?",
            (image_id, name),
        )
        for p in props:
            tid = tag_id(conn, p.tag, kind="auto")
            if tid in rejected:
                continue
            added += conn.execute(
                "INSERT INTO image_tags(tag_id, image_id, source, confidence, "
                "created_at, tagger) VALUES (?, ?, 'auto', ?, ?, ?) ON CONFLICT DO NOTHING",
                (tid, image_id, p.confidence, now, name),
            ).rowcount
    for name in list(proposals) + list(errors):
        conn.execute(
            "INSERT INTO tagger_runs(tagger, image_id, version, at, error, note) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(tagger, image_id) DO UPDATE SET "
            "version = excluded.version, at = excluded.at, error = excluded.error, "
            "note = excluded.note",
            (name, image_id, taggers[name].version, now, errors.get(name), (notes or {}).get(name)),
        )
    return added


def autotag(
    conn: sqlite3.Connection,
    taggers: list[Tagger],
    query: str = "",
    force: bool = False,
    workers: int | None = None,
    progress: Any = None,
) -> AutotagResult:
    """Run taggers over the images matching ``query`` that still need them."""
    started = time.perf_counter()
    result = AutotagResult()
    by_name = {t.name: t for t in taggers}
    prompt_tagger = by_name.get("prompt")
    if prompt_tagger is not None and hasattr(prompt_tagger, "common"):
        from dreamdepot.tagging.prompt_terms import common_terms

        prompt_tagger.common = common_terms(conn)  # measured on the whole library
    q = compile_query(conn, query)
    owed = _pending(conn, taggers, q.where, q.params, force)
    if not owed:
        return result
    if progress is not None:
        progress.begin("Auto-tagging", len(owed))
    items = [(*_subject(conn, image_id), names) for image_id, names in sorted(owed.items())]
    chunks = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    needs_pixels = any(t.needs_pixels for t in taggers)

    def write(batch: list[Outcome]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for image_id, proposals, errors, notes in batch:
                result.tags_added += write_proposals(
                    conn, by_name, image_id, proposals, errors, notes
                )
                result.errors += len(errors)
                for n in proposals:
                    result.per_tagger[n] = result.per_tagger.get(n, 0) + 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        result.images += len(batch)
        if progress is not None:
            progress.advance(len(batch))

    if workers <= 1 or not needs_pixels or len(items) < 2 * BATCH:
        for chunk in chunks:
            write(_run(chunk, by_name))
    else:
        _FORKED_TAGGERS.clear()
        _FORKED_TAGGERS.update(by_name)
        for batch in map_chunks(_run_in_worker, chunks, workers, in_process=False):
            write(batch)
    result.seconds = time.perf_counter() - started
    return result


def review(conn: sqlite3.Connection, tag: str, image_ids: list[int], action: str) -> int:
    """Accept (make it the user's) or reject (remove, and never propose again) an auto tag."""
    row = conn.execute(
        f"SELECT id FROM tags WHERE {same_name(conn)}", (" ".join(tag.split()),)
    ).fetchone()
    if row is None:
        return 0
    tid = row[0]
    n = 0
    now = time.time()
    for image_id in image_ids:
        if action == "accept":
            n += conn.execute(
                "UPDATE image_tags SET source = 'user', tagger = NULL WHERE "
                "tag_id = ? AND image_id = ? AND source = 'auto'",
                (tid, image_id),
            ).rowcount
        else:
            n += conn.execute(
                "DELETE FROM image_tags WHERE tag_id = ? AND image_id = ? AND source = 'auto'",
                (tid, image_id),
            ).rowcount
            conn.execute(
                "INSERT INTO rejected_tags(image_id, tag_id, at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (image_id, tid, now),
            )
    return n
