"""Choosing between two query plans at run time, the way a person would: try the cheap
guess first, give up on it quickly, fall back to the other.

A filter such as ``tag:portrait`` can be answered two ways for a page sorted by date:
- walk images newest first and test each against the tag (fast when the tag is common:
  a hundred matches turn up after a few hundred rows);
- start from the tag's own index, fetch all its images, sort them (fast when the tag is rare).
SQLite's planner cannot know which tag is which, so a page first tries the walk under a
small time budget (a progress handler aborts it) and falls back to the index plan. The
wasted work is bounded by the budget, and each plan is only ever used where it is fast.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from dreamdepot.catalog.query import Query

WALK_BUDGET_SECONDS = 0.012


def run_adaptive(
    conn: sqlite3.Connection,
    q: Query,
    build_sql: Callable[[str], str],
    params: Sequence[Any],
    budget: float = WALK_BUDGET_SECONDS,
) -> list[sqlite3.Row]:
    """Run ``build_sql(where)`` with the walking plan first, then the index plan.

    ``build_sql`` receives the WHERE clause to embed; ``params`` are bound unchanged.
    """
    if not q.adaptive:
        return conn.execute(build_sql(q.where), params).fetchall()
    deadline = time.perf_counter() + budget
    conn.set_progress_handler(lambda: int(time.perf_counter() > deadline), 2000)
    try:
        return conn.execute(build_sql(q.where_walking()), params).fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupt" not in str(exc):
            raise
    finally:
        conn.set_progress_handler(None, 0)
    return conn.execute(build_sql(q.where), params).fetchall()
