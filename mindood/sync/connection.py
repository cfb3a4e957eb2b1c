"""Drives one sans-I/O ``protocol.Session`` over one transport channel.

Reads frames, feeds the session, writes what it queues (in order, under one lock), answers the
peer's requests concurrently (bounded), and matches our requests to responses. It is also the
``PeerSession`` the protocol's driver and ``RemoteStore`` call.

Every task of a session is a child of the session's ``TaskGroup``: request handlers and the
follow-up the node starts once the handshake is done. A failed request becomes an error
response; any other failing child is logged and ends the session (never the node), and when
the session ends every child is cancelled and awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from protocol.errors import ErrorCode, PeerClosedError, ProtocolError, RequestError
from protocol.messages import Notify, Request
from protocol.session import (
    Closed,
    NotifyReceived,
    Opened,
    RequestReceived,
    ResponseReceived,
    Session,
)
from transports.channel import Channel, ChannelClosed

log = logging.getLogger("mindood.sync.connection")

RequestHandler = Callable[[str, Sequence[Any]], Awaitable[Any]]
NotifyHandler = Callable[[Notify], None]

#: How long one request may wait for its response before the session is presumed dead.
REQUEST_TIMEOUT = 120.0


class PeerConnection:
    """One live, authenticated session with one peer."""

    def __init__(self, channel: Channel, session: Session) -> None:
        self.channel = channel
        self.session = session
        self.opened = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_reason: Closed | None = None
        self.handle_request: RequestHandler | None = None
        self.on_notify: NotifyHandler | None = None
        #: Called synchronously when the handshake completes (so request handlers are in place
        #: before the first request is dispatched); an awaitable it returns runs as a task.
        self.on_open: (
            Callable[[PeerConnection, Opened], Coroutine[Any, Any, None] | None] | None
        ) = None
        self.bytes_sent = 0
        self.bytes_received = 0
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._flush_lock = asyncio.Lock()
        self._serving = asyncio.Semaphore(session.limits.max_in_flight_requests)
        self._tasks: set[asyncio.Task[None]] = set()
        self._group: asyncio.TaskGroup | None = None

    @property
    def is_closed(self) -> bool:
        return self.closed.is_set()

    @property
    def peer_identity(self) -> str | None:
        return self.session.peer.identity if self.session.peer else None

    # -- sending -----------------------------------------------------------------------------
    async def _flush(self) -> None:
        async with self._flush_lock:
            for frame in self.session.data_to_send():
                await self.channel.send(frame)
                self.bytes_sent += len(frame) + 4

    async def call(self, operation: str, args: list[Any]) -> Any:
        """Send a request and await its result (``Requester`` for ``RemoteStore``)."""
        if self.closed.is_set():
            raise PeerClosedError(ErrorCode.SHUTDOWN, "session closed")
        request_id = self.session.request(operation, args)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._flush()
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await future
        finally:
            self._pending.pop(request_id, None)

    def seal(self, data: bytes) -> bytes:
        return self.session.seal(data)

    def open_payload(self, blob: bytes) -> bytes:
        return self.session.open_payload(blob)

    async def notify(self, topic: str, args: list[Any]) -> None:
        if self.session.is_open and not self.closed.is_set():
            self.session.notify(topic, args)
            with contextlib.suppress(ChannelClosed):
                await self._flush()

    async def close(self, code: ErrorCode = ErrorCode.SHUTDOWN, message: str = "closing") -> None:
        """End the session: tell the peer why, then close the channel."""
        if self.closed.is_set():
            return
        self._finish(self.session.close(code, message))
        with contextlib.suppress(ChannelClosed, OSError):
            async with asyncio.timeout(2):
                await self._flush()
        await self.channel.aclose()

    # -- receiving ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Until the session ends: read, dispatch, answer. Never raises for peer misbehaviour."""
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                await self._read_loop()
                for task in list(self._tasks):
                    task.cancel()
        except* ProtocolError as failures:
            first = failures.exceptions[0]
            assert isinstance(first, ProtocolError)
            log.info(
                "session ended by a protocol error",
                extra={"peer": self.channel.peer_address, "reason": first.message},
            )
            self._finish(self.session.close(first.code, first.message))
        except* (OSError, ChannelClosed) as broken:
            cause = broken.exceptions[0]
            self._finish(Closed(int(ErrorCode.INTERNAL), str(cause), by_peer=False))
        except* Exception as bugs:
            log.error(
                "a session task failed; the session ends",
                exc_info=bugs,
                extra={"peer": self.channel.peer_address},
            )
            self._finish(self.session.close(ErrorCode.INTERNAL, "internal error"))
        finally:
            self._group = None
            with contextlib.suppress(ChannelClosed, OSError, TimeoutError):
                async with asyncio.timeout(2):
                    await self._flush()  # an ERROR the session queued for the peer, if any
            await self.channel.aclose()
            self._finish(Closed(int(ErrorCode.SHUTDOWN), "connection ended", by_peer=False))

    async def _read_loop(self) -> None:
        try:
            if self.session.role.value == "client":
                self.session.start()
                await self._flush()
            while not self.closed.is_set():
                frame = await self._recv_with_deadline()
                if frame is None:
                    continue
                self.bytes_received += len(frame) + 4
                events = self.session.receive(frame)
                await self._flush()
                for event in events:
                    await self._dispatch(event)
        except ChannelClosed as exc:
            self._finish(Closed(int(ErrorCode.SHUTDOWN), f"channel closed: {exc}", by_peer=True))
        except ProtocolError as exc:
            self._finish(self.session.close(exc.code, exc.message))
        except OSError as exc:
            self._finish(Closed(int(ErrorCode.INTERNAL), str(exc), by_peer=False))

    async def _recv_with_deadline(self) -> bytes | None:
        deadline = self.session.get_timer()
        if deadline is None:
            return await self.channel.recv()
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await self.channel.recv()
        except TimeoutError:
            for event in self.session.handle_timer(time.monotonic()):
                await self._flush()
                await self._dispatch(event)
            return None

    async def _dispatch(self, event: object) -> None:
        if isinstance(event, Opened):
            self.channel.admit()  # the peer authenticated: lift the pre-auth limits
            self.opened.set()
            if self.on_open is not None:
                follow_up = self.on_open(self, event)
                if follow_up is not None:
                    self._spawn(follow_up)
        elif isinstance(event, RequestReceived):
            self._spawn(self._serve(event.request))
        elif isinstance(event, ResponseReceived):
            future = self._pending.get(event.response.request_id)
            if future is not None and not future.done():
                if event.response.error is None:
                    future.set_result(event.response.result)
                else:
                    code, message = event.response.error
                    future.set_exception(RequestError(_code(code), message))
        elif isinstance(event, NotifyReceived):
            if self.on_notify is not None:
                self.on_notify(event.notify)  # a malformed one ends the session (caller)
        elif isinstance(event, Closed):
            self._finish(event)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._group is None:
            coro.close()
            raise RuntimeError("the session is not running")
        task = self._group.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, request: Request) -> None:
        async with self._serving:
            result: Any = None
            error: tuple[int, str] | None = None
            try:
                if self.handle_request is None:
                    raise RequestError(ErrorCode.UNKNOWN_OPERATION, "this node serves nothing")
                result = await self.handle_request(request.operation, request.args)
            except ProtocolError as exc:
                error = (int(exc.code), exc.message)
                if exc.code is ErrorCode.MALFORMED:
                    self.session.respond(request.request_id, None, error)
                    await self.close(ErrorCode.MALFORMED, exc.message)
                    return
            except Exception:
                log.exception("serving a request failed", extra={"operation": request.operation})
                error = (int(ErrorCode.INTERNAL), "internal error")
            self.session.respond(request.request_id, result, error)
            with contextlib.suppress(ChannelClosed):
                await self._flush()

    def _finish(self, event: Closed) -> None:
        if self.close_reason is None:
            self.close_reason = event
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(PeerClosedError(_code(event.code), event.message))
        self.closed.set()
        self.opened.set()  # wake anyone waiting for the handshake: it is over either way


def _code(value: int) -> ErrorCode:
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.INTERNAL
