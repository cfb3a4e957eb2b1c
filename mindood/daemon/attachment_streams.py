"""What an RPC connection holds while files move: open uploads, and reads in progress.

An upload is one ``change_doc`` of its document, run by a task of the connection that opened it.
The change callback hands ``add_attachment_stream`` (or ``append_to_attachment``) an async
iterator fed by a small queue, so each piece is encrypted and stored while the next one is on its
way, and the daemon holds a few pieces of a file however large the file is. Finishing commits the
change; an abort, an idle timeout or a closed connection cancels the callback, so the document
keeps its state (chunks stored so far stay unreferenced, as after any abandoned change, and are
never read).

The change holds its document's lock while the upload is open: other changes and reads of that
document wait for it. That is why an upload that stops receiving data ends after
``limits.upload_idle_seconds``, and why one connection may hold only a few open uploads.

Reads are ranges, but a file read in order should not cost a walk of its whole chunk chain per
range (quadratic in the file's size): each connection keeps its last few sequential readers, an
open ``stream_attachment`` positioned where the previous range ended, keyed by the file's last
chunk so a changed file never continues an old reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator

from mindood.daemon.config import Limits
from mindood.db import AttachmentInfo, AttachmentNotFoundError, MindooDB, MindooDoc
from mindood.errors import MindoodError
from mindood.rpc.connection import Connection
from mindood.rpc.errors import (
    ExpectedError,
    InternalError,
    InvalidParamsError,
    LimitExceededError,
    NotFoundError,
)
from store.errors import StoreError

log = logging.getLogger("mindood.rpc.attachments")

#: A document as (tenant, database, document id).
DocKey = tuple[str, str, str]
#: What an upload does with its document and its stream of pieces.
StartFn = Callable[[MindooDoc, AsyncIterator[bytes]], Awaitable[AttachmentInfo]]

#: Pieces buffered between the requests and the writer (at most this many MiB per upload).
QUEUE_PIECES = 4
#: Ended uploads whose outcome is kept for the client's next call on them (per connection).
ENDED_KEPT = 16
#: How long an abort waits for the cancelled change to unwind.
ABORT_WAIT_SECONDS = 5.0
#: Sequential readers kept per connection (each holds a few chunks and the file's chunk list).
READERS_KEPT = 2
_STATE = "attachments"


@contextlib.contextmanager
def typed_errors() -> Iterator[None]:
    """A missing attachment is "not found" on the wire, as a missing document is."""
    try:
        yield
    except AttachmentNotFoundError as exc:
        raise NotFoundError(str(exc)) from None


class Upload:
    """One open upload: the pieces on their way, and the task that stores them in one change."""

    def __init__(self, upload_id: int, doc: DocKey, idle_seconds: float) -> None:
        self.id = upload_id
        self.doc = doc
        self.doc_id = doc[2]
        self.received = 0
        self.ended = False
        self.aborted = False
        self.info: AttachmentInfo | None = None
        self.error: ExpectedError | None = None
        self.task: asyncio.Task[None] | None = None
        self._idle = idle_seconds
        self._pieces: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_PIECES)
        # Requests of one connection run concurrently; pieces must still enter in order.
        self._order = asyncio.Lock()

    # -- the task ----------------------------------------------------------------------------
    async def run(self, db: MindooDB, start: StartFn, on_end: Callable[[], None]) -> None:
        """One change of the document around the stream of pieces. Never raises (but a cancel):
        an error here belongs to this upload, not to the connection that runs it."""
        try:
            result: AttachmentInfo | None = None

            async def change(doc: MindooDoc) -> None:
                nonlocal result
                async with contextlib.aclosing(self._stream()) as pieces:
                    result = await start(doc, pieces)

            with typed_errors():
                await db.change_doc(self.doc_id, change)
            self.info = result
        except asyncio.CancelledError:
            if not self.aborted:
                log.info(
                    "upload %d to document %r ended with its connection after %d bytes; "
                    "the document is unchanged",
                    self.id,
                    self.doc_id,
                    self.received,
                )
            raise
        except (MindoodError, StoreError) as exc:
            self.error = exc
            log.warning(
                "upload %d to document %r failed after %d bytes: %s",
                self.id,
                self.doc_id,
                self.received,
                exc,
            )
        except Exception:
            log.exception("upload %d to document %r failed", self.id, self.doc_id)
            self.error = InternalError("the upload failed (see the daemon's log)")
        finally:
            self.ended = True
            # A request waiting for room in the queue must wake up and see the end.
            while not self._pieces.empty():
                self._pieces.get_nowait()
            on_end()

    async def _stream(self) -> AsyncGenerator[bytes, None]:
        while True:
            try:
                async with asyncio.timeout(self._idle):
                    piece = await self._pieces.get()
            except TimeoutError:
                raise LimitExceededError(
                    f"upload {self.id} received no data for {self._idle:g} s "
                    "(limits.upload_idle_seconds) and was dropped; the document is unchanged"
                ) from None
            if piece is None:
                return
            yield piece

    # -- what requests do --------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.ended:
            raise self.error or NotFoundError(f"upload {self.id} is no longer open")

    async def put(self, data: bytes, offset: int | None) -> int:
        async with self._order:
            self._check_open()
            if offset is not None and offset != self.received:
                raise InvalidParamsError(
                    f"upload {self.id}: a piece at offset {offset}, but {self.received} bytes "
                    "were received so far (pieces go in order)"
                )
            if data:
                await self._pieces.put(data)
                self._check_open()  # the change may have ended while the piece waited for room
                self.received += len(data)
            return self.received

    async def finish(self) -> AttachmentInfo:
        async with self._order:
            self._check_open()
            await self._pieces.put(None)
            assert self.task is not None
            await asyncio.wait({self.task})
        if self.error is not None:
            raise self.error
        if self.info is None:
            raise NotFoundError(f"upload {self.id} is no longer open")
        return self.info

    async def abort(self) -> None:
        self.aborted = True
        if self.task is None or self.task.done():
            return
        self.task.cancel()
        _, pending = await asyncio.wait({self.task}, timeout=ABORT_WAIT_SECONDS)
        if pending:
            log.warning("upload %d: the aborted change is still unwinding", self.id)


class Uploads:
    """The uploads of one connection, by id; an ended one stays until the client's next call
    on it reports the outcome (or until more than ``ENDED_KEPT`` have ended)."""

    def __init__(self) -> None:
        self.by_id: dict[int, Upload] = {}
        self._ids = itertools.count(1)

    def get(self, upload_id: int) -> Upload:
        upload = self.by_id.get(upload_id)
        if upload is None:
            raise NotFoundError(
                f"no upload {upload_id} on this connection (finished, aborted, timed out, "
                "or opened on another connection)"
            )
        return upload

    def admit(self, doc: DocKey, limits: Limits) -> None:
        """Refuse an upload this connection cannot open now (checked before any wait)."""
        running = [u for u in self.by_id.values() if not u.ended]
        if len(running) >= limits.max_uploads_per_connection:
            raise LimitExceededError(
                f"at most {limits.max_uploads_per_connection} open uploads per connection "
                "(limits.max_uploads_per_connection): finish or abort one first"
            )
        for upload in running:
            if upload.doc == doc:
                # Its change holds the document: a second one would wait for it, and a client
                # that waits for this answer before sending the first one's pieces would stall.
                raise LimitExceededError(
                    f"upload {upload.id} to document {doc[2]!r} is open on this connection: "
                    "uploads to one document take turns (each is one change of it)"
                )

    def start(
        self, conn: Connection, db: MindooDB, doc: DocKey, start: StartFn, limits: Limits
    ) -> Upload:
        self.admit(doc, limits)
        upload = Upload(next(self._ids), doc, limits.upload_idle_seconds)
        upload.task = conn.start_task(
            upload.run(db, start, self._forget_old), name=f"upload-{upload.id}"
        )
        self.by_id[upload.id] = upload
        return upload

    def drop_if_ended(self, upload: Upload) -> None:
        if upload.ended:
            self.by_id.pop(upload.id, None)

    def _forget_old(self) -> None:
        ended = [u.id for u in self.by_id.values() if u.ended]
        for upload_id in ended[: max(0, len(ended) - ENDED_KEPT)]:
            del self.by_id[upload_id]


#: A reader is found again by the file it reads and the offset where it stopped.
ReaderKey = tuple[str, str, str, str, str, int]


class FileReader:
    """A file read in order: its chunk chain walked once, the position where the last read ended."""

    def __init__(self, db: MindooDB, doc: MindooDoc, attachment_id: str, start: int) -> None:
        self.db = db
        self.position = start
        self._pieces = doc.stream_attachment(attachment_id, start)
        self._left = memoryview(b"")

    async def read(self, length: int) -> bytes:
        out = bytearray()
        while len(out) < length:
            if not self._left:
                try:
                    self._left = memoryview(await anext(self._pieces))
                except StopAsyncIteration:
                    break
            take = self._left[: length - len(out)]
            out += take
            self._left = self._left[len(take) :]
        self.position += len(out)
        return bytes(out)

    async def close(self) -> None:
        if isinstance(self._pieces, AsyncGenerator):  # it is one; the library types it loosely
            await self._pieces.aclose()


class Readers:
    """The last few sequential readers of one connection."""

    def __init__(self) -> None:
        self._kept: OrderedDict[ReaderKey, FileReader] = OrderedDict()

    async def read(
        self,
        file: DocKey,
        db: MindooDB,
        doc: MindooDoc,
        info: AttachmentInfo,
        offset: int,
        length: int,
    ) -> bytes:
        """``length`` bytes from ``offset``, continuing a reader that stopped there if any."""
        base = (*file, info.attachment_id, info.last_chunk_id)
        reader = self._kept.pop((*base, offset), None)
        if reader is not None and reader.db is not db:  # the tenant was locked since: its keys
            await reader.close()  # stay with the old handle
            reader = None
        if reader is None:
            reader = FileReader(db, doc, info.attachment_id, offset)
        try:
            data = await reader.read(length)
        except BaseException:
            await reader.close()
            raise
        if reader.position >= info.size:
            await reader.close()
            return data
        self._kept[(*base, reader.position)] = reader
        while len(self._kept) > READERS_KEPT:
            _, oldest = self._kept.popitem(last=False)
            await oldest.close()
        return data

    def clear(self) -> None:
        """Drop every reader (their generators are closed by the loop's finalizer)."""
        self._kept.clear()


class ConnectionFiles:
    """Everything one connection holds for attachments."""

    def __init__(self) -> None:
        self.uploads = Uploads()
        self.readers = Readers()


def files_of(conn: Connection) -> ConnectionFiles:
    """The connection's attachment state, made on first use."""
    found = conn.state.get(_STATE)
    if found is None:
        found = conn.state[_STATE] = ConnectionFiles()
        conn.on_close(found.readers.clear)
    assert isinstance(found, ConnectionFiles)
    return found


__all__ = [
    "ConnectionFiles",
    "DocKey",
    "FileReader",
    "Readers",
    "StartFn",
    "Upload",
    "Uploads",
    "files_of",
    "typed_errors",
]
