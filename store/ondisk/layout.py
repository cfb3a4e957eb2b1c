"""Where things live under a store directory, and the atomic-file primitives.

::

    <path>/LOCK               fcntl.flock target: exclusive per write batch, shared to catch up
    <path>/epoch              the store's epoch (uuid7), replaced atomically on clear
    <path>/index.snap         checksummed snapshot of the whole index (see ``snapshot``)
    <path>/segments/NNNNNNNN.log   append-only record logs (see ``records``), numbered from 1

Whole files are replaced atomically: a temp file in the same directory is written, fsynced and
renamed over the target, then the directory is fsynced so the rename itself is durable.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = "LOCK"
EPOCH_NAME = "epoch"
SNAPSHOT_NAME = "index.snap"
SEGMENTS_DIR = "segments"
_TMP_MARK = ".tmp-"
_SEGMENT_NAME = re.compile(r"^(\d{8})\.log$")


class Layout:
    """The paths of one store directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = root / LOCK_NAME
        self.epoch = root / EPOCH_NAME
        self.snapshot = root / SNAPSHOT_NAME
        self.segments = root / SEGMENTS_DIR

    def segment(self, number: int) -> Path:
        return self.segments / f"{number:08d}.log"

    def create_dirs(self) -> None:
        self.segments.mkdir(parents=True, exist_ok=True)

    def list_segments(self) -> list[int]:
        """Numbers of the existing segment files, ascending."""
        numbers: list[int] = []
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.segments):
                match = _SEGMENT_NAME.match(name)
                if match is not None:
                    numbers.append(int(match.group(1)))
        return sorted(numbers)

    def remove_temp_files(self) -> list[Path]:
        """Delete temp files a crashed writer left behind (call under the exclusive lock)."""
        removed: list[Path] = []
        for folder in (self.root, self.segments):
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(folder):
                    if _TMP_MARK in name:
                        with contextlib.suppress(FileNotFoundError):
                            (folder / name).unlink()
                            removed.append(folder / name)
        return removed

    def read_epoch(self) -> str | None:
        """The stored epoch, or None if missing or not a UUID."""
        try:
            text = self.epoch.read_text("ascii").strip()
            uuid.UUID(text)
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        return text

    def write_epoch(self, epoch: str, durable: bool = True) -> None:
        atomic_write(self.epoch, (epoch + "\n").encode("ascii"), durable)


def fsync_dir(path: Path) -> None:
    """Make creations, renames and deletions inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(target: Path) -> Path:
    return target.with_name(f"{target.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


@contextlib.contextmanager
def atomic_file(target: Path, durable: bool = True) -> Iterator[int]:
    """A descriptor of a fresh temp file that replaces ``target`` when the block ends cleanly.

    The one place of the crash protocol: write, fsync, rename, fsync the directory; on any
    error the temp file is removed and ``target`` is untouched.
    """
    tmp = temp_path(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        yield fd
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, target)
    if durable:
        fsync_dir(target.parent)


def atomic_write(target: Path, data: bytes | list[bytes], durable: bool = True) -> None:
    """Replace ``target`` with ``data`` so a reader sees the old or the new file, never a mix."""
    parts = data if isinstance(data, list) else [data]
    with atomic_file(target, durable) as fd:
        for part in parts:
            view = memoryview(part)
            while view:
                written = os.write(fd, view)
                view = view[written:]


def write_all(fd: int, data: bytes, offset: int) -> None:
    """``pwrite`` all of ``data`` at ``offset`` (pwrite may write less than asked)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
