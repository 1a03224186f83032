"""HTTP to a back end with bounded retries: transport failures and 5xx answers are retried
with exponential backoff, then reported as a BackendError naming the service."""

from __future__ import annotations

import time
from typing import Any

import httpx

from dreamdepot.generate.base import BackendError


def request(
    client: httpx.Client,
    service: str,
    method: str,
    path: str,
    retries: int,
    backoff: float = 1.0,
    **kwargs: Any,
) -> httpx.Response:
    """The response of the first attempt that is not a transport error or a 5xx (the last
    5xx is returned as is, for the caller to report)."""
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
            if r.status_code < 500 or attempt == retries:
                return r
        time.sleep(delay)
        delay *= 2
    raise BackendError(f"{service}: no answer")  # pragma: no cover - the loop always returns
