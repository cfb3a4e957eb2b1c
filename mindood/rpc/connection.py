"""One RPC client connection: read frames, run requests concurrently (bounded), write replies.

Structure: :meth:`Connection.run` owns a ``TaskGroup`` holding the frame reader, one task per
request in flight (at most ``max_inflight``; the reader waits for a free slot, so a client that
floods requests is throttled by its own socket) and background tasks that handlers start (a
subscription's forwarder). When reading ends (end of stream, a fatal framing error, or
:meth:`stop_reading` at shutdown) the requests in flight finish and are answered, then the
background tasks are cancelled and the socket is closed.

Bad input never raises out of here: a decodable but invalid message gets an error response and
the connection goes on; bytes that are not MessagePack, or a frame over the size limit, get one
error response and the connection is closed, because the stream can no longer be resynchronised.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

from mindood.errors import MindoodError
from mindood.rpc.errors import (
    InternalError,
    LimitExceededError,
    ParseError,
    error_to_wire,
)
from mindood.rpc.wire import (
    BadMessageError,
    FrameLimits,
    Notification,
    Request,
    Response,
    make_unpacker,
    notification_frame,
    parse_message,
    response_frame,
)
from store.errors import StoreError
from store.limits import format_mib

log = logging.getLogger("mindood.rpc")

READ_CHUNK = 64 * 1024
_conn_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class PeerCred:
    """The connecting process as the kernel reports it (``SO_PEERCRED``)."""

    pid: int
    uid: int
    gid: int


class Dispatcher(Protocol):
    """Runs one method; raises ``MindoodError`` subclasses (``RpcError`` carry their code)."""

    async def __call__(self, method: str, params: dict[str, Any], conn: Connection) -> Any: ...


class Connection:
    """The daemon's side of one client socket; handlers receive it to push notifications."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        peer: PeerCred,
        dispatch: Dispatcher,
        limits: FrameLimits,
        max_inflight: int,
    ) -> None:
        self.id = next(_conn_ids)
        self.peer = peer
        self._reader = reader
        self._writer = writer
        self._dispatch = dispatch
        self._limits = limits
        self._slots = asyncio.Semaphore(max(1, max_inflight))
        self._write_lock = asyncio.Lock()
        self._tg: asyncio.TaskGroup | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._cleanups: list[Callable[[], None]] = []
        self._closed = False
        #: Per-connection state kept by method handlers (e.g. its subscriptions).
        self.state: dict[str, Any] = {}

    # -- what handlers use -------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """Push a notification; waits while the client is not reading (backpressure)."""
        await self._send(notification_frame(method, params))

    def start_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` for as long as the connection lives (cancelled when it closes)."""
        if self._tg is None or self._closed:
            coro.close()
            raise LimitExceededError("the connection is closing")
        task = self._tg.create_task(coro, name=f"rpc-conn-{self.id}-{name}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once when the connection ends (e.g. to drop a subscription)."""
        self._cleanups.append(callback)

    # -- lifecycle ---------------------------------------------------------------------------
    def stop_reading(self) -> None:
        """Take no new requests; those in flight still finish and are answered."""
        if self._read_task is not None:
            self._read_task.cancel()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self._read_task = tg.create_task(self._read_loop(), name=f"rpc-conn-{self.id}-read")
                await asyncio.wait([self._read_task])
                if self._handlers:
                    await asyncio.wait(list(self._handlers))
                self._closed = True
                for task in list(self._background):
                    task.cancel()
        finally:
            self._closed = True
            for callback in self._cleanups:
                try:
                    callback()
                except Exception:
                    log.exception("connection cleanup failed")
            self._writer.close()
            try:
                async with asyncio.timeout(1.0):
                    await self._writer.wait_closed()
            except (OSError, TimeoutError):
                pass
            log.debug("rpc connection %d closed", self.id)

    async def _read_loop(self) -> None:
        unpacker = make_unpacker(self._limits)
        while True:
            try:
                data = await self._reader.read(READ_CHUNK)
            except OSError:
                return
            if not data:
                return
            try:
                unpacker.feed(data)
            except msgpack.BufferFull:
                limit = format_mib(self._limits.max_frame_bytes)
                await self._fatal(
                    LimitExceededError(
                        f"request larger than the daemon's limit of {limit} per request "
                        "(limits.max_frame_bytes); closing the connection. Store large content "
                        "as an attachment, which is split into chunks"
                    )
                )
                return
            while True:
                try:
                    obj = next(unpacker)
                except StopIteration:
                    break
                except Exception as exc:  # msgpack raises ValueError, FormatError, StackError...
                    await self._fatal(ParseError(f"not a MessagePack frame ({exc}); closing"))
                    return
                await self._accept(obj)

    async def _accept(self, obj: object) -> None:
        try:
            message = parse_message(obj)
        except BadMessageError as exc:
            await self._send_quietly(response_frame(exc.msgid, exc.to_wire(), None))
            return
        if isinstance(message, Response):
            await self._send_quietly(
                response_frame(
                    message.msgid,
                    BadMessageError("the daemon takes requests, not responses").to_wire(),
                    None,
                )
            )
            return
        await self._slots.acquire()
        assert self._tg is not None
        name = f"rpc-conn-{self.id}-{message.method[:40]}"
        task = self._tg.create_task(self._handle(message), name=name)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _handle(self, message: Request | Notification) -> None:
        try:
            frame = await self._answer(message)
            if frame is not None:
                await self._send_quietly(frame)
        finally:
            self._slots.release()

    async def _answer(self, message: Request | Notification) -> bytes | None:
        msgid = message.msgid if isinstance(message, Request) else None
        try:
            result = await self._dispatch(message.method, message.params, self)
        except (MindoodError, StoreError) as exc:
            if isinstance(exc, StoreError):  # damage on disk: the operator must hear of it
                log.warning("rpc method %s: %s: %s", message.method, type(exc).__name__, exc)
            if msgid is None:
                log.debug("notification %s failed: %s", message.method, exc)
                return None
            return response_frame(msgid, error_to_wire(exc), None)
        except Exception:
            log.exception("rpc method %s failed", message.method)
            if msgid is None:
                return None
            return response_frame(msgid, InternalError("internal error").to_wire(), None)
        if msgid is None:
            return None
        try:
            return response_frame(msgid, None, result)
        except (TypeError, ValueError, OverflowError):
            log.exception("rpc method %s returned a value that cannot be encoded", message.method)
            return response_frame(msgid, InternalError("unencodable result").to_wire(), None)

    async def _fatal(self, error: MindoodError) -> None:
        log.warning("rpc connection %d (pid %d): %s", self.id, self.peer.pid, error)
        await self._send_quietly(response_frame(None, error_to_wire(error), None))

    async def _send(self, frame: bytes) -> None:
        async with self._write_lock:
            if self._writer.is_closing():
                raise ConnectionResetError("connection closed")
            self._writer.write(frame)
            await self._writer.drain()

    async def _send_quietly(self, frame: bytes) -> None:
        """Send a reply; a client that went away is not an error worth more than a debug line."""
        try:
            await self._send(frame)
        except (ConnectionError, OSError) as exc:
            log.debug("rpc connection %d: reply not delivered: %s", self.id, exc)


__all__ = ["Connection", "Dispatcher", "PeerCred"]
