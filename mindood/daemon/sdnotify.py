"""systemd's notify protocol, without libsystemd: datagrams of ``KEY=value`` lines.

``$NOTIFY_SOCKET`` names an ``AF_UNIX`` datagram socket: a path, or an abstract-namespace name
when it starts with ``@`` (the ``@`` stands for a leading NUL byte). We send ``READY=1`` once
serving, ``STATUS=...`` for ``systemctl status``, ``WATCHDOG=1`` every half of
``$WATCHDOG_USEC`` (if ``$WATCHDOG_PID`` is unset or ours), ``RELOADING=1`` with
``MONOTONIC_USEC=`` while reloading, and ``STOPPING=1`` when shutting down.

Without ``$NOTIFY_SOCKET`` (not under systemd) every call is a cheap no-op. A send that fails is
logged once and never raises: notifications must not take the daemon down.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger("mindood.sdnotify")

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
#: Longest a state message (READY, RELOADING, STOPPING) waits for room in systemd's queue.
STATE_SEND_WAIT = 1.0


def notify_address(env: Mapping[str, str]) -> str | bytes | None:
    """The socket address from ``$NOTIFY_SOCKET`` (bytes for the abstract namespace)."""
    raw = env.get(NOTIFY_SOCKET_ENV, "")
    if not raw:
        return None
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None  # vsock and other forms are not for us


def watchdog_interval(env: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half the timeout), or None when not asked for."""
    raw = env.get("WATCHDOG_USEC", "").strip()
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID", "").strip()
    if owner and owner != str(pid if pid is not None else os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends notify messages to the service manager, if there is one."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._address = notify_address(env)
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *lines: str, wait: float = 0.0) -> bool:
        """Send one datagram of ``KEY=value`` lines; False if not delivered.

        The receiver's queue is short (``net.unix.max_dgram_qlen``, 10 by default): state changes
        (``wait`` > 0) may block that long for room, the watchdog ping is dropped instead.
        """
        if self._address is None:
            return False
        payload = "\n".join(lines).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.settimeout(wait if wait > 0 else 0.0)
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify the service manager: %s", exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(
            "READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}", wait=STATE_SEND_WAIT
        )

    def status(self, status: str) -> bool:
        return self.send(f"STATUS={status}", wait=STATE_SEND_WAIT)

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}", wait=STATE_SEND_WAIT)

    def stopping(self, status: str = "stopping") -> bool:
        return self.send("STOPPING=1", f"STATUS={status}", wait=STATE_SEND_WAIT)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


__all__ = ["NOTIFY_SOCKET_ENV", "Notifier", "monotonic_usec", "notify_address", "watchdog_interval"]
