"""Byte sources cut into fixed-size pieces: shared by the library's attachment writer and the
RPC client's uploads, so this imports only the standard library (the CLI loads it)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable

#: Bytes, or an iterable or async iterable of byte pieces.
DataSource = bytes | bytearray | memoryview | Iterable[bytes] | AsyncIterable[bytes]


async def _pieces(source: DataSource) -> AsyncIterator[bytes | memoryview]:
    if isinstance(source, bytes | bytearray | memoryview):
        yield memoryview(source)
    elif isinstance(source, AsyncIterable):
        async for piece in source:
            yield piece
    else:
        for piece in source:
            yield piece


async def rechunk(source: DataSource, size: int) -> AsyncIterator[bytes]:
    """Cut any byte source into ``size``-byte chunks (the last may be shorter)."""
    buffer = bytearray()
    async for piece in _pieces(source):
        view = memoryview(piece).cast("B")
        if buffer:
            need = size - len(buffer)
            buffer += view[:need]
            view = view[need:]
            if len(buffer) < size:
                continue
            yield bytes(buffer)
            buffer.clear()
        # Whole chunks straight from the piece: a big bytes object is never copied at once.
        whole = len(view) - len(view) % size
        for start in range(0, whole, size):
            yield bytes(view[start : start + size])
        buffer += view[whole:]
    if buffer:
        yield bytes(buffer)


__all__ = ["DataSource", "rechunk"]
