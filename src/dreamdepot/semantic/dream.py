"""The dream policy: one place decides, for the CLI, the API and the web UI, whether a
request is answered from the library, and what is generated when it is not.

A miss generates with exactly what the request held fixed (model, size, negative prompt,
sampler, scheduler, steps, CFG scale, seed), so the images it adds answer the same request
next time. "Generate anyway" skips the lookup for a request the user has already seen
answered, and is logged as such.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from dreamdepot.errors import DreamDepotError
from dreamdepot.generate.base import GenerateRequest
from dreamdepot.semantic.cache import HOLDABLE, DreamCache, DreamRequest, log_decision
from dreamdepot.semantic.embedders import Embedder

# Held parameters a generation request can carry; "generator" and "vae" are properties of
# the back end, not of a request.
APPLIED_ON_MISS = ("sampler", "scheduler", "steps", "cfg_scale", "seed")
DEFAULT_SIDE = 512


class HoldError(DreamDepotError):
    """A --hold / hold value that cannot be used; the message names it."""


def parse_hold(items: Iterable[str]) -> dict[str, Any]:
    """``["steps=30", "sampler=Euler a"]`` -> ``{"steps": 30, "sampler": "Euler a"}``."""
    held: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise HoldError(f"hold {item!r}: use KEY=VALUE")
        held[key] = value.strip()
    return normalise_hold(held)


def normalise_hold(held: dict[str, Any]) -> dict[str, Any]:
    """Known keys only, with numbers as numbers (``steps`` and ``seed`` whole)."""
    out: dict[str, Any] = {}
    for key, value in held.items():
        if key not in HOLDABLE:
            raise HoldError(f"hold {key!r}: can hold {', '.join(HOLDABLE)}")
        if key in ("steps", "seed"):
            try:
                out[key] = int(str(value).strip())
            except ValueError:
                raise HoldError(f"hold {key}={value!r}: must be a whole number") from None
        elif key == "cfg_scale":
            try:
                out[key] = float(str(value).strip())
            except ValueError:
                raise HoldError(f"hold cfg_scale={value!r}: must be a number") from None
        else:
            out[key] = str(value).strip()
    return out


@dataclass
class DreamResult:
    """What a dream request came to; ``to_dict`` is the shape the CLI's --json and the API
    both answer."""

    hit: bool
    reason: str
    decision: dict[str, Any] = field(default_factory=dict)
    generate: GenerateRequest | None = None
    unapplied: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.decision)
        out.update(hit=self.hit, reason=self.reason, error=self.error)
        out.setdefault("images", [])
        out["generation"] = self.generate.to_dict() if self.generate else None
        out["held_not_applied"] = self.unapplied
        return out


def generation_for(req: DreamRequest, n: int = 1) -> tuple[GenerateRequest, list[str]]:
    """The generation a miss makes: the request's prompt and everything it held fixed.

    Returns the request and the held keys it cannot carry (the back end decides those).
    """
    gen = GenerateRequest(
        "txt2img",
        req.prompt,
        req.negative_prompt or "",
        n,
        width=req.width or DEFAULT_SIDE,
        height=req.height or DEFAULT_SIDE,
        model=req.model,
    )
    for key in APPLIED_ON_MISS:
        if key in req.hold:
            setattr(gen, key, req.hold[key])
    return gen, sorted(k for k in req.hold if k not in APPLIED_ON_MISS)


def dream(
    conn: sqlite3.Connection,
    embedder: Embedder | None,
    req: DreamRequest,
    *,
    backend: str | None,
    force: bool = False,
    n: int = 1,
    writer: Callable[[], AbstractContextManager[sqlite3.Connection]] | None = None,
) -> DreamResult:
    """Look the request up (unless ``force``), and say what to generate on a miss.

    ``conn`` is read; the decision is logged through ``writer`` (default: on ``conn``), so a
    server reads on its pool and writes briefly on its writer. Generating is the caller's:
    the CLI runs the returned request now, the API queues it.
    """

    def record(write: Callable[[sqlite3.Connection], object]) -> None:
        if writer is None:
            write(conn)
        else:
            with writer() as w:
                write(w)

    if force:
        record(
            lambda w: w.execute(
                "INSERT INTO cache_events(at, prompt, negative_prompt, decision, reason) "
                "VALUES (?, ?, ?, 'bypass', 'generate anyway')",
                (time.time(), req.prompt, req.negative_prompt),
            )
        )
        result = DreamResult(False, "generate anyway: the library was not asked")
    else:
        if embedder is None:
            raise ValueError("a lookup needs the prompt embedder")
        model_id = embedder.model_id
        decision = DreamCache(conn, embedder).lookup(req, log=False)
        record(lambda w: log_decision(w, req, decision, model_id))
        result = DreamResult(decision.hit, decision.reason, decision.to_dict())
        if decision.hit:
            return result
    if not backend:
        result.error = (
            "no generation back end is configured, so a miss cannot be generated: "
            "set backend in dreamdepot.toml"
        )
        return result
    result.generate, result.unapplied = generation_for(req, n)
    return result
