"""The index snapshot: the whole ``LogIndex`` and the log position it covers, in one file.

Cold open loads it and replays only the log written after it, instead of scanning every
segment. Format (written atomically, see ``layout.atomic_write``)::

    b"MDSNAP01" | u32 LE format (1) | u32 LE crc32(body) | u64 LE len(body) | body
    body = msgpack stream:
        [epoch, [[segment, covered_length]...], max_receipt_order, n_payloads, n_entries,
         [shared strings...]]
        n_payloads x [sha256 digest (32 bytes), segment, offset, record_length]
        n_entries  x [metadata array, segment, offset, record_length]   (in receipt order)

Author keys and key ids repeat across entries, so metadata fields 7 and 8 hold an index into
the shared strings. Any mismatch (magic, length, CRC, counts, shapes) raises
``SnapshotError`` and the caller rebuilds from the segments, which are the source of truth.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from store.codec import metadata_to_wire
from store.ondisk.index import LogIndex, meta_from_wire_trusted
from store.ondisk.layout import atomic_file

MAGIC = b"MDSNAP01"
FORMAT = 1
_HEADER = struct.Struct("<8sIIQ")
_FLUSH_BYTES = 4 * 1024 * 1024


class SnapshotError(Exception):
    """A snapshot file is missing, damaged or from another layout; rebuild instead."""


@dataclass(frozen=True, slots=True)
class LoadedSnapshot:
    epoch: str
    coverage: dict[int, int]
    index: LogIndex
    size: int


def write_snapshot(
    path: Path, index: LogIndex, epoch: str, coverage: dict[int, int], durable: bool
) -> int:
    """Atomically replace the snapshot at ``path``; return its size in bytes."""
    strings: dict[str, int] = {}

    def ref(text: str) -> int:
        number = strings.get(text)
        if number is None:
            number = strings[text] = len(strings)
        return number

    packer = msgpack.Packer(use_bin_type=True)
    chunks: list[bytes] = []
    for digest, payload in index.payloads.items():
        chunks.append(
            packer.pack([bytes.fromhex(digest), payload.seg, payload.offset, payload.length])
        )
    for _order, entry_id in index.order:
        slot = index.entries[entry_id]
        wire = metadata_to_wire(slot.meta)
        wire[7] = ref(wire[7])
        wire[8] = ref(wire[8])
        chunks.append(packer.pack([wire, slot.seg, slot.offset, slot.length]))
    head = [
        epoch,
        [[seg, length] for seg, length in sorted(coverage.items())],
        index.max_receipt_order,
        len(index.payloads),
        len(index.entries),
        list(strings),
    ]
    body_head = packer.pack(head)
    with atomic_file(path, durable) as fd:
        crc = zlib.crc32(body_head)
        length = len(body_head)
        os.pwrite(fd, bytes(_HEADER.size), 0)
        pos = _HEADER.size
        pending = [body_head]
        pending_bytes = len(body_head)
        for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
            length += len(chunk)
            pending.append(chunk)
            pending_bytes += len(chunk)
            if pending_bytes >= _FLUSH_BYTES:
                pos += _write(fd, b"".join(pending), pos)
                pending, pending_bytes = [], 0
        pos += _write(fd, b"".join(pending), pos)
        _write(fd, _HEADER.pack(MAGIC, FORMAT, crc, length), 0)
    return pos


def _write(fd: int, data: bytes, offset: int) -> int:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
    return len(data)


def read_snapshot(path: Path) -> LoadedSnapshot:
    """Load and verify a snapshot; raise ``SnapshotError`` (or FileNotFoundError)."""
    data = path.read_bytes()
    if len(data) < _HEADER.size:
        raise SnapshotError("snapshot shorter than its header")
    magic, fmt, crc, length = _HEADER.unpack_from(data)
    if magic != MAGIC or fmt != FORMAT:
        raise SnapshotError("not a snapshot of this format")
    body = memoryview(data)[_HEADER.size :]
    if len(body) != length:
        raise SnapshotError(f"snapshot body is {len(body)} bytes, header says {length}")
    if zlib.crc32(body) != crc:
        raise SnapshotError("snapshot checksum mismatch")
    try:
        return _decode(body, len(data))
    except (ValueError, TypeError, KeyError, IndexError, msgpack.UnpackException) as exc:
        raise SnapshotError(f"snapshot body malformed: {exc}") from exc


def _decode(body: memoryview, size: int) -> LoadedSnapshot:
    unpacker = msgpack.Unpacker(raw=False, use_list=True, max_buffer_size=len(body) + 1)
    unpacker.feed(body)
    head: Any = next(unpacker)
    epoch, coverage_list, max_order, n_payloads, n_entries, strings = head
    if not isinstance(epoch, str) or not isinstance(strings, list):
        raise ValueError("snapshot head has wrong types")
    coverage = {int(seg): int(length) for seg, length in coverage_list}
    index = LogIndex()
    shared = index.strings
    for _ in range(int(n_payloads)):
        digest, seg, offset, length = next(unpacker)
        index.add_payload(bytes(digest).hex(), seg, offset, length)
    for _ in range(int(n_entries)):
        wire, seg, offset, length = next(unpacker)
        wire[7] = strings[wire[7]]
        wire[8] = strings[wire[8]]
        meta = meta_from_wire_trusted(wire, shared)
        problem = index.add_entry(meta, seg, offset, length)
        if problem is not None:
            raise ValueError(f"snapshot entry {meta.id[:80]!r}: {problem}")
    with contextlib.suppress(StopIteration):
        next(unpacker)
        raise ValueError("trailing data after the snapshot entries")
    index.max_receipt_order = max(index.max_receipt_order, int(max_order))
    return LoadedSnapshot(epoch, coverage, index, size)
