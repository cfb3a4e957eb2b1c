"""LAN-TCP with TLS 1.3: listen, dial, and a framed channel bound to the server certificate.

Each node has a self-signed certificate (``NodeCertificate``); peers are not authenticated by
TLS (there is no CA on a LAN) but by the sync handshake, which signs ``binding`` = SHA-256 of the
server certificate as each end saw it (the RFC 5929 "tls-server-end-point" idea). A man in the
middle must present its own certificate, so the two ends would sign different bindings.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import hashlib
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from transports.channel import PRE_AUTH_MAX_FRAME, ChannelClosed, FrameTooLarge
from transports.framing import DEFAULT_MAX_FRAME, frame_header, read_frame
from transports.tasks import Spawner

log = logging.getLogger("mindood.transports.tcp")

_WRITE_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class NodeCertificate:
    cert_path: Path
    key_path: Path

    @property
    def der(self) -> bytes:
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        return cert.public_bytes(serialization.Encoding.DER)

    @property
    def fingerprint(self) -> bytes:
        return hashlib.sha256(self.der).digest()

    @classmethod
    def load_or_create(cls, directory: Path, common_name: str = "mindood-node") -> NodeCertificate:
        """The node's certificate in ``directory``, created (0600 key) on first use."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / "node-cert.pem", directory / "node-key.pem"
        if cert_path.exists() and key_path.exists():
            return cls(cert_path, key_path)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        key_bytes = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(key_path, key_bytes)
        _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cls(cert_path, key_path)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def server_context(cert: NodeCertificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert.cert_path, cert.key_path)
    return context


def client_context() -> ssl.SSLContext:
    """No CA check: the peer proves itself in the sync handshake, bound to its certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True, slots=True)
class PreAuthLimits:
    """What an accepted connection may cost before its peer authenticated (``Channel.admit``).

    A stranger holds one of ``max_pending`` slots and at most ``max_frame`` bytes of frame, for at
    most ``deadline`` seconds from the TCP accept (the TLS handshake included); past the slots,
    a new connection is closed at once. Refusals are logged at most once per ``log_interval``.
    """

    max_pending: int = 16
    deadline: float = 10.0
    max_frame: int = PRE_AUTH_MAX_FRAME
    log_interval: float = 60.0


class _Throttled:
    """A warning per kind of event at most once per interval, counting the ones it held back."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warn(self, kind: str, message: str, peer: str) -> None:
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        suffix = f" ({held} more since the last report)" if held else ""
        log.warning("%s%s", message, suffix, extra={"peer": peer})


class TcpChannel:
    """Frames over one TLS connection.

    Until ``admit()`` a frame may be at most ``pre_auth_frame`` bytes; then ``max_frame``. An
    oversized length prefix aborts the connection before any of the frame is read.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        binding: bytes,
        max_frame: int = DEFAULT_MAX_FRAME,
        *,
        pre_auth_frame: int = PRE_AUTH_MAX_FRAME,
        on_admit: Callable[[], None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._binding = binding
        self._max_frame = max_frame
        self._recv_limit = min(pre_auth_frame, max_frame)
        self._on_admit = on_admit
        self._admitted = False
        self._send_lock = asyncio.Lock()
        self._peer = _peer_name(writer)
        self._closed = False

    @property
    def binding(self) -> bytes:
        return self._binding

    @property
    def peer_address(self) -> str:
        return self._peer

    @property
    def transport_name(self) -> str:
        return "tcp"

    @property
    def max_frame(self) -> int:
        """The largest frame ``recv`` accepts now (smaller before ``admit``)."""
        return self._recv_limit

    @property
    def admitted(self) -> bool:
        return self._admitted

    def admit(self) -> None:
        if self._admitted:
            return
        self._admitted = True
        self._recv_limit = self._max_frame
        if self._on_admit is not None:
            self._on_admit()

    async def send(self, frame: bytes) -> None:
        if self._closed:
            raise ChannelClosed("channel closed")
        if len(frame) > self._max_frame:
            raise ChannelClosed(f"refusing to send a frame of {len(frame)} bytes")
        async with self._send_lock:
            try:
                self._writer.write(frame_header(len(frame)))
                self._writer.write(frame)
                await self._writer.drain()
            except (ConnectionError, RuntimeError) as exc:
                self._closed = True
                raise ChannelClosed(f"send failed: {exc}") from exc

    async def recv(self) -> bytes:
        if self._closed:
            raise ChannelClosed("channel closed")
        try:
            return await read_frame(self._reader, self._recv_limit)
        except FrameTooLarge as exc:
            log.warning(
                "closing connection: %s",
                exc,
                extra={"peer": self._peer, "admitted": self._admitted},
            )
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the connection now: no TLS goodbye, nothing more read from a misbehaving peer."""
        self._closed = True
        self._writer.transport.abort()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._writer.wait_closed()


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


