"""Building the index from disk: snapshot plus log tail, or a full scan of every segment.

``load`` runs in a worker thread and builds a fresh ``LogIndex`` that nothing else sees yet.
With a valid snapshot it replays only the records written after it; if the snapshot is missing,
damaged, from another epoch, or claims more log than exists, every segment is scanned (a
rebuild), with progress reported as bytes scanned over bytes to scan.

Holding the exclusive lock it also repairs: stray temp files are deleted, a missing epoch is
written, a torn tail of the newest segment is truncated. Without it (a reader re-loading after
another process cleared the store) it only reads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from store.errors import StoreCorruptionError
from store.ids import uuid7
from store.ondisk.index import LogIndex, Region
from store.ondisk.log import SegmentLog
from store.ondisk.records import Damage, RecordScanner
from store.ondisk.snapshot import SnapshotError, read_snapshot


@dataclass(frozen=True, slots=True)
class RecoveryProgress:
    """Where opening a store stands; ``phase`` is "snapshot", "replay", "rebuild" or "ready"."""

    phase: str
    progress01: float
    bytes_done: int = 0
    bytes_total: int = 0


ProgressSink = Callable[[RecoveryProgress], None]


@dataclass(slots=True)
class Loaded:
    """A freshly built index and everything the store should know about how it was built."""

    index: LogIndex
    epoch: str
    tail_seg: int = 1
    tail_pos: int = 0
    coverage: dict[int, int] = field(default_factory=dict)
    stuck_size: int | None = None
    rebuilt: bool = False
    snapshot_problem: str | None = None
    tail_records: int = 0
    tail_bytes: int = 0
    damage: list[tuple[int, Damage]] = field(default_factory=list)
    problems: list[tuple[int, int, str]] = field(default_factory=list)
    erase: list[Region] = field(default_factory=list)
    truncated: list[tuple[int, int, int]] = field(default_factory=list)
    temp_removed: list[Path] = field(default_factory=list)


def _valid_coverage(coverage: dict[int, int], sizes: dict[int, int]) -> str | None:
    """Why a snapshot's coverage does not fit the segments on disk, or None."""
    for seg, covered in coverage.items():
        size = sizes.get(seg)
        if size is None:
            return f"segment {seg} it covers is missing"
        if size < covered:
            return f"segment {seg} is {size} bytes, the snapshot covers {covered}"
    last = max(coverage, default=0)
    uncovered = [seg for seg in sizes if seg not in coverage and seg < last]
    if uncovered:
        return f"segments {uncovered} are older than the snapshot but not in it"
    return None


def load(
    log: SegmentLog,
    *,
    exclusive: bool,
    use_snapshot: bool,
    progress: ProgressSink | None = None,
) -> Loaded:
    """Build the index of the store behind ``log`` (see the module docstring)."""
    layout = log.layout
    temps: list[Path] = []
    epoch = layout.read_epoch()
    if exclusive:
        temps = layout.remove_temp_files()
        if epoch is None:
            epoch = uuid7()
            layout.write_epoch(epoch, log.fsync)
        log.ensure_segment()
    if epoch is None:
        raise StoreCorruptionError(f"store at {layout.root} has no epoch file")
    segments = layout.list_segments()
    sizes = {seg: os.stat(layout.segment(seg)).st_size for seg in segments}
    loaded = Loaded(LogIndex(), epoch, temp_removed=temps)
    starts: dict[int, int] = {}
    if use_snapshot:
        if progress is not None:
            progress(RecoveryProgress("snapshot", 0.0))
        try:
            snap = read_snapshot(layout.snapshot)
            problem = (
                "it belongs to another epoch"
                if snap.epoch != epoch
                else _valid_coverage(snap.coverage, sizes)
            )
            if problem is not None:
                raise SnapshotError(problem)
            loaded.index, starts = snap.index, snap.coverage
        except FileNotFoundError:
            loaded.snapshot_problem = "missing"
        except SnapshotError as exc:
            loaded.snapshot_problem = str(exc)
    total = sum(max(0, sizes[seg] - starts.get(seg, 0)) for seg in segments)
    loaded.rebuilt = use_snapshot and loaded.snapshot_problem is not None and total > 0
    phase = "rebuild" if loaded.rebuilt else "replay"
    _replay(log, loaded, segments, starts, exclusive, phase, total, progress)
    if progress is not None:
        progress(RecoveryProgress("ready", 1.0, total, total))
    return loaded


def _replay(
    log: SegmentLog,
    loaded: Loaded,
    segments: list[int],
    starts: dict[int, int],
    exclusive: bool,
    phase: str,
    total: int,
    progress: ProgressSink | None,
) -> None:
    index = loaded.index
    done = 0
    step = max(total // 100, 1 << 20)
    next_report = 0
    for number, seg in enumerate(segments):
        start = starts.get(seg, 0)
        last = number == len(segments) - 1
        fd = log.files.acquire(seg)
        try:
            scanner = RecordScanner(fd, start)
            for record in scanner:
                problem, erase = index.apply(seg, record)
                if problem is not None:
                    loaded.problems.append((seg, record.offset, problem))
                loaded.erase.extend(erase)
                loaded.tail_records += 1
                if progress is not None and done + record.offset - start >= next_report:
                    current = done + record.offset - start
                    progress(
                        RecoveryProgress(phase, current / total if total else 1.0, current, total)
                    )
                    next_report = current + step
        finally:
            log.files.release(seg, fd)
        done += max(0, scanner.size - start)
        for damage in scanner.damage:
            loaded.damage.append((seg, Damage(damage.start, damage.end, damage.torn and last)))
        if last:
            loaded.tail_seg, loaded.tail_pos = seg, scanner.end
            loaded.coverage[seg] = scanner.end
            if scanner.end < scanner.size:
                if exclusive:
                    log.truncate(seg, scanner.end)
                    loaded.truncated.append((seg, scanner.end, scanner.size))
                else:
                    loaded.stuck_size = scanner.size
        else:
            loaded.coverage[seg] = scanner.size
    loaded.tail_bytes = done
