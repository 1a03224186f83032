"""Prometheus metrics for the server and for workers (``/metrics``; ``dreamdepot worker
--metrics-port``): jobs by state and queue, job durations, dream cache hits and misses and
the GPU-seconds they saved, request latency. State that lives in the catalog is read when
scraped (a collector), so every process reports the same numbers; what happens in one
process (a request, a job run) is counted where it happens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

JOB_SECONDS = Histogram(
    "dreamdepot_job_duration_seconds",
    "Time from a job's claim to its end, by kind, back end and outcome",
    ["kind", "backend", "status"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
REQUEST_SECONDS = Histogram(
    "dreamdepot_http_request_duration_seconds",
    "HTTP request latency by route and method",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10),
)


class CatalogCollector:
    """Gauges and counters read from the catalog at scrape time."""

    def __init__(self, open_conn: Callable[[], Any]) -> None:
        self.open_conn = open_conn  # a connection the caller keeps (not closed here)

    def collect(self) -> Iterator[Metric]:
        from dreamdepot.generate.observe import queue_summary
        from dreamdepot.semantic.cache import cache_stats

        conn = self.open_conn()  # the server's reader for this thread: kept open
        jobs = GaugeMetricFamily("dreamdepot_jobs", "Jobs by state", labels=["state"])
        seen = dict(conn.execute("SELECT status, count(*) FROM jobs GROUP BY status"))
        for state in ("queued", "running", "done", "failed", "cancelled"):
            jobs.add_metric([state], int(seen.get(state, 0)))
        yield jobs
        summary = queue_summary(conn, failures=0)
        depth = GaugeMetricFamily(
            "dreamdepot_queue_depth",
            "Jobs waiting or running per queue",
            labels=["queue", "state"],
        )
        for queue, counts in summary["queues"].items():
            for state, n in counts.items():
                depth.add_metric([queue, state], n)
        yield depth
        workers = GaugeMetricFamily("dreamdepot_workers", "Workers seen recently")
        workers.add_metric([], sum(1 for w in summary["workers"] if w["alive"]))
        yield workers
        cache = cache_stats(conn)
        lookups = CounterMetricFamily(
            "dreamdepot_cache_lookups", "Dream cache lookups by outcome", labels=["outcome"]
        )
        for outcome, key in (("hit", "hits"), ("miss", "misses"), ("bypass", "bypassed")):
            lookups.add_metric([outcome], int(cache.get(key) or 0))
        yield lookups
        yield CounterMetricFamily(
            "dreamdepot_cache_gpu_seconds_saved",
            "Generation seconds the dream cache answered instead of a back end",
            value=float(cache.get("gpu_seconds_saved") or 0),
        )


def render(catalog_registry: CollectorRegistry | None = None) -> bytes:
    """This process's metrics, then the catalog's (the Prometheus text format)."""
    from prometheus_client import REGISTRY

    out = generate_latest(REGISTRY)
    if catalog_registry is not None:
        out += generate_latest(catalog_registry)
    return out


def catalog_registry(open_conn: Callable[[], Any]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CatalogCollector(open_conn))
    return registry


class RequestTimer:
    """ASGI middleware: each HTTP request's latency, labelled by its route's template (so
    ``/api/images/{image_id}`` is one series, not one per id). Event streams are left out:
    they last as long as the page is open."""

    def __init__(self, app: Any, skip: tuple[str, ...] = ("/api/events", "/metrics")) -> None:
        self.app = app
        self.skip = skip

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in self.skip:
            await self.app(scope, receive, send)
            return
        import time

        started = time.perf_counter()
        status = [500]

        async def keep_status(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, keep_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(unmatched)"
            REQUEST_SECONDS.labels(route, scope["method"], str(status[0])).observe(
                time.perf_counter() - started
            )
