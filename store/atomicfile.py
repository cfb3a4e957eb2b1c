"""Whole-file replacement that a crash cannot leave half done.

A temp file in the same directory is written, fsynced and renamed over the target, then the
directory is fsynced so the rename itself is durable. Used for the small files around the stores
(tenant metadata, the daemon's identity); the stores themselves live in SQLite.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

_TMP_MARK = ".tmp-"


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

    On any error the temp file is removed and ``target`` is untouched.
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


def atomic_write(target: Path, data: bytes, durable: bool = True) -> None:
    """Replace ``target`` with ``data`` so a reader sees the old or the new file, never a mix."""
    with atomic_file(target, durable) as fd:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
