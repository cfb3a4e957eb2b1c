"""How much of the write-ahead log still waits for a checkpoint, read from SQLite's WAL index.

The WAL file's size is not that: after a complete checkpoint SQLite restarts the log from its
beginning and overwrites the old frames, so the file keeps its largest size while holding
little. A trigger on the file's size therefore checkpointed after nearly every commit once the
file had reached it, and each of those checkpoints added two fsyncs (log and database) beside
the commit's own. The WAL index (the ``-shm`` file, laid out in SQLite's "WAL-mode file
formats" document) holds the count of valid frames (``mxFrame``, in the header) and of frames
already copied into the database (``nBackfill``, in the checkpoint information after the
header's two copies); their difference is the backlog.

Read with one ``pread`` in the writer's thread right after a commit. A header whose two copies
differ (another process is writing it) or that is not initialised answers None, and the caller
falls back to the file's size: an estimate that errs towards checkpointing more.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path

#: Two copies of the 48-byte header, then the checkpoint information (``nBackfill`` first).
_HEADER = 48
_READ = 2 * _HEADER + 4
#: ``isInit`` (u8), ``szPage`` (u16) and ``mxFrame`` (u32) in a header, native byte order.
_FIELDS = struct.Struct("=12xBxHI")
_BACKFILL = struct.Struct("=I")
#: Bytes of a frame's own header in the log, before the page.
FRAME_HEADER = 24


def backlog_bytes(header: bytes) -> int | None:
    """Bytes of log frames not yet copied into the database, or None if ``header`` is unusable."""
    if len(header) < _READ or header[:_HEADER] != header[_HEADER : 2 * _HEADER]:
        return None
    is_init, page_size, max_frame = _FIELDS.unpack_from(header)
    if not is_init:
        return None
    (backfilled,) = _BACKFILL.unpack_from(header, 2 * _HEADER)
    frame = (65536 if page_size == 1 else int(page_size)) + FRAME_HEADER
    return max(0, int(max_frame) - int(backfilled)) * frame


class WalIndex:
    """The ``-shm`` file of one database, opened once and read after each commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def backlog(self) -> int | None:
        """Bytes waiting for a checkpoint, or None when the index cannot tell."""
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY)
            return backlog_bytes(os.pread(self._fd, _READ, 0))
        except OSError:
            return None

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
