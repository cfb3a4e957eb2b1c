"""What every bench shares: the progress callback it reports its phases through.

A bench takes ``progress: Progress = quiet``; ``mindood bench`` passes :func:`stderr_progress`,
so a run of minutes says what it is doing while standard output stays pure JSON.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO, TypeAlias

Progress: TypeAlias = Callable[[str], None]


def quiet(message: str) -> None:
    """The progress callback of a caller that wants none (tests, library use)."""


def stderr_progress(out: TextIO | None = None) -> Progress:
    """Prints ``bench [  12.3s] message`` lines, stamped with the seconds since it was made."""
    started = time.perf_counter()
    stream = out or sys.stderr

    def report(message: str) -> None:
        stream.write(f"bench [{time.perf_counter() - started:7.1f}s] {message}\n")
        stream.flush()

    return report


__all__ = ["Progress", "quiet", "stderr_progress"]
