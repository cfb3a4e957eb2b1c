"""One channel conformance suite over every transport: the in-memory pair, TLS over TCP, and a
WebRTC data channel on loopback (ICE host candidates restricted to 127.0.0.1)."""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.webrtc_helpers import loopback_ice, webrtc_pair
from transports.channel import Channel, ChannelClosed, FrameTooLarge, channel_pair
from transports.tcp import NodeCertificate, TcpChannel, dial, listen
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


async def test_the_certificate_is_reused_and_its_key_private(tmp_path: Path) -> None:
    first = NodeCertificate.load_or_create(tmp_path / "node")
    again = NodeCertificate.load_or_create(tmp_path / "node")
    assert first.fingerprint == again.fingerprint
    assert (first.key_path.stat().st_mode & 0o777) == 0o600
