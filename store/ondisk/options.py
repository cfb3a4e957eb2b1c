"""Configuration of an ``OnDiskStore``: one frozen object, passed in at open."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class OnDiskStoreOptions:
    """How an on-disk store behaves; the defaults suit a daemon.

    - ``clear_local_data_on_startup``: wipe the store and start a new epoch when opening
      (test and benchmark baselines).
    - ``indexing_enabled``: keep the index in memory. False is scan mode: nothing is kept
      between calls and every query scans the segments (slow, same answers).
    - ``compaction_enabled`` and the two thresholds decide when the index snapshot is rewritten
      (the reference's "metadata segment compaction"): once this many log records
      (``compaction_min_records``, the reference's ``minFiles``) or log bytes
      (``compaction_max_bytes``) were written since the last one; a threshold <= 0 is off.
    - ``snapshot_on_close``: write a snapshot on a clean close when the log grew since the last.
    - ``segment_max_bytes``: a log segment is closed and a new one started past this size.
    - ``fsync``: make every acknowledged write durable. Only logic tests turn it off.
    - ``max_open_segments``: read descriptors kept open.
    """

    clear_local_data_on_startup: bool = False
    indexing_enabled: bool = True
    compaction_enabled: bool = True
    compaction_min_records: int = 50_000
    compaction_max_bytes: int = 256 * MIB
    snapshot_on_close: bool = True
    segment_max_bytes: int = 64 * MIB
    fsync: bool = True
    max_open_segments: int = 64
    store_id: str | None = None

    def snapshot_due(self, records: int, log_bytes: int) -> bool:
        """Whether the log written since the last snapshot crossed a threshold."""
        if not (self.compaction_enabled and self.indexing_enabled):
            return False
        by_records = self.compaction_min_records > 0 and records >= self.compaction_min_records
        by_bytes = self.compaction_max_bytes > 0 and log_bytes >= self.compaction_max_bytes
        return by_records or by_bytes