ChannelHandler = Callable[[TcpChannel], Awaitable[None]]


def _close_if_cancelled(conn: socket.socket, task: asyncio.Task[None]) -> None:
    if task.cancelled():
        conn.close()


def _sock_name(sock: socket.socket) -> str:
    name = sock.getsockname()
    return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)


class TcpListener:
    """Accepts TCP itself, then TLS, and holds every stranger to ``PreAuthLimits``.

    The accept loop is ours (not ``start_server(ssl=...)``) so that the slot is taken and the
    deadline starts at the TCP accept: a connection past the slots is closed before any TLS work,
    and one that opens TCP and never speaks TLS is dropped at the deadline like one that never
    authenticates. (Starting TLS on an accepted stream instead loses the ClientHello on uvloop,
    which reads it before the callback runs.)
    """

    def __init__(
        self,
        sock: socket.socket,
        cert: NodeCertificate,
        handler: ChannelHandler,
        max_frame: int,
        limits: PreAuthLimits,
        spawn: Spawner | None = None,
    ) -> None:
        self._sock = sock
        self._context = server_context(cert)
        self._binding = cert.fingerprint
        self._handler = handler
        self._max_frame = max_frame
        self._limits = limits
        self._pending: set[asyncio.Task[None]] = set()
        self._group: asyncio.TaskGroup | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._throttled = _Throttled(limits.log_interval)
        self._closing = False
        name = f"tcp-listen:{_sock_name(sock)}"
        runner = self._serve_forever()
        self._runner = (
            spawn(runner, name) if spawn is not None else asyncio.create_task(runner, name=name)
        )

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._sock,)

    @property
    def pending(self) -> int:
        """Connections accepted whose peer has not authenticated yet."""
        return len(self._pending)

    def close(self) -> None:
        """Stop accepting and drop every unauthenticated connection; admitted ones live on."""
        self._closing = True
        if self._accepting is not None:
            self._accepting.cancel()
        for task in list(self._pending):
            task.cancel()

    async def wait_closed(self) -> None:
        """Until the accept loop and every connection it handed out have ended."""
        await asyncio.wait({self._runner})

    async def _serve_forever(self) -> None:
        """The listener's tasks, owned: the accept loop and one task per connection."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                if not self._closing:
                    self._accepting = group.create_task(self._accept_loop(), name="tcp-accept")
        finally:
            self._group = None
            self._sock.close()

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._group is not None
        while True:
            try:
                conn, address = await loop.sock_accept(self._sock)
            except OSError as exc:  # e.g. EMFILE: back off instead of spinning
                self._throttled.warn("accept", f"accept failed: {exc!r}", "")
                await asyncio.sleep(0.1)
                continue
            peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
            if len(self._pending) >= self._limits.max_pending:
                self._throttled.warn(
                    "full",
                    f"refusing connections: {self._limits.max_pending} unauthenticated "
                    "connections are pending",
                    peer,
                )
                conn.close()
                continue
            task = self._group.create_task(
                self._serve(conn, peer, loop.time()), name=f"tcp-conn:{peer}"
            )
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            # Cancelled before its first step (the listener closed at once), ``_serve`` never
            # runs to close the socket: close it here so the stranger sees the end now.
            task.add_done_callback(functools.partial(_close_if_cancelled, conn))

    async def _serve(self, conn: socket.socket, peer: str, accepted: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = accepted + self._limits.deadline
        reader = asyncio.StreamReader(limit=_WRITE_LIMIT)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            async with asyncio.timeout_at(deadline):
                transport, _ = await loop.connect_accepted_socket(
                    lambda: protocol,
                    conn,
                    ssl=self._context,
                    ssl_handshake_timeout=max(0.1, deadline - loop.time()),
                )
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            self._throttled.warn("tls", f"TLS handshake failed: {exc!r}", peer)
            conn.close()
            return
        except BaseException:
            conn.close()
            raise
        task = asyncio.current_task()
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        expiry: asyncio.TimerHandle | None = None

        def admitted() -> None:
            if task is not None:
                self._pending.discard(task)
            if expiry is not None:
                expiry.cancel()

        channel = TcpChannel(
            reader,
            writer,
            self._binding,
            self._max_frame,
            pre_auth_frame=self._limits.max_frame,
            on_admit=admitted,
        )

        def expire() -> None:
            if not channel.admitted:
                self._throttled.warn(
                    "deadline",
                    f"dropping a peer that did not authenticate in {self._limits.deadline}s",
                    peer,
                )
                channel.abort()

        expiry = loop.call_at(deadline, expire)
        try:
            await self._handler(channel)
        except Exception:
            log.exception("connection handler failed", extra={"peer": peer})
        finally:
            expiry.cancel()
            if channel.admitted:
                await channel.aclose()
            else:
                channel.abort()


async def listen(
    host: str,
    port: int,
    cert: NodeCertificate,
    handler: ChannelHandler,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    pre_auth: PreAuthLimits | None = None,
    spawn: Spawner | None = None,
) -> TcpListener:
    """Accept TLS connections and hand each channel to ``handler`` (which owns it).

    The handler calls ``channel.admit()`` once its peer authenticated; until then the connection
    is held to ``pre_auth`` (see ``PreAuthLimits``).
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, _type, _proto, _name, address = infos[0]
    sock = socket.create_server(address[:2], family=family, backlog=128)
    sock.setblocking(False)
    return TcpListener(sock, cert, handler, max_frame, pre_auth or PreAuthLimits(), spawn)


