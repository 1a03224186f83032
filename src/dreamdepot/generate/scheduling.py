"""Which queued job runs next: interactive before background, and round-robin between users.

A job's place is fixed when it is queued, as one integer priority (higher first, then the
older job) that both runners read: the in-process queue orders by it, and procrastinate,
which workers take from, orders its own jobs by it. Round-robin without a scheduler process:
a user's new job goes one round after that user's last waiting job; a user with nothing
waiting joins the current round (the highest waiting priority), right after the job already
there. So a 500-image batch and a single request from someone else interleave one job each,
and a user's own jobs keep their order.
"""

from __future__ import annotations

import sqlite3

INTERACTIVE = 1 << 30  # the first round of interactive jobs; rounds count down from here
BACKGROUND = 0
ROUNDS = 1 << 29  # rounds a class can hold before it would reach the next class down


class QueueFull(ValueError):
    """The user already has as many jobs waiting as the instance allows."""


def _class_range(background: bool) -> tuple[int, int]:
    top = BACKGROUND if background else INTERACTIVE
    return top - ROUNDS + 1, top


def _user_clause(user_id: int | None) -> tuple[str, tuple[int, ...]]:
    return ("user_id IS NULL", ()) if user_id is None else ("user_id = ?", (user_id,))


def next_priority(conn: sqlite3.Connection, user_id: int | None, background: bool) -> int:
    """The priority a new job of ``user_id`` gets (see the module docstring)."""
    low, top = _class_range(background)
    who, args = _user_clause(user_id)
    mine = conn.execute(
        f"SELECT min(priority) FROM jobs WHERE status = 'queued' AND {who} "
        "AND priority BETWEEN ? AND ?",
        (*args, low, top),
    ).fetchone()[0]
    if mine is not None:
        return max(low, int(mine) - 1)
    head = conn.execute(
        "SELECT max(priority) FROM jobs WHERE status = 'queued' AND priority BETWEEN ? AND ?",
        (low, top),
    ).fetchone()[0]
    return top if head is None else int(head)


def check_limit(conn: sqlite3.Connection, user_id: int | None, limit: int) -> None:
    """QueueFull when ``user_id`` has ``limit`` jobs waiting or running (0: no limit)."""
    if limit <= 0:
        return
    who, args = _user_clause(user_id)
    waiting = conn.execute(
        f"SELECT count(*) FROM jobs WHERE status IN ('queued', 'running') AND {who}", args
    ).fetchone()[0]
    if int(waiting) >= limit:
        raise QueueFull(
            f"queue: {waiting} of your jobs are already waiting or running (the limit is "
            f"{limit}); wait for some to finish or cancel some"
        )
