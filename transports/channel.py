"""The one channel type every transport hands the node: framed messages plus a binding.

``binding`` is what both ends agree identifies *this* secure channel (the server certificate's
hash for TLS, the two DTLS fingerprints for WebRTC); the sync handshake signs it, so an
authentication made on one channel is worthless on another.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol


class ChannelClosed(Exception):
    """The channel ended (peer closed, reset, or a framing violation)."""


class FrameTooLarge(ChannelClosed):
    """The peer announced a frame over the limit; the channel is closed."""


class Channel(Protocol):
    @property
    def binding(self) -> bytes: ...

    @property
    def peer_address(self) -> str: ...

    @property
    def transport_name(self) -> str: ...

    async def send(self, frame: bytes) -> None: ...

    async def recv(self) -> bytes:
        """The next frame; raise ``ChannelClosed`` at the end."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class _Pipe:
    queue: asyncio.Queue[bytes | None]
    closed: bool = False


class MemoryChannel:
    """One end of an in-process channel pair, for protocol tests without sockets."""

    def __init__(self, inbox: _Pipe, outbox: _Pipe, binding: bytes, name: str) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._binding = binding
        self._name = name

    @property
    def binding(self) -> bytes:
        return self._binding

    @property
    def peer_address(self) -> str:
        return self._name

    @property
    def transport_name(self) -> str:
        return "memory"

    async def send(self, frame: bytes) -> None:
        if self._outbox.closed:
            raise ChannelClosed("channel closed")
        await self._outbox.queue.put(bytes(frame))

    async def recv(self) -> bytes:
        item = await self._inbox.queue.get()
        if item is None:
            self._inbox.closed = True
            raise ChannelClosed("peer closed the channel")
        return item

    async def aclose(self) -> None:
        if not self._outbox.closed:
            self._outbox.closed = True
            await self._outbox.queue.put(None)
        self._inbox.closed = True
        self._inbox.queue.put_nowait(None)


def channel_pair(binding: bytes = b"\x00" * 32) -> tuple[MemoryChannel, MemoryChannel]:
    """Two connected in-memory channels sharing ``binding``."""
    a_to_b = _Pipe(asyncio.Queue())
    b_to_a = _Pipe(asyncio.Queue())
    return (
        MemoryChannel(b_to_a, a_to_b, binding, "memory-b"),
        MemoryChannel(a_to_b, b_to_a, binding, "memory-a"),
    )
