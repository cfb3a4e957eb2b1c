"""One channel conformance suite over every transport: the in-memory pair, TLS over TCP, and a
WebRTC data channel on loopback (ICE host candidates restricted to 127.0.0.1)."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.webrtc_helpers import loopback_ice, webrtc_pair
from transports.channel import (
    PRE_AUTH_MAX_FRAME,
    Channel,
    ChannelClosed,
    FrameTooLarge,
    channel_pair,
)
from transports.tcp import (
    NodeCertificate,
    PreAuthLimits,
    TcpChannel,
    TcpListener,
    client_context,
    dial,
    listen,
)
from transports.webrtc import WebRtcOptions

MAX_FRAME = 2 * 1024 * 1024


@pytest.fixture(params=["memory", "tcp", "webrtc"])
async def pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Channel, Channel]]:
    if request.param == "webrtc":
        with loopback_ice():
            a, b = await webrtc_pair(WebRtcOptions(max_frame=MAX_FRAME))
            yield a, b
            await a.aclose()
            await b.aclose()
        return
    if request.param == "memory":
        a, b = channel_pair()
        yield a, b
        await a.aclose()
        await b.aclose()
        return
    cert = NodeCertificate.load_or_create(tmp_path / "node")
    accepted: asyncio.Queue[TcpChannel] = asyncio.Queue()
    done = asyncio.Event()

    async def handler(channel: TcpChannel) -> None:
        await accepted.put(channel)
        await done.wait()  # the handler owns the channel: keep it open for the test

    server = await listen("127.0.0.1", 0, cert, handler, max_frame=MAX_FRAME)
    port = server.sockets[0].getsockname()[1]
    client = await dial("127.0.0.1", port, max_frame=MAX_FRAME)
    served = await asyncio.wait_for(accepted.get(), 10)
    yield client, served
    done.set()
    await client.aclose()
    server.close()
    await server.wait_closed()


async def test_frames_arrive_whole_and_in_order(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    a.admit()
    b.admit()
    frames = [b"", b"x", bytes(range(256)) * 4, b"y" * (MAX_FRAME - 8)]
    for frame in frames:
        await a.send(frame)
    assert [await b.recv() for _ in frames] == frames
    await b.send(b"reply")
    assert await a.recv() == b"reply"


async def test_both_ends_agree_on_the_binding(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    assert a.binding == b.binding and len(a.binding) == 32


async def test_closing_one_end_ends_the_other(pair: tuple[Channel, Channel]) -> None:
    a, b = pair
    await a.aclose()
    with pytest.raises(ChannelClosed):
        async with asyncio.timeout(10):
            await b.recv()


async def test_a_frame_announced_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    cert = NodeCertificate.load_or_create(tmp_path / "node")
    outcome: asyncio.Future[BaseException | bytes] = asyncio.get_running_loop().create_future()

    async def handler(channel: TcpChannel) -> None:
        try:
            outcome.set_result(await channel.recv())
        except ChannelClosed as exc:
            outcome.set_result(exc)

    server = await listen("127.0.0.1", 0, cert, handler, max_frame=1024)
    port = server.sockets[0].getsockname()[1]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    writer.write(struct.pack(">I", 1 << 30))  # announces 1 GiB, sends nothing more
    await writer.drain()
    result = await asyncio.wait_for(outcome, 10)
    assert isinstance(result, FrameTooLarge)
    writer.close()
    server.close()
    await server.wait_closed()


async def test_before_admit_a_frame_over_the_small_limit_is_refused(
    pair: tuple[Channel, Channel],
) -> None:
    """A stranger gets a small frame budget whatever the channel's full limit."""
    a, b = pair
    await a.send(b"h" * PRE_AUTH_MAX_FRAME)  # the largest frame allowed before admit
    assert len(await b.recv()) == PRE_AUTH_MAX_FRAME
    with pytest.raises(ChannelClosed):
        await a.send(b"x" * (PRE_AUTH_MAX_FRAME + 1))
        async with asyncio.timeout(10):
            await b.recv()


# -- a listener's budget for strangers -----------------------------------------------------------
class Served:
    """A listener whose handler records each channel and how it ended."""

    def __init__(self) -> None:
        self.channels: asyncio.Queue[TcpChannel] = asyncio.Queue()
        self.ended: asyncio.Queue[tuple[TcpChannel, float]] = asyncio.Queue()

    async def handler(self, channel: TcpChannel) -> None:
        await self.channels.put(channel)
        try:
            while True:
                await channel.recv()
        except ChannelClosed:
            await self.ended.put((channel, time.monotonic()))


