"""The dream cache: answer a generation request from the library when a past generation
asked for the same picture.

``lookup`` embeds the request's prompt, takes the nearest past prompts among those the
request's scope allows (service.neighbours_in_scope), and accepts the best
one only if (1) its cosine similarity reaches the threshold, (2) the alignment of the two
prompts finds no contrasting difference (``intent.same_intent``: another colour, count,
thing, relation, medium… ), and (3) it has images in scope that match what must match: the
model, the size or aspect, the negative prompt, and any parameter the caller holds fixed.
Every decision is logged in ``cache_events`` with its reason. ``semantic.dream`` is the one
policy built on it (what to do on a miss) for the CLI, the API and the web UI.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

from dreamdepot.catalog import images as catalog_images
from dreamdepot.catalog.engine import library_dir
from dreamdepot.semantic import service
from dreamdepot.semantic.embedders import MAX_TOKENS, Embedder
from dreamdepot.semantic.intent import IntentCheck, same_intent
from dreamdepot.semantic.terms import content_text
from dreamdepot.semantic.wordsim import word_vectors

# The candidate gate. On the development half of bench/data/cache_eval_v2.txt the decision's
# precision and recall are flat from 0.50 to 0.85 (docs/dream-cache.md), so the cosine is kept
# high enough to veto what the alignment cannot see.
DEFAULT_THRESHOLD = 0.80
TOP_K = 20
MAX_PROMPT_CHARS = 4000
ASSUMED_GENERATION_SECONDS = 10.0
HOLDABLE = ("sampler", "scheduler", "steps", "cfg_scale", "seed", "generator", "vae")


@dataclass
class DreamRequest:
    prompt: str
    negative_prompt: str | None = None
    model: str | None = None
    width: int | None = None
    height: int | None = None
    match_size: str = "aspect"  # "aspect", "exact" or "any"
    hold: dict[str, Any] = field(default_factory=dict)
    threshold: float = DEFAULT_THRESHOLD
    limit: int = 8
    scope: str | None = None  # a query (docs/query.md): only images it matches may answer
    # SQL over ``images`` the answer must also satisfy: on a shared instance, the images the
    # requester may see (their own and shared ones; catalog/visibility.py)
    restrict: tuple[str, list[Any]] | None = None
    user_id: int | None = None  # who asked (a shared instance's per-user statistics)


@dataclass
class Decision:
    hit: bool
    reason: str
    similarity: float | None = None
    matched_prompt: str | None = None
    matched_prompt_id: int | None = None
    images: list[dict[str, Any]] = field(default_factory=list)
    seconds_saved: float | None = None
    truncated: bool = False
    lookup_ms: float = 0.0
    # the first contrasting difference with the nearest candidate, when that decided a miss
    contrast: str | None = None
    difference: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _model_key(name: str | None) -> str:
    """'models/sd_xl_base_1.0.safetensors' -> 'sd_xl_base_1.0'."""
    if not name:
        return ""
    stem = PurePath(name.replace("\\", "/")).name
    for ext in (".safetensors", ".ckpt", ".pt", ".bin", ".gguf"):
        stem = stem.removesuffix(ext)
    return stem.lower()


def _generation_seconds(params: str | None) -> float | None:
    if not params:
        return None
    try:
        data = json.loads(params)
    except ValueError:
        return None
    for key in ("generation_time", "extra"):
        value = data.get(key)
        if isinstance(value, dict):
            value = value.get("generation_time")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            head = value.split()[0] if value.split() else ""
            try:
                return float(head)
            except ValueError:
                continue
    return None


class DreamCache:
    def __init__(self, conn: sqlite3.Connection, embedder: Embedder | None = None) -> None:
        self.conn = conn
        self.embedder = embedder or service.library_embedder(conn)
        own = library_dir(conn) / "boilerplate.txt"
        self.boilerplate = str(own) if own.is_file() else None

    def lookup(self, req: DreamRequest, log: bool = True) -> Decision:
        started = time.perf_counter()
        prompt = req.prompt.strip()
        if not prompt:
            decision = Decision(False, "empty prompt: nothing to look up")
            return self._finish(req, decision, started, log)
        truncated = len(prompt) > MAX_PROMPT_CHARS
        scope = self._scope(req.scope, req.restrict)
        if scope is not None and not self._any_in(scope):
            decision = Decision(False, "no image in the lookup's scope")
            return self._finish(req, decision, started, log)
        vector = self.embedder.embed_texts([prompt[:MAX_PROMPT_CHARS]])[0]
        tokens_truncated = getattr(self.embedder, "last_truncated", 0)  # this prompt's own
        if scope is None:
            found = service.neighbours(
                self.conn, prompt, TOP_K, embedder=self.embedder, vector=vector
            )
        else:  # the nearest in scope, down to a little below the gate (for the reason)
            found = service.neighbours_in_scope(
                self.conn, self.embedder, vector, TOP_K, *scope, min_score=req.threshold - 0.1
            )
        words = word_vectors(self.embedder)
        checked: dict[str, IntentCheck] = {}  # near-duplicates share their content text
        best: Decision | None = None
        for prompt_id, score in found:
            row = self.conn.execute(
                "SELECT text FROM prompts WHERE id = ?", (prompt_id,)
            ).fetchone()
            if row is None:
                continue
            if score < req.threshold:
                best = best or Decision(
                    False,
                    f"nearest prompt is below the threshold ({score:.3f} < {req.threshold:.2f})",
                    score,
                    row[0],
                    prompt_id,
                )
                break
            key = content_text(row[0])
            check = checked.get(key) or same_intent(prompt, row[0], words, self.boilerplate)
            checked[key] = check
            if not check.same:
                best = best or Decision(
                    False,
                    f"similar prompt asks for something else: {check.reason}",
                    score,
                    row[0],
                    prompt_id,
                    contrast=check.kind,
                    difference=list(check.differing),
                )
                continue
            images, why_not = self._matching_images(req, prompt_id, scope)
            if not images:
                best = best or Decision(False, why_not, score, row[0], prompt_id)
                continue
            saved = [s for s in (_generation_seconds(i.pop("_params")) for i in images) if s]
            decision = Decision(
                True,
                "same intent, parameters match",
                score,
                row[0],
                prompt_id,
                images,
                statistics.median(saved) if saved else ASSUMED_GENERATION_SECONDS,
            )
            decision.truncated = truncated
            return self._finish(req, decision, started, log)
        decision = best or Decision(False, "no similar prompt in the library")
        decision.truncated = truncated or bool(tokens_truncated)
        return self._finish(req, decision, started, log)

    def _scope(
        self, scope: str | None, restrict: tuple[str, list[Any]] | None = None
    ) -> tuple[str, list[Any]] | None:
        """The scope's SQL over ``images``: the query's, and the requester's restriction."""
        parts: list[tuple[str, list[Any]]] = []
        if scope and scope.strip():
            where, args = catalog_images.compile_query(self.conn, scope).sql_on(self.conn)
            parts.append((where, list(args)))
        if restrict is not None:
            parts.append((restrict[0], list(restrict[1])))
        if not parts:
            return None
        return " AND ".join(f"({w})" for w, _ in parts), [a for _, args in parts for a in args]

    def _any_in(self, scope: tuple[str, list[Any]]) -> bool:
        sql = f"SELECT 1 FROM images WHERE ({scope[0]}) AND images.prompt_id IS NOT NULL LIMIT 1"
        return self.conn.execute(sql, scope[1]).fetchone() is not None

    def _matching_images(
        self,
        req: DreamRequest,
        prompt_id: int,
        scope: tuple[str, list[Any]] | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        in_scope = ""
        args: list[Any] = [prompt_id]
        if scope is not None:
            in_scope = f" AND ({scope[0]})"
            args += scope[1]
        rows = self.conn.execute(
            "SELECT images.id, images.model, images.width, images.height, images.params, "
            "n.text AS negative, "
            + ", ".join(f"images.{h}" for h in HOLDABLE)
            + " FROM images LEFT JOIN prompts n ON n.id = images.negative_prompt_id "
            "WHERE images.prompt_id = ? AND EXISTS (SELECT 1 FROM files f WHERE f.image_id = "
            "images.id AND f.state = 'present')"
            + in_scope
            + " ORDER BY coalesce(images.rating, 0) DESC, images.created_at DESC",
            args,
        ).fetchall()
        if not rows:
            return [], "the similar prompt has no images on disk"
        reasons: list[str] = []
        keep = []
        for r in rows:
            why = self._mismatch(req, r)
            if why:
                reasons.append(why)
            else:
                keep.append(r)
        if not keep:
            return [], f"a similar prompt was found but {reasons[0]}"
        ids = [r["id"] for r in keep[: req.limit]]
        params = {r["id"]: r["params"] for r in keep}
        page = catalog_images.search(self.conn, "id:" + ",".join(map(str, ids)), limit=len(ids))
        items = []
        for item in page.items:
            item["paths"] = [
                f["path"]
                for f in catalog_images.paths_of(self.conn, item["id"])
                if f["state"] == "present"
            ]
            item["_params"] = params.get(item["id"])
            items.append(item)
        return items, ""

    def _mismatch(self, req: DreamRequest, r: sqlite3.Row) -> str:
        if req.model and _model_key(req.model) != _model_key(r["model"]):
            return f"its images used model {r['model']!r}, not {req.model!r}"
        if req.width and req.height and r["width"] and r["height"] and req.match_size != "any":
            if req.match_size == "exact" and (r["width"], r["height"]) != (req.width, req.height):
                return f"its images are {r['width']}x{r['height']}, not {req.width}x{req.height}"
            ratio = (r["width"] / r["height"]) / (req.width / req.height)
            if req.match_size == "aspect" and not 0.98 <= ratio <= 1.02:
                return f"its images have another aspect ({r['width']}x{r['height']})"
        if req.negative_prompt is not None:  # None: the caller does not care; "" means none
            mine, theirs = req.negative_prompt.strip(), (r["negative"] or "").strip()
            words = word_vectors(self.embedder)
            if (mine or theirs) and (
                not mine
                or not theirs
                or not same_intent(mine, theirs, words, self.boilerplate).same
            ):
                return "the negative prompt differs"
        for key, value in req.hold.items():
            if key not in HOLDABLE:
                continue
            have = r[key]
            if isinstance(value, str) and isinstance(have, str):
                if value.strip().lower() != have.strip().lower():
                    return f"{key} differs ({have!r})"
            elif have != value:
                return f"{key} differs ({have!r})"
        return ""

    def _finish(self, req: DreamRequest, d: Decision, started: float, log: bool) -> Decision:
        d.lookup_ms = (time.perf_counter() - started) * 1000
        if log:
            log_decision(self.conn, req, d, self.embedder.model_id)
        return d


def log_decision(conn: sqlite3.Connection, req: DreamRequest, d: Decision, model_id: str) -> None:
    """Record a cache decision (every lookup is logged, hits and misses with their reason)."""
    conn.execute(
        "INSERT INTO cache_events(at, prompt, negative_prompt, decision, similarity, "
        "matched_prompt_id, image_ids, reason, seconds_saved, model_id, request, user_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            time.time(),
            req.prompt[:MAX_PROMPT_CHARS],
            req.negative_prompt,
            "hit" if d.hit else "miss",
            d.similarity,
            d.matched_prompt_id,
            json.dumps([i["id"] for i in d.images]) if d.images else None,
            d.reason,
            d.seconds_saved if d.hit else None,
            model_id,
            json.dumps({k: v for k, v in asdict(req).items() if k != "prompt"}),
            req.user_id,
        ),
    )


