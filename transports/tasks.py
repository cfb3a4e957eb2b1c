"""Stopping tasks without losing what they say: the one cancel-and-wait every layer uses.

A cleanup that awaits its tasks under ``suppress(CancelledError, Exception)`` swallows both its
own cancellation and the tasks' failures. ``asyncio.wait`` raises neither: the caller's cancel
still propagates, and a task that failed (not merely cancelled) is logged here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

log = logging.getLogger("mindood.tasks")

#: Starts a coroutine as a named task of the caller's task group (a node hands its ``spawn``),
#: so a transport's tasks have the caller's owner.
Spawner = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], *, within: float = 5.0) -> None:
    """Cancel ``tasks`` and wait (bounded) until they ended; log failures and stragglers."""
    chosen = list(tasks)
    pending = [task for task in chosen if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        _done, late = await asyncio.wait(pending, timeout=within)
        if late:
            log.warning("tasks did not stop in time", extra={"tasks": [t.get_name() for t in late]})
    for task in chosen:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("task failed", exc_info=task.exception(), extra={"task": task.get_name()})
