"""The worker threads every on-disk store in a process shares.

SQLite calls block, so they run off the event loop. One pool per process (not per store) bounds
the threads whatever the number of tenants and databases; two single-thread pools run the slow
housekeeping: whole-file integrity checks, and WAL checkpoints (copying committed pages into
the database file), so neither ever delays a query or a commit, nor each other. (The few
frames a background checkpoint leaves behind, the store's writer copies between two commits,
after answering the first: see ``OnDiskStore._finish_checkpoint``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal, TypeVar, get_args

_T = TypeVar("_T")

#: Threads serving queries and commits of every store in the process.
FOREGROUND_THREADS = 4
#: Threads per housekeeping pool (checks, checkpoints): one each, they are I/O-bound.
BACKGROUND_THREADS = 1
#: The pools: queries and commits, integrity checks, WAL checkpoints.
Pool = Literal["store", "check", "checkpoint"]
_POOLS: tuple[Pool, ...] = get_args(Pool)

#: Name prefix of the pools' threads (they live as long as the process, on purpose).
THREAD_PREFIX = "ondisk-"

_lock = threading.Lock()
_pools: dict[str, ThreadPoolExecutor] = {}


def _pool(kind: Pool) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(kind)
        if pool is None:
            size = FOREGROUND_THREADS if kind == "store" else BACKGROUND_THREADS
            pool = _pools[kind] = ThreadPoolExecutor(
                size, thread_name_prefix=f"{THREAD_PREFIX}{kind}"
            )
        return pool


def thread_count() -> int:
    """Threads the pools may run at most (for tests and status)."""
    return FOREGROUND_THREADS + BACKGROUND_THREADS * (len(_POOLS) - 1)


def submit_blocking(fn: Callable[[], None], pool: Pool = "store") -> Future[None]:
    """Start ``fn`` in a shared worker, for a caller that takes its outcome from ``fn`` itself.

    ``fn`` reports back on its own (``loop.call_soon_threadsafe``), which saves the loop the
    passes an awaited executor future costs; the future returned only tells when it is done.
    """
    return _pool(pool).submit(fn)


async def run_blocking(fn: Callable[..., _T], *args: object, pool: Pool = "store") -> _T:
    """Run ``fn`` in a shared worker; if cancelled, still wait for it to finish, then re-raise.

    Waiting keeps a connection from being used by two threads at once: the caller gives the
    connection back only after its worker is done with it.
    """
    executor = _pool(pool)
    future = asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({future})
        if not future.cancelled():
            future.exception()  # the caller is gone: its failure (an interrupted check) is moot
        raise