def cache_stats(conn: sqlite3.Connection, user_id: int | None = None) -> dict[str, Any]:
    """Lookups, hits, misses and GPU-seconds saved — the instance's, or one user's."""
    who, args = ("WHERE user_id = ?", (user_id,)) if user_id is not None else ("", ())
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE decision = 'hit'), "
        "count(*) FILTER (WHERE decision = 'miss'), count(*) FILTER (WHERE decision = 'bypass'), "
        f"coalesce(sum(seconds_saved), 0) FROM cache_events {who}",
        args,
    ).fetchone()
    total, hits, misses, bypass, saved = row[0], row[1] or 0, row[2] or 0, row[3] or 0, row[4]
    reasons = [
        dict(r)
        for r in conn.execute(
            "SELECT reason, count(*) AS count FROM cache_events WHERE decision = 'miss' "
            f"{who.replace('WHERE', 'AND')} GROUP BY reason ORDER BY count DESC LIMIT 5",
            args,
        )
    ]
    return {
        "lookups": total,
        "hits": hits,
        "misses": misses,
        "bypassed": bypass,
        "hit_rate": hits / (hits + misses) if hits + misses else 0.0,
        "gpu_seconds_saved": saved,
        "top_miss_reasons": reasons,
        "token_limit": MAX_TOKENS,
    }
