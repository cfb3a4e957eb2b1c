"""The record format of the append-only log segments.

Every record is a 16-byte header and a body::

    magic "\\x8bMDR" | type u8 | flags u8 (0) | reserved u16 (0) | body_len u32 LE | crc u32 LE

``crc`` is CRC-32 over the first 12 header bytes and the body, so a record is trusted only when
its whole extent verifies: a torn append (crash mid-write) or a flipped bit both fail the check.

Bodies by type:

- PAYLOAD: 32-byte SHA-256 digest, then the ciphertext. Written once per content hash.
- ENTRY: the msgpack metadata (``store.codec``) stamped with its receipt order.
- PURGE: msgpack ``[doc_id, [ids], max_receipt_order, [[seg, offset, length], ...]]``; the
  regions are the ENTRY and orphaned PAYLOAD records the purge erased.
- ERASED: zeros; a purged record overwritten in place, same length, still a valid record.
- ROLL: empty; ends a segment, so a process watching its size sees that a newer one exists.

``RecordScanner`` walks a segment and classifies every damaged region: damage followed by a
valid record is mid-segment corruption (skipped), damage that runs to the end is a torn tail.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

MAGIC = b"\x8bMDR"
HEADER = struct.Struct("<4sBBHII")
HEADER_SIZE = HEADER.size
_CRC_COVERED = 12
#: No body is larger: a 64 MiB payload plus its digest, or a purge of a very large document.
MAX_BODY = 128 * 1024 * 1024
DIGEST_SIZE = 32
_READ_CHUNK = 4 * 1024 * 1024


class RecordType(IntEnum):
    PAYLOAD = 1
    ENTRY = 2
    PURGE = 3
    ERASED = 4
    ROLL = 5


_KNOWN_TYPES = frozenset(int(t) for t in RecordType)


def encode_record(rtype: RecordType, body: bytes) -> bytes:
    """One complete record: header (with CRC) and body."""
    head = struct.pack("<4sBBHI", MAGIC, int(rtype), 0, 0, len(body))
    crc = zlib.crc32(body, zlib.crc32(head))
    return head + crc.to_bytes(4, "little") + body


def encode_payload(digest: bytes, data: bytes) -> bytes:
    return encode_record(RecordType.PAYLOAD, digest + data)


def erased_record(total_len: int) -> bytes:
    """A valid ERASED record exactly ``total_len`` bytes long, to overwrite a purged record."""
    return encode_record(RecordType.ERASED, bytes(total_len - HEADER_SIZE))


def payload_extent(offset: int, total_len: int) -> tuple[int, int]:
    """Where the ciphertext of a PAYLOAD record at ``offset`` lies: ``(offset, length)``."""
    start = offset + HEADER_SIZE + DIGEST_SIZE
    return start, total_len - HEADER_SIZE - DIGEST_SIZE


@dataclass(frozen=True, slots=True)
class Record:
    """One verified record; ``body`` views the read buffer (and keeps it alive)."""

    offset: int
    rtype: RecordType
    body: memoryview

    @property
    def total_len(self) -> int:
        return HEADER_SIZE + len(self.body)


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes ``[start, end)`` that are not a valid record; ``torn`` when nothing valid follows."""

    start: int
    end: int
    torn: bool


class _Window:
    """Buffered positional reads of one file, so a scan costs few syscalls."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self.size = size
        self._buf = b""
        self._start = 0

    def get(self, pos: int, length: int) -> memoryview | None:
        """``length`` bytes at ``pos``, or None if the file is shorter."""
        if pos + length > self.size:
            return None
        end = self._start + len(self._buf)
        if not (self._start <= pos and pos + length <= end):
            want = min(max(length, _READ_CHUNK), self.size - pos)
            self._buf = os.pread(self._fd, want, pos)
            self._start = pos
            if len(self._buf) < length:  # the file shrank under us
                self.size = pos + len(self._buf)
                return None
        rel = pos - self._start
        return memoryview(self._buf)[rel : rel + length]


def _check_at(window: _Window, pos: int) -> int | None:
    """The body length of a valid record at ``pos``, or None."""
    head = window.get(pos, HEADER_SIZE)
    if head is None:
        return None
    magic, rtype, flags, reserved, body_len, crc = HEADER.unpack(head)
    if magic != MAGIC or rtype not in _KNOWN_TYPES or flags or reserved or body_len > MAX_BODY:
        return None
    crc_head = zlib.crc32(head[:_CRC_COVERED])
    whole = window.get(pos, HEADER_SIZE + body_len)
    if whole is None:
        return None
    if zlib.crc32(whole[HEADER_SIZE:], crc_head) != crc:
        return None
    return int(body_len)


class RecordScanner:
    """Iterates the valid records of one segment from ``start`` to its current end.

    Damaged regions are reported in ``damage`` (in order); ``end`` is where a reader should
    resume: the end of the last valid record, or the start of a torn tail.
    """

    def __init__(self, fd: int, start: int, size: int | None = None) -> None:
        self._window = _Window(fd, os.fstat(fd).st_size if size is None else size)
        self.start = start
        self.end = start
        self.damage: list[Damage] = []

    @property
    def size(self) -> int:
        return self._window.size

    def __iter__(self) -> Iterator[Record]:
        window = self._window
        pos = self.start
        while pos < window.size:
            body_len = _check_at(window, pos)
            if body_len is None:
                resume = self._resync(pos + 1)
                if resume is None:
                    self.damage.append(Damage(pos, window.size, torn=True))
                    break
                self.damage.append(Damage(pos, resume, torn=False))
                pos = resume
                continue
            whole = window.get(pos, HEADER_SIZE + body_len)
            assert whole is not None  # _check_at just read it
            yield Record(pos, RecordType(whole[4]), whole[HEADER_SIZE:])
            pos += HEADER_SIZE + body_len
            self.end = pos
        self.end = pos

    def _resync(self, pos: int) -> int | None:
        """The offset of the next valid record at or after ``pos``, or None."""
        window = self._window
        while pos < window.size:
            chunk = window.get(pos, min(_READ_CHUNK, window.size - pos))
            if chunk is None:
                return None
            data = chunk.tobytes()
            found = data.find(MAGIC)
            while found >= 0:
                if _check_at(window, pos + found) is not None:
                    return pos + found
                # _check_at may have moved the window; re-read relative to pos afterwards
                found = data.find(MAGIC, found + 1)
            pos += max(1, len(data) - len(MAGIC) + 1)
        return None
