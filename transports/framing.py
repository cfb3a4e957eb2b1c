"""Length-prefixed frames over a byte stream: ``u32 big-endian length || frame``.

The length is checked against the limit before a single byte of the frame is read, so a peer
cannot make us buffer more than the limit by announcing a huge frame.
"""

from __future__ import annotations

import asyncio
import struct

from transports.channel import ChannelClosed, FrameTooLarge

_LENGTH = struct.Struct(">I")
DEFAULT_MAX_FRAME = 32 * 1024 * 1024 + 1024


async def read_frame(reader: asyncio.StreamReader, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    try:
        header = await reader.readexactly(_LENGTH.size)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise ChannelClosed("stream ended") from exc
    (length,) = _LENGTH.unpack(header)
    if length > max_frame:
        raise FrameTooLarge(f"peer announced a frame of {length} bytes (limit {max_frame})")
    try:
        return await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise ChannelClosed("stream ended inside a frame") from exc


def frame_header(length: int) -> bytes:
    return _LENGTH.pack(length)
