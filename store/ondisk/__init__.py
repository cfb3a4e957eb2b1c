"""The on-disk store: append-only segment logs, an index snapshot, recovery, multi-process.

Why this layout rather than the reference's one file per entry (reference-formats §5): a put of
a batch is one append of all its records and one fsync, where per-entry files cost several
file creations and fsyncs per entry; a million entries are a few dozen segment files instead
of two million small files; and cold open loads one checksummed snapshot and replays the log
written since, instead of reading every entry file. See ``layout`` for the directory,
``records`` for the record format, ``store`` for concurrency.
"""

from store.ondisk.options import OnDiskStoreOptions
from store.ondisk.recovery import RecoveryProgress
from store.ondisk.store import OnDiskStore

__all__ = ["OnDiskStore", "OnDiskStoreOptions", "RecoveryProgress"]
