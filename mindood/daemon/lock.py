"""One daemon per data directory: an exclusive ``flock`` on ``<data>/daemon.lock``.

The kernel drops the lock when the process dies, however it dies, so a crash never leaves a stale
lock behind (unlike a pid file). The holder writes its pid into the file so that the refusal can
say who holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mindood.errors import MindoodError

LOCK_NAME = "daemon.lock"


class AlreadyRunningError(MindoodError):
    """Another daemon holds the data directory's lock."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


class InstanceLock:
    """Held from :meth:`acquire` until :meth:`release` (or process exit)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            holder = f" (pid {pid})" if pid is not None else ""
            raise AlreadyRunningError(
                f"another mindood daemon{holder} is already using the data directory "
                f"{self.path.parent}; stop it first or choose another --data-dir",
                pid,
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


__all__ = ["LOCK_NAME", "AlreadyRunningError", "InstanceLock"]
