"""``MindoodClient``: the async Python client of a running ``mindood`` daemon.

Applications import this instead of linking the crypto themselves::

    from mindood.client import MindoodClient, op_set, op_increment

    async with await MindoodClient.connect() as client:        # default socket, or a path
        doc = await client.doc_create("acme", "contacts", {"name": "Ada", "visits": counter(0)})
        await client.doc_change("acme", "contacts", doc["id"], [op_increment(["visits"])])
        async with await client.subscribe(["doc.changed"], tenant="acme") as sub:
            async for note in sub:
                print(note.method, note.params["doc_ids"])

Every method sends one msgpack-RPC request (see :mod:`mindood.rpc.wire`) and returns the result,
or raises the :class:`~mindood.rpc.errors.RpcError` subclass matching the daemon's error code
(``TenantLockedError``, ``NotFoundError``, ``WrongPasswordRpcError``, ...). Many requests may be
in flight on one client at once; answers are matched by message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from mindood.client_admin import AdminMethods
from mindood.client_api import ApiMethods, rpc
from mindood.client_attachments import AttachmentMethods
from mindood.client_history import HistoryMethods
from mindood.daemon.paths import client_socket
from mindood.errors import MindoodError
from mindood.rpc.errors import RpcError, error_from_wire
from mindood.rpc.wire import (
    MAX_MSGID,
    BadMessageError,
    FrameLimits,
    Notification,
    Response,
    make_unpacker,
    parse_message,
    request_frame,
)

log = logging.getLogger("mindood.client")

#: What the client accepts from the daemon: generous, but bounded.
CLIENT_LIMITS = FrameLimits(
    max_frame_bytes=256 * 1024 * 1024,
    max_str_bytes=256 * 1024 * 1024,
    max_bin_bytes=256 * 1024 * 1024,
    max_array_len=10_000_000,
    max_map_len=10_000_000,
)
_ORPHANS_PER_SUBSCRIPTION = 1000


class DaemonConnectionError(MindoodError):
    """The daemon is not reachable, or the connection to it was lost."""


@dataclass(frozen=True, slots=True)
class Note:
    """A notification pushed by the daemon (``method`` is the topic, e.g. ``doc.changed``)."""

    method: str
    params: dict[str, Any]


# -- building operations (see mindood.daemon.docops) ---------------------------------------------
def text(value: str) -> dict[str, str]:
    """A value that becomes a collaborative text."""
    return {"$text": value}


def counter(value: int = 0) -> dict[str, int]:
    """A value that becomes a CRDT counter."""
    return {"$counter": value}


#: A field name, or a path of keys and list indexes (``["address", "city"]``, ``["tags", 0]``).
DocPath = str | Sequence[str | int]


def _path(path: DocPath) -> str | list[str | int]:
    """A string is one field name, never the path of its characters."""
    return path if isinstance(path, str) else list(path)


def op_set(path: DocPath, value: Any) -> dict[str, Any]:
    return {"op": "set", "path": _path(path), "value": value}


def op_delete(path: DocPath) -> dict[str, Any]:
    return {"op": "delete", "path": _path(path)}


def op_insert(path: DocPath, index: int, value: Any) -> dict[str, Any]:
    return {"op": "insert", "path": _path(path), "index": index, "value": value}


def op_splice(path: DocPath, index: int, delete: int = 0, text: str = "") -> dict[str, Any]:
    return {"op": "splice", "path": _path(path), "index": index, "delete": delete, "text": text}


def op_increment(path: DocPath, by: int = 1) -> dict[str, Any]:
    return {"op": "increment", "path": _path(path), "by": by}


class ClientSubscription:
    """Notifications of one subscription, in order; close it (or ``async with``) when done."""

    def __init__(self, client: MindoodClient, sub_id: int, topics: list[str], maxsize: int) -> None:
        self.id = sub_id
        self.topics = topics
        self._client = client
        self._queue: asyncio.Queue[Note | None] = asyncio.Queue()
        self._maxsize = maxsize
        self.dropped = 0
        self._closed = False

    def _deliver(self, note: Note | None) -> None:
        if note is not None and self._queue.qsize() >= self._maxsize:
            self.dropped += 1
            return
        self._queue.put_nowait(note)

    async def get(self) -> Note:
        """The next notification (bound the wait with ``asyncio.timeout``)."""
        note = await self._queue.get()
        if note is None:
            self._queue.put_nowait(None)  # stay ended for further readers
            raise DaemonConnectionError("the subscription ended")
        return note

    def __aiter__(self) -> ClientSubscription:
        return self

    async def __anext__(self) -> Note:
        try:
            return await self.get()
        except DaemonConnectionError:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._client._subscriptions.pop(self.id, None)
        self._client._ended.add(self.id)
        self._deliver(None)
        if not self._client.closed:
            with contextlib.suppress(RpcError, DaemonConnectionError):
                await self._client.unsubscribe(self.id)

    async def __aenter__(self) -> ClientSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class MindoodClient(ApiMethods, AttachmentMethods, HistoryMethods, AdminMethods):
    """One connection to the daemon. Use :meth:`connect`; close with ``async with`` or close()."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._subscriptions: dict[int, ClientSubscription] = {}
        self._orphans: dict[int, deque[Note]] = {}
        self._ended: set[int] = set()
        self._write_lock = asyncio.Lock()
        self._fatal: RpcError | None = None
        self._closed = False
        #: Notifications that belong to no subscription (none are sent today).
        self.notifications: asyncio.Queue[Note] = asyncio.Queue(maxsize=1000)
        self._read_task = asyncio.get_running_loop().create_task(
            self._read_loop(), name="mindood-client-read"
        )

    @classmethod
    async def connect(
        cls,
        path: str | Path | None = None,
        *,
        connect_timeout: float = 10.0,
        env: Mapping[str, str] | None = None,
    ) -> MindoodClient:
        """Connect to ``path``, else ``$MINDOOD_SOCKET``, else the default socket."""
        socket_path = Path(path) if path is not None else client_socket(env or os.environ)
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=2**20)
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonConnectionError(
                f"no mindood daemon is listening on {socket_path} (start one with `mindood run`)"
            ) from None
        except PermissionError:
            raise DaemonConnectionError(
                f"permission denied on {socket_path}: the daemon runs as another user"
            ) from None
        except (OSError, TimeoutError) as exc:
            raise DaemonConnectionError(f"cannot connect to {socket_path}: {exc}") from None
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> MindoodClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._read_task
        try:
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()
        except (OSError, TimeoutError):
            pass
        self._fail_all(DaemonConnectionError("the client was closed"))

    # -- the wire ----------------------------------------------------------------------------
    def _next_id(self) -> int:
        while True:
            msgid = next(self._ids) % (MAX_MSGID + 1)
            if msgid not in self._pending:
                return msgid

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Send one request and wait for its result (or its typed error)."""
        if self._closed or self._read_task.done():
            raise self._fatal or DaemonConnectionError("not connected to the daemon")
        msgid = self._next_id()
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msgid] = future
        try:
            frame = request_frame(msgid, method, clean)
            async with self._write_lock:
                self._writer.write(frame)
                await self._writer.drain()
            return await future
        except (ConnectionError, OSError) as exc:
            # The daemon may have said why before it hung up, in a frame the reader has not
            # reached yet when the write fails: let it finish (bounded) before deciding.
            await asyncio.wait({self._read_task}, timeout=1.0)
            if self._fatal is not None:
                raise self._fatal from None
            raise DaemonConnectionError(f"lost the connection to the daemon: {exc}") from None
        finally:
            self._pending.pop(msgid, None)
            if future.done() and not future.cancelled():
                # The reader may have failed it after the write did: this call reported the
                # outcome already, so mark it seen (else asyncio logs "never retrieved").
                future.exception()

    async def _read_loop(self) -> None:
        unpacker = make_unpacker(CLIENT_LIMITS)
        reason: MindoodError = DaemonConnectionError("the daemon closed the connection")
        try:
            while True:
                data = await self._reader.read(64 * 1024)
                if not data:
                    break
                unpacker.feed(data)
                for obj in unpacker:
                    self._dispatch(obj)
        except (ConnectionError, OSError) as exc:
            reason = DaemonConnectionError(f"lost the connection to the daemon: {exc}")
        except Exception as exc:  # undecodable data from the daemon: give up on this connection
            reason = DaemonConnectionError(f"bad data from the daemon: {exc}")
        self._fail_all(self._fatal or reason)

    def _dispatch(self, obj: object) -> None:
        try:
            message = parse_message(obj)
        except BadMessageError:
            if isinstance(obj, list) and len(obj) == 4 and obj[0] == 1 and obj[1] is None:
                self._fatal = error_from_wire(obj[2])  # connection-level error from the daemon
            else:
                log.warning("ignoring a malformed message from the daemon")
            return
        if isinstance(message, Response):
            future = self._pending.get(message.msgid)
            if future is None or future.done():
                return
            if message.error is not None:
                future.set_exception(error_from_wire(message.error))
            else:
                future.set_result(message.result)
        elif isinstance(message, Notification):
            self._route(Note(message.method, message.params))

    def _route(self, note: Note) -> None:
        sub_id = note.params.get("subscription")
        if isinstance(sub_id, int):
            sub = self._subscriptions.get(sub_id)
            if sub is not None:
                sub._deliver(note)
                return
            if sub_id in self._ended:
                return
            # The notification overtook the answer to ``subscribe``: keep it for a moment.
            orphans = self._orphans.setdefault(sub_id, deque(maxlen=_ORPHANS_PER_SUBSCRIPTION))
            orphans.append(note)
            return
        with contextlib.suppress(asyncio.QueueFull):
            self.notifications.put_nowait(note)

    def _fail_all(self, error: MindoodError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        for sub in list(self._subscriptions.values()):
            sub._deliver(None)

    # -- subscriptions -----------------------------------------------------------------------
    @rpc("subscribe")
    async def subscribe(
        self,
        topics: Sequence[str] | None = None,
        *,
        tenant: str | None = None,
        db: str | None = None,
        maxsize: int = 10_000,
    ) -> ClientSubscription:
        """Start receiving notifications (all topics unless ``topics`` narrows them)."""
        result = await self.call(
            "subscribe",
            {"topics": list(topics) if topics is not None else None, "tenant": tenant, "db": db},
        )
        sub = ClientSubscription(self, int(result["subscription"]), list(result["topics"]), maxsize)
        self._subscriptions[sub.id] = sub
        for note in self._orphans.pop(sub.id, ()):
            sub._deliver(note)
        return sub

    @rpc("unsubscribe")
    async def unsubscribe(self, subscription: int) -> None:
        """End a subscription by id (``ClientSubscription.close`` does this for you)."""
        await self.call("unsubscribe", {"subscription": subscription})


__all__ = [
    "ClientSubscription",
    "DaemonConnectionError",
    "MindoodClient",
    "Note",
    "counter",
    "op_delete",
    "op_increment",
    "op_insert",
    "op_set",
    "op_splice",
    "text",
]
