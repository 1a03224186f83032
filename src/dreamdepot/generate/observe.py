"""What the queue looks like now: depth per queue and per user, the workers and what they
run, recent failures — for ``dreamdepot jobs``, ``/api/jobs`` and ``/metrics``. Read from
the jobs and workers tables, so it is the same whichever runner the library uses."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from typing import Any

from dreamdepot.generate.dispatch import queue_for

ALIVE_FOR = 30.0  # a worker not seen for this long is listed as gone
LOCAL = "(local)"  # jobs of no account: an embedded library's, or the CLI's


def queue_summary(conn: sqlite3.Connection, failures: int = 10) -> dict[str, Any]:
    """Depth per queue and per user (queued and running), workers, the latest failures."""
    per_queue: dict[str, Counter[str]] = {}
    per_user: dict[str, Counter[str]] = {}
    for kind, request, status, user in conn.execute(
        "SELECT j.kind, j.request, j.status, u.name FROM jobs j "
        "LEFT JOIN users u ON u.id = j.user_id WHERE j.status IN ('queued', 'running')"
    ):
        queue = queue_for(kind, json.loads(request).get("model"))
        per_queue.setdefault(queue, Counter())[status] += 1
        per_user.setdefault(user or LOCAL, Counter())[status] += 1
    now = time.time()
    workers = []
    for row in conn.execute("SELECT * FROM workers ORDER BY name").fetchall():
        w = dict(row)
        w["models"], w["queues"] = json.loads(w["models"]), json.loads(w["queues"])
        w["alive"] = now - float(w["seen_at"]) < ALIVE_FOR
        running = conn.execute(
            "SELECT id FROM jobs WHERE worker = ? AND status = 'running' ORDER BY id",
            (w["name"],),
        ).fetchall()
        w["running"] = [int(r[0]) for r in running]
        workers.append(w)
    failed = [
        {"id": int(r[0]), "kind": r[1], "error": r[2], "worker": r[3], "finished_at": r[4]}
        for r in conn.execute(
            "SELECT id, kind, error, worker, finished_at FROM jobs WHERE status = 'failed' "
            "ORDER BY id DESC LIMIT ?",
            (failures,),
        )
    ]

    def counts(table: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
        return {
            k: {"queued": v["queued"], "running": v["running"]} for k, v in sorted(table.items())
        }

    return {
        "queues": counts(per_queue),
        "users": counts(per_user),
        "workers": workers,
        "failed": failed,
    }
