"""Configuration of an ``OnDiskStore``: one frozen object, passed in at open."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class CheckOnOpen(StrEnum):
    """When an open runs ``PRAGMA quick_check`` over the whole database file.

    ``background`` lets the store answer at once (a quick check reads every page: seconds at a
    million entries) and fails the store if the check finds damage; ``blocking`` waits for it;
    ``off`` skips it (damage then shows when a damaged page is read).
    """

    BACKGROUND = "background"
    BLOCKING = "blocking"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class OnDiskStoreOptions:
    """How an on-disk store behaves; the defaults suit a daemon.

    - ``clear_local_data_on_startup``: wipe the store and start a new epoch when opening
      (test and benchmark baselines).
    - ``fsync``: ``synchronous=FULL``, so every acknowledged write is durable. Only logic tests
      turn it off (``synchronous=OFF``).
    - ``busy_timeout_s``: how long a writer waits for another process's write transaction.
    - ``max_readers``: read connections this store keeps (each is one SQLite handle).
    - ``cache_kib``: SQLite page cache per connection; memory does not grow beyond it.
    - ``store_id``: the name in logs (default: the directory).
    """

    clear_local_data_on_startup: bool = False
    fsync: bool = True
    check_on_open: CheckOnOpen = CheckOnOpen.BACKGROUND
    busy_timeout_s: float = 30.0
    max_readers: int = 2
    cache_kib: int = 2048
    store_id: str | None = None
