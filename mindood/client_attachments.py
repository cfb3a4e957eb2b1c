"""The client's attachment methods: the schema's typed calls, and streaming helpers over them.

No call moves more than :data:`MAX_PIECE_BYTES`, so ``attachment_upload``/``attachment_append``
send a file as a loop of pieces and ``attachment_stream``/``attachment_download`` read it as a
loop of ranges: a file of any size passes with a few MiB of memory on either side::

    info = await client.attachment_upload("acme", "files", doc_id, "scan.pdf")
    await client.attachment_download("acme", "files", doc_id, info["id"], "copy.pdf")
    async for piece in client.attachment_stream("acme", "files", doc_id, info["id"]):
        ...

An upload is one change of the document that commits when the last piece is in; if sending
fails or is cancelled, the helpers abort it and the document stays as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from mindood.bytesource import DataSource, rechunk
from mindood.client_api import rpc
from mindood.errors import MindoodError
from mindood.rpc.schema.attachments import MAX_PIECE_BYTES

#: What the upload helpers send: a file's path, bytes, or (async) iterables of byte pieces.
Source = str | os.PathLike[str] | DataSource
#: Called with the number of bytes sent or received so far.
Progress = Callable[[int], None]

_ABORT_SECONDS = 10.0


async def _file_pieces(path: Path, size: int) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while piece := await asyncio.to_thread(handle.read, size):
            yield piece
    finally:
        await asyncio.to_thread(handle.close)


async def pieces(source: Source, size: int = MAX_PIECE_BYTES) -> AsyncIterator[bytes]:
    """``source`` as pieces of exactly ``size`` bytes (the last may be shorter): small pieces
    are joined to save round trips, large ones cut to fit a request."""
    raw = _file_pieces(Path(source), size) if isinstance(source, str | os.PathLike) else source
    async for piece in rechunk(raw, size):
        yield piece


class AttachmentMethods:
    """Mixed into :class:`mindood.client.MindoodClient`, which provides :meth:`call`."""

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    # -- the schema's methods ------------------------------------------------------------------
    @rpc("attachment.list")
    async def attachment_list(self, tenant: str, db: str, doc_id: str) -> list[dict[str, Any]]:
        """The document's files: ``{id, file_name, mime_type, size, created_at, created_by}``."""
        result: list[dict[str, Any]] = (
            await self.call("attachment.list", {"tenant": tenant, "db": db, "doc_id": doc_id})
        )["attachments"]
        return result

    @rpc("attachment.upload_begin")
    async def attachment_upload_begin(
        self, tenant: str, db: str, doc_id: str, file_name: str, *, mime_type: str | None = None
    ) -> int:
        """Open an upload of a new file on this connection; returns the upload id."""
        result: int = (
            await self.call(
                "attachment.upload_begin",
                {
                    "tenant": tenant,
                    "db": db,
                    "doc_id": doc_id,
                    "file_name": file_name,
                    "mime_type": mime_type,
                },
            )
        )["upload"]
        return result

    @rpc("attachment.append_begin")
    async def attachment_append_begin(
        self, tenant: str, db: str, doc_id: str, attachment_id: str
    ) -> int:
        """Open an upload that adds to the end of an existing file; returns the upload id."""
        result: int = (
            await self.call(
                "attachment.append_begin",
                {"tenant": tenant, "db": db, "doc_id": doc_id, "attachment_id": attachment_id},
            )
        )["upload"]
        return result

    @rpc("attachment.upload_chunk")
    async def attachment_upload_chunk(
        self, upload: int, data: bytes, *, offset: int | None = None
    ) -> int:
        """Send the next piece (at most ``MAX_PIECE_BYTES``); returns the bytes received so far."""
        result: int = (
            await self.call(
                "attachment.upload_chunk", {"upload": upload, "data": data, "offset": offset}
            )
        )["received"]
        return result

    @rpc("attachment.upload_finish")
    async def attachment_upload_finish(self, upload: int) -> dict[str, Any]:
        """Commit the upload; returns the attachment (``{doc_id, id, size, ...}``)."""
        result: dict[str, Any] = await self.call("attachment.upload_finish", {"upload": upload})
        return result

    @rpc("attachment.upload_abort")
    async def attachment_upload_abort(self, upload: int) -> None:
        await self.call("attachment.upload_abort", {"upload": upload})

    @rpc("attachment.read")
    async def attachment_read(
        self,
        tenant: str,
        db: str,
        doc_id: str,
        attachment_id: str,
        *,
        offset: int = 0,
        length: int | None = None,
    ) -> dict[str, Any]:
        """``{id, offset, size, data}``: up to ``length`` bytes (at most ``MAX_PIECE_BYTES``)."""
        result: dict[str, Any] = await self.call(
            "attachment.read",
            {
                "tenant": tenant,
                "db": db,
                "doc_id": doc_id,
                "attachment_id": attachment_id,
                "offset": offset,
                "length": length,
            },
        )
        return result

    @rpc("attachment.remove")
    async def attachment_remove(
        self, tenant: str, db: str, doc_id: str, attachment_id: str
    ) -> None:
        await self.call(
            "attachment.remove",
            {"tenant": tenant, "db": db, "doc_id": doc_id, "attachment_id": attachment_id},
        )

    # -- streaming helpers ---------------------------------------------------------------------
    async def attachment_upload(
        self,
        tenant: str,
        db: str,
        doc_id: str,
        source: Source,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Attach ``source`` (a path, bytes or an (async) iterable of bytes) as a new file.

        ``file_name`` defaults to the path's name. Returns the attachment as ``upload_finish``.
        """
        if file_name is None:
            if not isinstance(source, str | os.PathLike):
                raise ValueError("file_name is needed when the source is not a path")
            file_name = Path(source).name
        upload = await self.attachment_upload_begin(
            tenant, db, doc_id, file_name, mime_type=mime_type
        )
        return await self._send(upload, source, progress)

    async def attachment_append(
        self,
        tenant: str,
        db: str,
        doc_id: str,
        attachment_id: str,
        source: Source,
        *,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Add ``source`` at the end of an existing file; returns the updated attachment."""
        upload = await self.attachment_append_begin(tenant, db, doc_id, attachment_id)
        return await self._send(upload, source, progress)

    async def _send(self, upload: int, source: Source, progress: Progress | None) -> dict[str, Any]:
        try:
            sent = 0
            async for piece in pieces(source):
                sent = await self.attachment_upload_chunk(upload, piece, offset=sent)
                if progress is not None:
                    progress(sent)
            return await self.attachment_upload_finish(upload)
        except BaseException:
            # Leave nothing open on the daemon (it would hold the document until it times out);
            # an upload that already failed there is gone, so the abort may find nothing.
            with contextlib.suppress(MindoodError, TimeoutError):
                async with asyncio.timeout(_ABORT_SECONDS):
                    await self.attachment_upload_abort(upload)
            raise

    async def attachment_stream(
        self,
        tenant: str,
        db: str,
        doc_id: str,
        attachment_id: str,
        *,
        start: int = 0,
        end: int | None = None,
    ) -> AsyncIterator[bytes]:
        """The file (or bytes ``[start, end)`` of it) in pieces of at most ``MAX_PIECE_BYTES``."""
        offset = start
        while end is None or offset < end:
            want = MAX_PIECE_BYTES if end is None else min(MAX_PIECE_BYTES, end - offset)
            got = await self.attachment_read(
                tenant, db, doc_id, attachment_id, offset=offset, length=want
            )
            data: bytes = got["data"]
            if not data:
                return
            yield data
            offset += len(data)
            if offset >= got["size"]:
                return

    async def attachment_range(
        self, tenant: str, db: str, doc_id: str, attachment_id: str, start: int, end: int
    ) -> bytes:
        """Bytes ``[start, end)`` of a file in one piece (clipped at the file's end)."""
        parts = [
            piece
            async for piece in self.attachment_stream(
                tenant, db, doc_id, attachment_id, start=start, end=end
            )
        ]
        return b"".join(parts)

    async def attachment_download(
        self,
        tenant: str,
        db: str,
        doc_id: str,
        attachment_id: str,
        to_path: str | os.PathLike[str],
        *,
        start: int = 0,
        end: int | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Write the file (or ``[start, end)``) to ``to_path``; returns the bytes written.

        The bytes go to a hidden ``.part`` file beside it, renamed into place when complete,
        so a failed download never leaves a truncated file under the wanted name.
        """
        target = Path(to_path)
        partial = target.with_name(f".{target.name}.part")
        handle = await asyncio.to_thread(partial.open, "wb")
        written = 0
        try:
            async for piece in self.attachment_stream(
                tenant, db, doc_id, attachment_id, start=start, end=end
            ):
                await asyncio.to_thread(handle.write, piece)
                written += len(piece)
                if progress is not None:
                    progress(written)
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(os.replace, partial, target)
        except BaseException:
            await asyncio.to_thread(handle.close)
            await asyncio.to_thread(partial.unlink, missing_ok=True)
            raise
        return written


__all__ = ["AttachmentMethods", "Progress", "Source", "pieces"]
