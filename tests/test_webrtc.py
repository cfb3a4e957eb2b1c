"""The WebRTC channel's own rules: binding, descriptions, fragment limits and backpressure."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from tests.webrtc_helpers import loopback_ice, webrtc_pair
from transports.channel import ChannelClosed, FrameTooLarge
from transports.webrtc import (
    MAX_DESCRIPTION_BYTES,
    WebRtcOptions,
    channel_binding,
    decode_description,
    encode_description,
    max_message_size,
)
from transports.webrtc_internals import WireCounters, ice_sockets

_FP_A = "a=fingerprint:sha-256 " + ":".join(["AA"] * 32)
_FP_B = "a=fingerprint:sha-256 " + ":".join(["0B"] * 32)


def test_both_ends_compute_the_same_binding_from_the_two_fingerprints() -> None:
    local, remote = f"v=0\r\n{_FP_A}\r\n", f"v=0\r\n{_FP_B}\r\n"
    assert channel_binding(local, remote) == channel_binding(remote, local)
    swapped = f"v=0\r\n{_FP_A.replace('AA', 'AB', 1)}\r\n"  # a rendezvous swapped a fingerprint
    assert channel_binding(swapped, remote) != channel_binding(local, remote)
    with pytest.raises(ValueError):
        channel_binding("v=0\r\n", remote)


def test_descriptions_are_checked_before_use() -> None:
    assert decode_description(encode_description("offer", "v=0\r\n"), "offer") == "v=0\r\n"
    bad = [
        b"not json",
        b"[]",
        encode_description("answer", "v=0"),
        encode_description("offer", "no sdp"),
        b'{"type":"offer","sdp":"v=0' + b"x" * MAX_DESCRIPTION_BYTES + b'"}',
    ]
    for payload in bad:
        with pytest.raises(ValueError):
            decode_description(payload, "offer")


def test_max_message_size_follows_rfc_8841() -> None:
    assert max_message_size("v=0\r\n") == 65536
    assert max_message_size("a=max-message-size:0\r\n") == 262144
    assert max_message_size("a=max-message-size:100000\r\n") == 100000
    assert max_message_size("a=max-message-size:9999999\r\n") == 262144


async def test_a_frame_over_the_receivers_limit_closes_the_channel() -> None:
    with loopback_ice():
        big, small = await webrtc_pair(
            WebRtcOptions(max_frame=4 * 1024 * 1024), WebRtcOptions(max_frame=300_000)
        )
        big.admit()
        small.admit()  # past the handshake: the channels' full limits apply
        try:
            await big.send(b"x" * 1_000_000)
            with pytest.raises(FrameTooLarge):
                async with asyncio.timeout(10):
                    await small.recv()
            with pytest.raises(ChannelClosed):
                async with asyncio.timeout(10):
                    await big.recv()
        finally:
            await big.aclose()
            await small.aclose()


async def test_send_waits_while_the_data_channel_buffer_is_full() -> None:
    options = WebRtcOptions(high_water=256 * 1024, low_water=64 * 1024)
    with loopback_ice():
        a, b = await webrtc_pair(options)
        a.admit()
        b.admit()
        try:
            peak = 0
            frames = 24

            async def sender() -> None:
                nonlocal peak
                for _ in range(frames):
                    await a.send(b"y" * 200_000)
                    peak = max(peak, a.buffered_amount)

            async with asyncio.timeout(60):
                task = asyncio.ensure_future(sender())
                got = [len(await b.recv()) for _ in range(frames)]
                await task
            assert got == [200_000] * frames
            # One frame's worth of messages may be queued above the mark, never more.
            assert peak <= options.high_water + 200_000 + 65536
        finally:
            await a.aclose()
            await b.aclose()


async def _one_way(options: WebRtcOptions, total: int) -> tuple[WireCounters, WireCounters, int]:
    """Send ``total`` bytes a to b in 200 kB frames: both ends' counters and b's message bytes."""
    with loopback_ice():
        a, b = await webrtc_pair(options)
        a.admit()
        b.admit()
        try:
            frame = os.urandom(200_000)

            async def sender() -> None:
                for _ in range(total // len(frame)):
                    await a.send(frame)

            async with asyncio.timeout(60):
                task = asyncio.ensure_future(sender())
                for _ in range(total // len(frame)):
                    assert await b.recv() == frame
                await task
                await asyncio.sleep(0.1)  # the last acknowledgements
            sent, received = a.wire_counters(), b.wire_counters()
            assert sent is not None and received is not None
            assert a.message_bytes_sent == b.message_bytes_received
            return sent, received, b.message_bytes_received
        finally:
            await a.aclose()
            await b.aclose()


async def test_the_wire_counters_see_every_datagram_and_the_messages_inside() -> None:
    sent, received, messages = await _one_way(WebRtcOptions(), 2_000_000)
    assert messages == 2_000_000 + 10 * 4  # 200 kB frames in four 64 KiB messages, a flag byte each
    assert sent.packets_sent == received.packets_received  # loopback with room: nothing lost
    # DTLS and SCTP headers on every ~1.2 kB datagram, plus the acknowledgements, but not 2x.
    assert messages < sent.bytes_sent < 1.1 * messages
    assert sent.bytes < 1.15 * messages


async def test_every_second_packet_is_acknowledged_unless_told_otherwise() -> None:
    _, delayed, _ = await _one_way(WebRtcOptions(), 1_000_000)
    _, eager, _ = await _one_way(WebRtcOptions(delayed_sack=False), 1_000_000)
    # The receiver sends little besides SACKs: about one per packet received, or one per two.
    assert eager.packets_sent >= 0.9 * eager.packets_received
    assert delayed.packets_sent <= 0.6 * delayed.packets_received


_RMEM_MAX = Path("/proc/sys/net/core/rmem_max")


async def test_the_ice_sockets_get_the_receive_buffer_asked_for() -> None:
    rmem_max = int(_RMEM_MAX.read_text())  # noqa: ASYNC240 (a /proc file: never blocks)
    asked = 2 * 1024 * 1024
    with loopback_ice():
        a, b = await webrtc_pair(WebRtcOptions(socket_buffer=asked))
        try:
            sockets = ice_sockets(a._pc)
            assert sockets
            for sock in sockets:
                # Linux doubles what it grants, up to rmem_max.
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= min(
                    asked, 2 * rmem_max
                )
        finally:
            await a.aclose()
            await b.aclose()


def _sack_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "webrtc-delayed-sack"]


async def test_a_lone_packet_is_acknowledged_late_and_closing_ends_the_sack_task() -> None:
    with loopback_ice():
        a, b = await webrtc_pair(WebRtcOptions(sack_delay=0.02))
        a.admit()
        b.admit()
        try:
            assert len(_sack_tasks()) == 2  # one per end, owned by its channel
            await a.send(b"one packet")
            assert await b.recv() == b"one packet"
            sender = a._pc.sctp
            async with asyncio.timeout(5):
                # A single DATA packet is owed only half a SACK: the timer sends it.
                while sender._last_sacked_tsn != sender._local_tsn - 1:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        finally:
            await a.aclose()
            await b.aclose()
    assert _sack_tasks() == []
