"""Server-sent events: a small in-process bus that threads publish to and each open
``/api/events`` stream reads from."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

Filter = Callable[[str, dict[str, Any]], bool]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[
            tuple[asyncio.AbstractEventLoop, asyncio.Queue[str], Filter | None]
        ] = set()
        self._lock = threading.Lock()

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        """Thread-safe: callable from the watcher, the thumbnailer or a job worker."""
        message = f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue, allowed in subscribers:
            if allowed is not None and not allowed(kind, data):
                continue
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(queue.put_nowait, message)

    async def stream(
        self, heartbeat: float = 15.0, allowed: Filter | None = None
    ) -> AsyncIterator[str]:
        """Events as SSE text; with ``allowed``, only the events it lets through (a user of
        a shared instance hears only about their own jobs)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)
        entry = (loop, queue, allowed)
        with self._lock:
            self._subscribers.add(entry)
        try:
            yield "event: hello\ndata: {}\n\n"
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), timeout=heartbeat)
                except TimeoutError:
                    yield ": keep-alive\n\n"
        finally:
            with self._lock:
                self._subscribers.discard(entry)
