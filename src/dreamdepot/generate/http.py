"""HTTP to a back end with bounded retries.

Only failures that another attempt can cure are retried: the connection (refused, reset,
timed out) and the gateway answers 502/503/504 of a proxy or a server still starting. A 500
from a generation is the server's deterministic answer to *this* request (a script error, an
out-of-memory), so it is returned at once for the caller to report: retrying it would run the
same failing job three times."""

from __future__ import annotations

import time
from typing import Any

import httpx

from dreamdepot.generate.base import BackendError

RETRY_STATUSES = frozenset({502, 503, 504})


def request(
    client: httpx.Client,
    service: str,
    method: str,
    path: str,
    retries: int,
    backoff: float = 1.0,
    **kwargs: Any,
) -> httpx.Response:
    """The response of the first attempt that is neither a transport error nor a gateway
    status (after the last attempt that answer is returned as it is)."""
    delay = backoff
    for attempt in range(retries + 1):
        try:
            r = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            if attempt == retries:
                raise BackendError(
                    f"{service} at {client.base_url} is unreachable: {exc}", retryable=True
                ) from exc
        else:
            if r.status_code not in RETRY_STATUSES or attempt == retries:
                return r
        time.sleep(delay)
        delay *= 2
    raise BackendError(f"{service}: no answer")  # pragma: no cover - the loop always returns


def error_text(r: httpx.Response, limit: int = 500) -> str:
    """The human part of an error body: FastAPI's ``detail``, A1111's ``errors``/``error``,
    ComfyUI's ``error.message``; else the start of the text.

    >>> error_text(httpx.Response(404, json={"detail": "Sampler not found"}))
    'Sampler not found'
    >>> error_text(httpx.Response(500, json={"error": "OutOfMemoryError", "errors": "CUDA"}))
    'OutOfMemoryError: CUDA'
    """
    try:
        body = r.json()
    except ValueError:
        return r.text[:limit].strip()
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            err = err.get("message") or err.get("type")
        detail = body.get("detail") or body.get("errors")
        if isinstance(detail, list):  # FastAPI validation errors
            detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d)
                               for d in detail)  # fmt: skip
        parts = [str(p) for p in (err, detail) if p]
        if parts:
            return ": ".join(parts)[:limit]
    return str(body)[:limit]
