"""A record, outside the database, of the newest commit a store acknowledged.

SQLite recovers from crashes by itself, but not from losing committed transactions: a deleted,
truncated or torn write-ahead log, or an older copy of the file put back, opens cleanly with
entries missing and receipt orders that will be handed out again. Peers holding cursors past
that point would then skip new entries for ever. After every commit the store writes
``(epoch, max_receipt_order)`` here; an open that finds the database behind it knows data was
lost, says so, and starts a new epoch so every peer rescans.

The write is a ``pwrite`` without fsync: the witness may lag behind the database (after a power
loss, or when two processes race), never run ahead of it, because it is written only after
the commit it describes is durable. Lagging is harmless; only "database behind witness" counts.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

_MAGIC = b"MDWT"
_LAYOUT = struct.Struct(">4sB36sQ")
_SIZE = _LAYOUT.size + 4


@dataclass(frozen=True, slots=True)
class Witnessed:
    epoch: str
    max_receipt_order: int


def encode(seen: Witnessed) -> bytes:
    body = _LAYOUT.pack(_MAGIC, 1, seen.epoch.encode("ascii"), seen.max_receipt_order)
    return body + struct.pack(">I", zlib.crc32(body))


def decode(data: bytes) -> Witnessed | None:
    """The record, or None when it is missing, torn or not ours (then it proves nothing)."""
    if len(data) < _SIZE:
        return None
    body, (crc,) = data[: _LAYOUT.size], struct.unpack(">I", data[_LAYOUT.size : _SIZE])
    if zlib.crc32(body) != crc:
        return None
    magic, version, epoch, order = _LAYOUT.unpack(body)
    if magic != _MAGIC or version != 1:
        return None
    try:
        return Witnessed(epoch.decode("ascii"), order)
    except UnicodeDecodeError:
        return None


class Witness:
    """The witness file of one store, kept open for cheap writes after each commit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def read(self) -> Witnessed | None:
        try:
            return decode(self.path.read_bytes())
        except FileNotFoundError:
            return None

    def write(self, seen: Witnessed) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(self._fd, encode(seen), 0)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def lost_commits(database: Witnessed, witnessed: Witnessed | None) -> str | None:
    """Why the database is behind what was acknowledged, or None if it is not.

    Epochs are uuid7 strings, so they sort by creation time: a database whose epoch is older
    than the witness's was put back from before a clear; a newer one means the witness lags.
    """
    if witnessed is None:
        return None
    if database.epoch == witnessed.epoch:
        if database.max_receipt_order < witnessed.max_receipt_order:
            return (
                f"the database ends at receipt order {database.max_receipt_order} but "
                f"{witnessed.max_receipt_order} was acknowledged (write-ahead log lost or torn, "
                "or an older copy of the file)"
            )
        return None
    if database.epoch < witnessed.epoch:
        return f"the database is from epoch {database.epoch}, older than the acknowledged one"
    return None
