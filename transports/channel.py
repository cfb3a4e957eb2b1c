"""The one channel type every transport hands the node: framed messages plus a binding.

``binding`` is what both ends agree identifies *this* secure channel (the server certificate's
hash for TLS, the two DTLS fingerprints for WebRTC); the sync handshake signs it, so an
authentication made on one channel is worthless on another.

Until the layer above calls ``admit()`` (its peer authenticated), a channel accepts frames of at
most ``PRE_AUTH_MAX_FRAME`` bytes: a stranger gets a small, fixed budget (DESIGN "Containment").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

#: The largest frame a channel accepts before its peer authenticated (``Channel.admit``). The
#: handshake's frames are small: HELLO ~100 bytes plus the tenant id, AUTH ~900 bytes (an Ed25519
#: and an RSA-3072 PEM key, a 64-byte signature), SESSION_KEY ~400 bytes (one RSA-3072 wrap).
PRE_AUTH_MAX_FRAME = 64 * 1024


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

    def admit(self) -> None:
        """The peer authenticated: lift the pre-authentication budget (frame size, and for an
        accepted connection its handshake deadline and its slot among unauthenticated ones)."""
        ...


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
        self._admitted = False

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
        if not self._admitted and len(item) > PRE_AUTH_MAX_FRAME:
            await self.aclose()
            raise FrameTooLarge(f"frame of {len(item)} bytes before authentication")
        return item

    def admit(self) -> None:
        self._admitted = True

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
