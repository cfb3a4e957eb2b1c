"""Maintenance around the log: counters, wiping, snapshots, locked reads, and reporting.

Damage found on disk is never raised into callers (the store keeps serving everything that is
intact); it is logged here with structured fields (``extra=``) so an operator can find the
segment and offsets.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field

from store.base import CompactionStatus
from store.ids import uuid7
from store.ondisk.index import LogIndex, Region
from store.ondisk.layout import fsync_dir
from store.ondisk.log import CatchUp, SegmentLog
from store.ondisk.options import OnDiskStoreOptions
from store.ondisk.records import Damage
from store.ondisk.recovery import Loaded, load
from store.ondisk.snapshot import write_snapshot

logger = logging.getLogger("store.ondisk")


@dataclass(slots=True)
class Stats:
    """Log growth since the last snapshot, erasures still owed, and compaction counters."""

    since_records: int = 0
    since_bytes: int = 0
    pending_erase: list[Region] = field(default_factory=list)
    total_compactions: int = 0
    total_compacted_records: int = 0
    total_compacted_bytes: int = 0
    total_duration_ms: float = 0.0
    last_at: int | None = None
    last_records: int = 0
    last_bytes: int = 0
    last_duration_ms: float = 0.0
    rebuilds: int = 0

    def compacted(self, seconds: float) -> None:
        """Count a snapshot that folded the log written since the previous one."""
        millis = seconds * 1000.0
        self.total_compactions += 1
        self.total_compacted_records += self.since_records
        self.total_compacted_bytes += self.since_bytes
        self.total_duration_ms += millis
        self.last_at = time.time_ns() // 1_000_000
        self.last_records, self.last_bytes = self.since_records, self.since_bytes
        self.last_duration_ms = millis
        self.since_records = self.since_bytes = 0

    def compaction_status(self, options: OnDiskStoreOptions) -> CompactionStatus:
        """Reference field names; "files" counts log records folded into a snapshot."""
        return CompactionStatus(
            enabled=options.compaction_enabled and options.indexing_enabled,
            compaction_min_files=options.compaction_min_records,
            compaction_max_bytes=options.compaction_max_bytes,
            total_compactions=self.total_compactions,
            total_compacted_files=self.total_compacted_records,
            total_compacted_bytes=self.total_compacted_bytes,
            total_compaction_duration_ms=self.total_duration_ms,
            last_compaction_at=self.last_at,
            last_compacted_files=self.last_records,
            last_compacted_bytes=self.last_bytes,
            last_compaction_duration_ms=self.last_duration_ms,
        )


# -- blocking helpers (worker threads; the caller holds _io_lock) ------------------------------
def wipe(log: SegmentLog) -> None:
    """Delete all data (exclusive lock held, ``log.forget()`` called on the loop first).

    The new epoch is written first, so a crash half-way leaves old data under a new epoch
    (peers rescan), never an emptied store under the old epoch (peers would skip new entries).
    """
    layout = log.layout
    layout.write_epoch(uuid7(), log.fsync)
    with contextlib.suppress(FileNotFoundError):
        layout.snapshot.unlink()
    for seg in layout.list_segments():
        with contextlib.suppress(FileNotFoundError):
            layout.segment(seg).unlink()
    layout.remove_temp_files()
    if log.fsync:
        fsync_dir(layout.root)
        fsync_dir(layout.segments)
    log.ensure_segment()


def read_shared(log: SegmentLog) -> CatchUp:
    log.lock(False)
    try:
        return log.read_new(False)
    finally:
        log.unlock()


def scan_shared(log: SegmentLog) -> Loaded:
    """Scan mode: read every segment into a throwaway index under the shared lock."""
    log.lock(False)
    try:
        log.files.close_all()  # another process may have replaced the files since
        return load(log, exclusive=False, use_snapshot=False)
    finally:
        log.unlock()


def write_snapshot_file(log: SegmentLog, index: LogIndex, epoch: str) -> int:
    return write_snapshot(log.layout.snapshot, index, epoch, dict(log.coverage), log.fsync)


def drop_snapshot(log: SegmentLog) -> None:
    with contextlib.suppress(FileNotFoundError):
        log.layout.snapshot.unlink()
        if log.fsync:
            fsync_dir(log.layout.root)


# -- reporting (event loop thread) -------------------------------------------------------------
def report_load(store_id: str, loaded: Loaded) -> None:
    for path in loaded.temp_removed:
        logger.info("removed a stray temp file", extra={"store": store_id, "path": str(path)})
    if loaded.rebuilt:
        logger.warning(
            "index snapshot unusable; rebuilt the index from the log",
            extra={"store": store_id, "reason": loaded.snapshot_problem},
        )
    for seg, offset, problem in loaded.problems:
        report_problem(store_id, seg, offset, problem)
    report_damage(store_id, loaded.damage, loaded.truncated)


def report_problem(store_id: str, seg: int, offset: int, problem: str) -> None:
    logger.warning(
        "log record skipped",
        extra={"store": store_id, "segment": seg, "offset": offset, "problem": problem},
    )


def report_damage(
    store_id: str, damage: list[tuple[int, Damage]], truncated: list[tuple[int, int, int]]
) -> None:
    for seg, region in damage:
        if region.torn:
            continue  # reported below when truncated; a reader just waits for the writer
        logger.error(
            "corrupted log region skipped",
            extra={"store": store_id, "segment": seg, "start": region.start, "end": region.end},
        )
    for seg, start, end in truncated:
        logger.warning(
            "truncated an unacknowledged torn tail",
            extra={"store": store_id, "segment": seg, "start": start, "end": end},
        )


def report_snapshot_failure(store_id: str, exc: OSError) -> None:
    logger.warning(
        "could not write the index snapshot", extra={"store": store_id, "error": str(exc)}
    )
