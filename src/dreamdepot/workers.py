"""Worker processes for the CPU-bound stages (probe, hash, thumbnails, taggers).

Forked, so workers inherit what the parent already loaded (readers, models) without pickling.
A forked child also inherits the parent's Python signal handlers — uvicorn's SIGTERM handler,
say, which in a child only sets a flag nobody reads — so every worker starts by putting the
signals back: SIGINT ignored (Ctrl-C reaches only the parent, which stops writing after the
batch in flight), SIGTERM to its default (it ends the worker), and on Linux the kernel is
asked to send SIGTERM when the parent dies, so no worker outlives its parent, however the
parent ends. :func:`terminate_all` stops the workers of every live pool at once (server
shutdown).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
PR_SET_PDEATHSIG = 1

_live: set[WorkerPool] = set()
_live_lock = threading.Lock()


def _init_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class WorkerPool(cf.ProcessPoolExecutor):
    """A forked pool that :func:`terminate_all` can stop."""

    def __init__(self, workers: int) -> None:
        super().__init__(
            workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        with _live_lock:
            _live.add(self)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with _live_lock:
            _live.discard(self)
        super().shutdown(wait=wait, cancel_futures=cancel_futures)

    def terminate(self) -> None:
        """Stop every worker now (SIGTERM); pending work fails with BrokenProcessPool."""
        processes: dict[Any, multiprocessing.process.BaseProcess] = (
            getattr(self, "_processes", None) or {}
        )
        for proc in list(processes.values()):
            with contextlib.suppress(Exception):
                proc.terminate()
        self.shutdown(wait=False, cancel_futures=True)


def fork_pool(workers: int) -> WorkerPool:
    return WorkerPool(workers)


def terminate_all() -> int:
    """Terminate the workers of every live pool; returns how many pools were stopped."""
    with _live_lock:
        pools = list(_live)
    for pool in pools:
        pool.terminate()
    return len(pools)


def map_chunks(
    fn: Callable[[T], R], chunks: Iterable[T], workers: int, in_process: bool
) -> Iterator[R]:
    """``fn`` over ``chunks`` in order: here when ``in_process`` (small jobs, one worker),
    otherwise in a forked pool that is shut down when the caller stops iterating."""
    if in_process:
        yield from map(fn, chunks)
        return
    with fork_pool(workers) as pool:
        yield from pool.map(fn, chunks)