async def _listener(
    tmp_path: Path, served: Served, limits: PreAuthLimits
) -> tuple[TcpListener, int]:
    cert = NodeCertificate.load_or_create(tmp_path / "node")
    server = await listen("127.0.0.1", 0, cert, served.handler, pre_auth=limits)
    return server, server.sockets[0].getsockname()[1]


async def _raw_tcp(port: int) -> socket.socket:
    """A TCP connection that never speaks TLS."""
    sock = socket.socket()
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def _until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Observe the listener's slot count (it has no event to await); bounded in time."""
    async with asyncio.timeout(seconds):
        for _ in range(1_000_000):
            if check():
                return
            await asyncio.sleep(0.01)


async def _closed_by_server(sock: socket.socket, seconds: float = 10.0) -> float:
    """Seconds until the server closed the raw connection (EOF or reset)."""
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(seconds):
        while True:
            try:
                if not await loop.sock_recv(sock, 65536):
                    break
            except ConnectionError:
                break
    return time.monotonic() - started


async def test_a_client_that_never_speaks_tls_is_dropped_at_the_deadline(tmp_path: Path) -> None:
    served = Served()
    server, port = await _listener(tmp_path, served, PreAuthLimits(deadline=0.5))
    sock = await _raw_tcp(port)
    try:
        waited = await _closed_by_server(sock)
        assert 0.3 <= waited < 5
        assert served.channels.empty()  # it never became a channel
        assert server.pending == 0
    finally:
        sock.close()
        server.close()
        await server.wait_closed()


async def test_a_peer_that_never_authenticates_is_dropped_at_the_deadline(
    tmp_path: Path,
) -> None:
    served = Served()
    server, port = await _listener(tmp_path, served, PreAuthLimits(deadline=0.6))
    admitted = await dial("127.0.0.1", port)
    (await asyncio.wait_for(served.channels.get(), 10)).admit()  # as a session that opened
    started = time.monotonic()
    silent = await dial("127.0.0.1", port)  # TLS done, then not a word
    try:
        dropped, at = await asyncio.wait_for(served.ended.get(), 10)
        assert not dropped.admitted and 0.4 <= at - started < 5
        with pytest.raises(ChannelClosed):
            async with asyncio.timeout(10):
                await silent.recv()
        # The admitted peer is past the deadline and still served; it holds no slot.
        await asyncio.sleep(0.3)
        await admitted.send(b"still here")
        assert served.ended.empty() and server.pending == 0
    finally:
        await silent.aclose()
        await admitted.aclose()
        server.close()
        await server.wait_closed()


async def test_past_the_pending_slots_new_connections_are_closed_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served = Served()
    server, port = await _listener(tmp_path, served, PreAuthLimits(max_pending=16, deadline=30))
    pending = [await _raw_tcp(port) for _ in range(16)]
    extra: list[socket.socket] = []
    try:
        await _until(lambda: server.pending == 16)
        with caplog.at_level(logging.WARNING, logger="mindood.transports.tcp"):
            for _ in range(5):
                sock = await _raw_tcp(port)
                extra.append(sock)
                assert await _closed_by_server(sock, 5) < 2  # the 17th and later: at once
        refusals = [r for r in caplog.records if "refusing connections" in r.getMessage()]
        assert len(refusals) == 1  # logged once per interval, not per connection
        assert server.pending == 16
        # A freed slot is taken again.
        pending.pop().close()
        await _until(lambda: server.pending == 15)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context())
        await asyncio.wait_for(served.channels.get(), 10)
        assert server.pending == 16
        writer.close()
    finally:
        for sock in pending + extra:
            sock.close()
        server.close()
        await server.wait_closed()


async def test_closing_the_listener_drops_strangers(tmp_path: Path) -> None:
    served = Served()
    server, port = await _listener(tmp_path, served, PreAuthLimits(deadline=30))
    sock = await _raw_tcp(port)
    try:
        await _until(lambda: server.pending == 1)
        server.close()
        async with asyncio.timeout(10):
            await server.wait_closed()
        assert await _closed_by_server(sock, 5) < 5
    finally:
        sock.close()


async def test_the_certificate_is_reused_and_its_key_private(tmp_path: Path) -> None:
    first = NodeCertificate.load_or_create(tmp_path / "node")
    again = NodeCertificate.load_or_create(tmp_path / "node")
    assert first.fingerprint == again.fingerprint
    assert (first.key_path.stat().st_mode & 0o777) == 0o600
