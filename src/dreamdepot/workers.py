"""Worker processes for the CPU-bound stages (probe, hash, thumbnails, taggers).

Forked, so workers inherit what the parent already loaded (readers, models) without pickling;
SIGINT is ignored in the workers so Ctrl-C reaches only the parent, which stops writing after
the batch in flight and shuts the pool down.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def fork_pool(workers: int) -> cf.ProcessPoolExecutor:
    return cf.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_ignore_sigint
    )


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
