"""``DBOptions``: the tunables of one database handle, in one frozen object passed in."""

from __future__ import annotations

from dataclasses import dataclass

from mindood.db.attachments import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_READ_BATCH,
    DEFAULT_WRITE_BATCH_BYTES,
)


@dataclass(frozen=True, slots=True)
class DBOptions:
    """Tunables of one database handle."""

    #: Write a ``doc_snapshot`` after this many changes since the last one (0 = never).
    snapshot_every: int = 100
    #: Materialised documents kept in memory.
    cache_size: int = 1000
    sync_page_size: int = 1000
    sync_batch_size: int = 250
    #: Plaintext bytes per attachment chunk (reference default 256 KiB).
    attachment_chunk_size: int = DEFAULT_CHUNK_SIZE
    #: Encrypted chunk bytes gathered before one store write while adding a file.
    attachment_write_batch_bytes: int = DEFAULT_WRITE_BATCH_BYTES
    #: Chunks fetched per store call while reading a file.
    attachment_read_batch: int = DEFAULT_READ_BATCH
    #: Metadata entries per page when a change feed scans the store.
    change_scan_page_size: int = 2000
    #: Entries fetched per store call while replaying a document's history.
    history_batch_size: int = 64
