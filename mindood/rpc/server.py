"""The Unix-socket RPC server: a private socket, peer uid checks, one task per connection.

The socket file is bound, made ``0600`` and only then put into listening state, so no other user
can ever connect in between (``connect()`` to a bound socket that is not listening is refused).
The kernel's ``SO_PEERCRED`` gives the uid of each connecting process; only the daemon's own
uid and root are served, everyone else gets a ``PermissionDeniedError`` frame and is dropped.

A leftover socket file from a crashed daemon is removed after probing it (nothing answers); a
socket some other live daemon is listening on is never taken over.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mindood.errors import MindoodError
from mindood.rpc.connection import Connection, Dispatcher, PeerCred
from mindood.rpc.errors import LimitExceededError, PermissionDeniedError, error_to_wire
from mindood.rpc.wire import FrameLimits, response_frame

log = logging.getLogger("mindood.rpc")

#: ``sockaddr_un.sun_path`` is 108 bytes on Linux, including the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107
_PEERCRED = struct.Struct("3i")
#: How long a refused client gets to read why before its socket closes.
REFUSAL_LINGER = 2.0
#: Refused sockets kept open at once; beyond it a refusal closes at once (a flood stays cheap).
MAX_LINGERING = 64


class SocketBindError(MindoodError):
    """The RPC socket cannot be created (path in use by a live daemon, not a socket, too long)."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What a new connection gets; replaced as a whole on configuration reload."""

    frame: FrameLimits = field(default_factory=FrameLimits)
    max_connections: int = 64
    max_inflight_per_connection: int = 16


def peer_credentials(sock: socket.socket) -> PeerCred:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return PeerCred(pid, uid, gid)


def _remove_stale_socket(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketBindError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale socket %s", path)
        path.unlink(missing_ok=True)
        return
    except OSError as exc:
        raise SocketBindError(f"cannot probe existing socket {path}: {exc}") from exc
    finally:
        probe.close()
    raise SocketBindError(f"another process is already listening on {path}")


def bind_private_socket(path: Path) -> socket.socket:
    """A listening Unix socket at ``path`` that only its owner (and root) can connect to."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise SocketBindError(f"socket path is longer than {MAX_SOCKET_PATH_BYTES} bytes: {path}")
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise SocketBindError(f"cannot listen on {path}: {exc}") from exc
    return sock


class RpcServer:
    """Serves ``dispatch`` on a Unix socket until :meth:`close`; run :meth:`serve` as a task."""

    def __init__(
        self,
        path: Path,
        dispatch: Dispatcher,
        *,
        limits: ServerLimits | None = None,
        allowed_uids: Iterable[int] | None = None,
        shutdown_grace: float = 10.0,
    ) -> None:
        self.path = path
        self.limits = limits or ServerLimits()
        self.shutdown_grace = shutdown_grace
        self._dispatch = dispatch
        #: Who may connect: by default the daemon's own uid and root.
        self._allowed = set(allowed_uids) if allowed_uids is not None else {os.getuid(), 0}
        self._sock: socket.socket | None = None
        self._closing = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None
        self._connections: dict[Connection, asyncio.Task[None]] = {}
        self._lingering: set[asyncio.Task[None]] = set()
        self.total_connections = 0

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def bind(self) -> None:
        """Create the socket (synchronously, at startup, so errors surface before READY)."""
        self._sock = bind_private_socket(self.path)

    def close(self) -> None:
        """Stop accepting; :meth:`serve` then drains the connections and returns."""
        self._closing.set()

    async def serve(self) -> None:
        if self._sock is None:
            self.bind()
        assert self._sock is not None
        server: asyncio.Server | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                server = await asyncio.start_unix_server(self._on_connect, sock=self._sock)
                await self._closing.wait()
                server.close()
                await self._drain()
        finally:
            self._tg = None
            if server is not None:
                server.close()
            self._sock.close()
            self._unlink()

    async def _drain(self) -> None:
        """Let every connection answer what it has in flight, then cut what is still open."""
        for linger in list(self._lingering):
            linger.cancel()
        for conn in list(self._connections):
            conn.stop_reading()
        tasks = list(self._connections.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace)
        for task in pending:
            log.warning("rpc connection still busy after %.1fs; cancelling", self.shutdown_grace)
            task.cancel()

    def _unlink(self) -> None:
        try:
            info = os.lstat(self.path)
            if stat.S_ISSOCK(info.st_mode):
                self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove socket %s: %s", self.path, exc)

    def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            peer = peer_credentials(sock)
        except OSError as exc:
            log.warning("rpc: cannot read peer credentials (%s); dropping connection", exc)
            writer.close()
            return
        if peer.uid not in self._allowed:
            log.warning("rpc: refused connection from uid %d (pid %d)", peer.uid, peer.pid)
            self._refuse(
                reader, writer, PermissionDeniedError(f"uid {peer.uid} may not use this daemon")
            )
            return
        if self._tg is None or self._closing.is_set():
            self._refuse(reader, writer, LimitExceededError("the daemon is shutting down"))
            return
        if len(self._connections) >= self.limits.max_connections:
            log.warning("rpc: connection limit %d reached", self.limits.max_connections)
            self._refuse(reader, writer, LimitExceededError("too many connections"))
            return
        conn = Connection(
            reader,
            writer,
            peer=peer,
            dispatch=self._dispatch,
            limits=self.limits.frame,
            max_inflight=self.limits.max_inflight_per_connection,
        )
        self.total_connections += 1
        task = self._tg.create_task(self._run(conn), name=f"rpc-conn-{conn.id}")
        self._connections[conn] = task

    async def _run(self, conn: Connection) -> None:
        try:
            await conn.run()
        except Exception:
            log.exception("rpc connection %d crashed", conn.id)
        finally:
            self._connections.pop(conn, None)

    def _refuse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, error: MindoodError
    ) -> None:
        """Say why, then linger: a client that writes before reading would otherwise see the
        socket reset by the unread request and lose the reason (Linux resets a Unix socket
        closed with unread data)."""
        try:
            writer.write(response_frame(None, error_to_wire(error), None))
            writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()
            return
        if self._tg is None or len(self._lingering) >= MAX_LINGERING:
            writer.close()
            return
        task = self._tg.create_task(self._linger(reader, writer), name="rpc-refused")
        self._lingering.add(task)
        task.add_done_callback(self._lingering.discard)

    @staticmethod
    async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Discard what the refused client sends until it hangs up (bounded in time)."""
        try:
            async with asyncio.timeout(REFUSAL_LINGER):
                while await reader.read(64 * 1024):
                    pass
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()


__all__ = [
    "RpcServer",
    "ServerLimits",
    "SocketBindError",
    "bind_private_socket",
    "peer_credentials",
]
