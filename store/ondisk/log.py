"""Blocking file I/O on the segment log; every method here runs in a worker thread.

``SegmentLog`` owns the LOCK file descriptor, the descriptors of the segments, and the reading
position (``tail_seg``, ``tail_pos``, ``coverage``). The position is only changed by
``commit_position``, called on the event loop thread after the records read up to it have been
applied to the index, so a cancelled or failed step re-reads instead of skipping records.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from store.errors import StoreCorruptionError
from store.ondisk.index import Region
from store.ondisk.layout import Layout, fsync_dir, write_all
from store.ondisk.records import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    Damage,
    Record,
    RecordScanner,
    RecordType,
    encode_record,
    erased_record,
)

_ROLL = encode_record(RecordType.ROLL, b"")


@dataclass(slots=True)
class CatchUp:
    """Records appended since the last committed position, and where reading stopped."""

    records: list[tuple[int, Record]] = field(default_factory=list)
    damage: list[tuple[int, Damage]] = field(default_factory=list)
    tail_seg: int = 0
    tail_pos: int = 0
    coverage: dict[int, int] = field(default_factory=dict)
    stuck_size: int | None = None
    truncated: list[tuple[int, int, int]] = field(default_factory=list)
    reload: bool = False
    bytes_read: int = 0


class SegmentFiles:
    """Read-only descriptors of segments, kept open up to a cap (least recently used closed).

    A descriptor in use by a reader thread is never closed under it: ``acquire``/``release``
    count users, and an evicted descriptor is closed by its last user.
    """

    def __init__(self, layout: Layout, cap: int) -> None:
        self._layout = layout
        self._cap = max(2, cap)
        self._lock = threading.Lock()
        self._open: OrderedDict[int, list[int]] = OrderedDict()  # seg -> [fd, users]
        self._retired: dict[int, list[int]] = {}  # fd -> [fd, users] for evicted in-use fds

    def acquire(self, seg: int) -> int:
        with self._lock:
            item = self._open.get(seg)
            if item is not None:
                self._open.move_to_end(seg)
                item[1] += 1
                return item[0]
        fd = os.open(self._layout.segment(seg), os.O_RDONLY)
        with self._lock:
            item = self._open.get(seg)
            if item is not None:  # another thread opened it meanwhile
                os.close(fd)
                item[1] += 1
                return item[0]
            self._open[seg] = [fd, 1]
            while len(self._open) > self._cap:
                _old, victim = self._open.popitem(last=False)
                if victim[1] == 0:
                    os.close(victim[0])
                else:
                    self._retired[victim[0]] = victim
            return fd

    def release(self, seg: int, fd: int) -> None:
        with self._lock:
            item = self._open.get(seg)
            if item is not None and item[0] == fd:
                item[1] -= 1
                return
            retired = self._retired.get(fd)
            if retired is not None:
                retired[1] -= 1
                if retired[1] == 0:
                    del self._retired[fd]
                    os.close(fd)

    def pread(self, seg: int, length: int, offset: int) -> bytes:
        fd = self.acquire(seg)
        try:
            return os.pread(fd, length, offset)
        finally:
            self.release(seg, fd)

    def close_all(self) -> None:
        with self._lock:
            for fd, users in self._open.values():
                if users == 0:
                    os.close(fd)
                else:
                    self._retired[fd] = [fd, users]
            self._open.clear()


class SegmentLog:
    """The LOCK file, the segments, and this instance's reading position in them."""

    def __init__(self, layout: Layout, fsync: bool, max_open: int) -> None:
        self.layout = layout
        self.fsync = fsync
        self.files = SegmentFiles(layout, max_open)
        self._lock_fd = -1
        self._write_fd = -1
        self._write_seg = 0
        self._tail_fd = -1
        self.tail_seg = 1
        self.tail_pos = 0
        self.stuck_size: int | None = None
        self.coverage: dict[int, int] = {}

    # -- locking -----------------------------------------------------------------------------
    def open_lock(self) -> None:
        self.layout.create_dirs()
        if self._lock_fd < 0:
            self._lock_fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT, 0o600)

    def lock(self, exclusive: bool) -> None:
        """Block until this instance holds LOCK (callers serialise use within a process)."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)

    def unlock(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    # -- position ----------------------------------------------------------------------------
    def commit_position(
        self,
        tail_seg: int,
        tail_pos: int,
        coverage: dict[int, int],
        stuck: int | None,
        replace: bool = False,
    ) -> None:
        """Adopt a reading position (event loop thread, after applying what led to it)."""
        if tail_seg != self.tail_seg or self._tail_fd < 0:
            self._close_fd("_tail_fd")
            self._tail_fd = os.open(self.layout.segment(tail_seg), os.O_RDONLY)
        self.tail_seg, self.tail_pos, self.stuck_size = tail_seg, tail_pos, stuck
        if replace:
            self.coverage = dict(coverage)
        else:
            self.coverage.update(coverage)

    def unchanged(self) -> bool:
        """True if nobody appended since our position: one ``fstat``, no lock."""
        if self._tail_fd < 0:
            return False
        st = os.fstat(self._tail_fd)
        return st.st_nlink > 0 and st.st_size in (self.tail_pos, self.stuck_size)

    def forget(self) -> None:
        """Drop every descriptor and position (files replaced); event loop thread only, since
        ``unchanged`` reads the tail descriptor there without a lock."""
        self.files.close_all()
        self._close_fd("_tail_fd")
        self._close_fd("_write_fd")
        self._write_seg = 0
        self.tail_seg, self.tail_pos, self.stuck_size = 1, 0, None
        self.coverage = {}

    def _close_fd(self, name: str) -> None:
        fd = getattr(self, name)
        if fd >= 0:
            os.close(fd)
            setattr(self, name, -1)

    def close(self) -> None:
        self.forget()
        self._close_fd("_lock_fd")

    # -- reading -----------------------------------------------------------------------------
    def read_new(self, exclusive: bool) -> CatchUp:
        """Records after our position, in every segment up to the newest.

        Damage in an older segment is skipped; a torn tail of the newest segment is where
        reading stops (and, holding the exclusive lock, is truncated away: it was never
        acknowledged, since its writer's fsync had not returned).
        """
        out = CatchUp(tail_seg=self.tail_seg, tail_pos=self.tail_pos)
        if self._tail_fd >= 0 and os.fstat(self._tail_fd).st_nlink == 0:
            out.reload = True
            return out
        seg, pos = self.tail_seg, self.tail_pos
        while True:
            try:
                fd = self.files.acquire(seg)
            except FileNotFoundError:
                out.reload = True
                return out
            try:
                scanner = RecordScanner(fd, pos)
                out.records.extend((seg, record) for record in scanner)
            finally:
                self.files.release(seg, fd)
            out.bytes_read += scanner.size - pos
            newer = self.layout.segment(seg + 1).exists()
            for d in scanner.damage:  # a "torn tail" of an older segment is plain corruption
                out.damage.append((seg, Damage(d.start, d.end, d.torn and not newer)))
            if newer:
                out.coverage[seg] = scanner.size
                seg, pos = seg + 1, 0
                continue
            out.tail_seg, out.tail_pos = seg, scanner.end
            out.coverage[seg] = scanner.end
            if scanner.end < scanner.size:
                if exclusive:
                    self.truncate(seg, scanner.end)
                    out.truncated.append((seg, scanner.end, scanner.size))
                else:
                    out.stuck_size = scanner.size
            return out

    def truncate(self, seg: int, length: int) -> None:
        fd = os.open(self.layout.segment(seg), os.O_WRONLY)
        try:
            os.ftruncate(fd, length)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def pread(self, seg: int, length: int, offset: int) -> bytes:
        return self.files.pread(seg, length, offset)

    # -- writing (exclusive lock held, position caught up) -----------------------------------
    def ensure_segment(self) -> None:
        """Create segment 1 of an empty store."""
        if not self.layout.list_segments():
            self._create_segment(1)

    def _create_segment(self, seg: int) -> None:
        fd = os.open(self.layout.segment(seg), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        if self.fsync:
            fsync_dir(self.layout.segments)

    def _writer(self, seg: int) -> int:
        if self._write_seg != seg or self._write_fd < 0:
            self._close_fd("_write_fd")
            self._write_fd = os.open(self.layout.segment(seg), os.O_WRONLY)
            self._write_seg = seg
        return self._write_fd

    def append(self, data: bytes, segment_max: int) -> tuple[int, int, dict[int, int]]:
        """Write ``data`` at the end of the log with one fsync; return ``(seg, offset, coverage)``.

        Starts a new segment first when this one would grow past ``segment_max``. On a write
        error the partial append is cut off again before the error propagates.
        """
        seg, end = self.tail_seg, self.tail_pos
        fd = self._writer(seg)
        size = os.fstat(fd).st_size
        if size < end:
            raise StoreCorruptionError(f"segment {seg} shrank below the position already read")
        if size > end:  # unread bytes past a torn tail: not ours to keep
            os.ftruncate(fd, end)
        coverage: dict[int, int] = {}
        if end > 0 and end + len(data) > segment_max:
            self._create_segment(seg + 1)
            write_all(fd, _ROLL, end)
            if self.fsync:  # else a power cut could leave a torn ROLL (logged as damage)
                os.fdatasync(fd)
            coverage[seg] = end + len(_ROLL)
            seg, end = seg + 1, 0
            fd = self._writer(seg)
        try:
            write_all(fd, data, end)
            if self.fsync:
                os.fdatasync(fd)
        except BaseException:
            os.ftruncate(fd, end)
            raise
        coverage[seg] = end + len(data)
        return seg, end, coverage

    def erase(self, regions: list[Region]) -> int:
        """Overwrite purged records with ERASED records of the same length; return how many.

        A region already erased is left alone, so replaying a purge repeats nothing.
        """
        erased = 0
        touched: dict[int, int] = {}
        try:
            for seg, offset, length in sorted(regions):
                if length < HEADER_SIZE:
                    continue
                fd = touched.get(seg)
                if fd is None:
                    try:
                        fd = os.open(self.layout.segment(seg), os.O_RDWR)
                    except FileNotFoundError:
                        continue
                    touched[seg] = fd
                head = os.pread(fd, HEADER_SIZE, offset)
                if len(head) < HEADER_SIZE:
                    continue
                magic, rtype, _f, _r, body_len, _crc = HEADER.unpack(head)
                if (
                    magic == MAGIC
                    and rtype == RecordType.ERASED
                    and body_len + HEADER_SIZE == length
                ):
                    continue
                write_all(fd, erased_record(length), offset)
                erased += 1
            if self.fsync:
                for fd in touched.values():
                    os.fdatasync(fd)
        finally:
            for fd in touched.values():
                os.close(fd)
        return erased