async def dial(
    host: str, port: int, *, connect_timeout: float = 10.0, max_frame: int = DEFAULT_MAX_FRAME
) -> TcpChannel:
    """Connect with TLS 1.3; the binding is the hash of the certificate the server showed us.

    The server, too, is a stranger until the sync handshake authenticated it: frames stay small
    until ``admit()``.
    """
    async with asyncio.timeout(connect_timeout):
        reader, writer = await asyncio.open_connection(
            host,
            port,
            ssl=client_context(),
            limit=_WRITE_LIMIT,
            ssl_handshake_timeout=connect_timeout,
        )
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        writer.close()
        raise ChannelClosed("server presented no certificate")
    return TcpChannel(reader, writer, hashlib.sha256(der).digest(), max_frame)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: doubling from ``initial`` up to ``maximum``, with jitter."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delays(self) -> DelayIterator:
        return DelayIterator(self)


class DelayIterator:
    def __init__(self, backoff: Backoff) -> None:
        self._backoff = backoff
        self._next = backoff.initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._backoff.maximum, self._next * self._backoff.factor)
        jitter = int.from_bytes(os.urandom(2), "big") / 65535.0
        return delay * (0.75 + 0.5 * jitter)

    def reset(self) -> None:
        self._next = self._backoff.initial
