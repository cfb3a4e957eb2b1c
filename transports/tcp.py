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
import hashlib
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from transports.channel import ChannelClosed
from transports.framing import DEFAULT_MAX_FRAME, frame_header, read_frame

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


class TcpChannel:
    """Frames over one TLS connection."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        binding: bytes,
        max_frame: int = DEFAULT_MAX_FRAME,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._binding = binding
        self._max_frame = max_frame
        self._send_lock = asyncio.Lock()
        peer = writer.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
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
        return await read_frame(self._reader, self._max_frame)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await self._writer.wait_closed()


ChannelHandler = Callable[[TcpChannel], Awaitable[None]]


async def listen(
    host: str,
    port: int,
    cert: NodeCertificate,
    handler: ChannelHandler,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> asyncio.Server:
    """Accept TLS connections and hand each channel to ``handler`` (which owns it)."""
    binding = cert.fingerprint

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = TcpChannel(reader, writer, binding, max_frame)
        try:
            await handler(channel)
        except Exception:
            log.exception("connection handler failed", extra={"peer": channel.peer_address})
        finally:
            await channel.aclose()

    return await asyncio.start_server(
        on_connect,
        host,
        port,
        ssl=server_context(cert),
        limit=_WRITE_LIMIT,
        ssl_handshake_timeout=10,
    )


async def dial(
    host: str, port: int, *, connect_timeout: float = 10.0, max_frame: int = DEFAULT_MAX_FRAME
) -> TcpChannel:
    """Connect with TLS 1.3; the binding is the hash of the certificate the server showed us."""
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
