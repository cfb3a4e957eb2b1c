"""The on-disk store: entries in one SQLite database per store directory.

Why SQLite: the store's memory and start time must not grow with what it holds. Entries and
their indexes live in indexed tables, so an open reads a few pages (milliseconds at a million
entries) and a query touches only the pages it needs; WAL mode with ``synchronous=FULL`` and
one transaction per group-committed batch gives the same durability as an fsync per batch;
SQLite's locking keeps several processes on one file safe. See ``schema`` for the tables,
``witness`` for detecting lost commits, ``store`` for concurrency and containment.
"""

from store.ondisk.check import CheckReport
from store.ondisk.options import CheckOnOpen, OnDiskStoreOptions
from store.ondisk.store import OnDiskStore

__all__ = ["CheckOnOpen", "CheckReport", "OnDiskStore", "OnDiskStoreOptions"]
