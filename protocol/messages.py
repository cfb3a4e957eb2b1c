"""Protocol messages: one msgpack array per transport frame, a type code first.

Every message is a frozen dataclass with ``to_wire``/``from_wire``; ``decode`` dispatches through
one code-to-class table and checks every field's type and size next to the rule it enforces.
Anything else raises ``RemoteProtocolError``: the peer sent it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

import msgpack

from protocol.errors import ErrorCode, RemoteProtocolError
from store.limits import ENTRY_ENVELOPE_BYTES, MAX_ENTRY_BYTES

#: Magic opening every HELLO: an unknown magic means "not a mindood peer", not "old version".
MAGIC = b"MDBSYNC"
#: 2: a ``get`` answer carries refusals by id (``[entries, refused]``); typed requests.
PROTOCOL_VERSION = 2
MIN_PROTOCOL_VERSION = 2


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard bounds on what a peer may send; past any of them the session is closed."""

    max_message_bytes: int = 32 * 1024 * 1024
    #: Any frame before the session is open (HELLO, AUTH, SESSION_KEY, ERROR are far smaller).
    max_handshake_bytes: int = 64 * 1024
    max_text: int = 8192
    max_list: int = 20_000
    max_in_flight_requests: int = 64
    max_batch_bytes: int = 8 * 1024 * 1024


DEFAULT_LIMITS = Limits()

# A get response carries at least one entry, so the largest entry any node may write, with its
# metadata and seal, must fit in one message (the arithmetic is in store/limits.py).
assert DEFAULT_LIMITS.max_message_bytes >= MAX_ENTRY_BYTES + ENTRY_ENVELOPE_BYTES


class MessageType(IntEnum):
    HELLO = 1
    AUTH = 2
    SESSION_KEY = 3
    ERROR = 4
    REQUEST = 5
    RESPONSE = 6
    NOTIFY = 7
    BYE = 8


def _bad(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, message)


def text(value: Any, field: str, limits: Limits = DEFAULT_LIMITS) -> str:
    if not isinstance(value, str) or len(value) > limits.max_text:
        raise _bad(f"{field} must be a string of at most {limits.max_text} characters")
    return value


def binary(value: Any, field: str, max_len: int) -> bytes:
    if not isinstance(value, bytes) or len(value) > max_len:
        raise _bad(f"{field} must be binary of at most {max_len} bytes")
    return value


def integer(value: Any, field: str, low: int = 0, high: int = (1 << 63) - 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(f"{field} must be an integer in [{low}, {high}]")
    return value


def array(value: Any, field: str, limits: Limits = DEFAULT_LIMITS) -> list[Any]:
    if not isinstance(value, list) or len(value) > limits.max_list:
        raise _bad(f"{field} must be an array of at most {limits.max_list} items")
    return value


def texts(value: Any, field: str, limits: Limits = DEFAULT_LIMITS) -> tuple[str, ...]:
    return tuple(text(item, field, limits) for item in array(value, field, limits))


@dataclass(frozen=True, slots=True)
class Hello:
    """Opens a session: versions, capabilities, the tenant wanted, and a fresh challenge.

    Nothing in it names this node, a path or a user: the peer is a stranger. The last wire slot
    once carried a node name; it is sent empty and ignored, so the previous release still parses.
    """

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    version: int
    min_version: int
    tenant_id: str
    challenge: bytes
    capabilities: tuple[str, ...] = ()

    def to_wire(self) -> list[Any]:
        return [
            self.TYPE,
            MAGIC,
            self.version,
            self.min_version,
            self.tenant_id,
            self.challenge,
            list(self.capabilities),
            "",
        ]

    @classmethod
    def from_wire(cls, body: list[Any], limits: Limits) -> Hello:
        if len(body) != 8 or body[1] != MAGIC:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "not a mindood sync peer (bad magic)")
        text(body[7], "reserved", limits)  # the former node name: checked, then ignored
        return cls(
            version=integer(body[2], "version", 0, 1 << 16),
            min_version=integer(body[3], "min_version", 0, 1 << 16),
            tenant_id=text(body[4], "tenant_id", limits),
            challenge=binary(body[5], "challenge", 64),
            capabilities=texts(body[6], "capabilities", limits),
        )


@dataclass(frozen=True, slots=True)
class Auth:
    """Proves the sender holds ``identity``'s key, over both challenges and the channel.

    ``encryption_key`` (RSA PEM) is what the sender wants payload keys wrapped to; it is signed
    too, and a peer the directory knows must match the directory's key for that identity.
    """

    TYPE: ClassVar[MessageType] = MessageType.AUTH
    identity: str
    encryption_key: str
    signature: bytes

    def to_wire(self) -> list[Any]:
        return [self.TYPE, self.identity, self.encryption_key, self.signature]

    @classmethod
    def from_wire(cls, body: list[Any], limits: Limits) -> Auth:
        if len(body) != 4:
            raise _bad("AUTH has 3 fields")
        return cls(
            text(body[1], "identity", limits),
            text(body[2], "encryption_key", limits),
            binary(body[3], "signature", 128),
        )


@dataclass(frozen=True, slots=True)
class SessionKey:
    """The sender's payload key for this session, wrapped to the receiver's RSA key."""

    TYPE: ClassVar[MessageType] = MessageType.SESSION_KEY
    wrapped_key: bytes

    def to_wire(self) -> list[Any]:
        return [self.TYPE, self.wrapped_key]

    @classmethod
    def from_wire(cls, body: list[Any], limits: Limits) -> SessionKey:
        if len(body) != 2:
            raise _bad("SESSION_KEY has 1 field")
        return cls(binary(body[1], "wrapped_key", 2048))


@dataclass(frozen=True, slots=True)
class Error:
    """The sender is closing the session, and says why."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR
    code: int
    message: str

    def to_wire(self) -> list[Any]:
        return [self.TYPE, self.code, self.message]

    @classmethod
    def from_wire(cls, body: list[Any], limits: Limits) -> Error:
        if len(body) != 3:
            raise _bad("ERROR has 2 fields")
        return cls(integer(body[1], "code", 0, 1 << 16), text(body[2], "message", limits))


@dataclass(frozen=True, slots=True)
class Request:
    TYPE: ClassVar[MessageType] = MessageType.REQUEST
    request_id: int
    operation: str
    args: tuple[Any, ...]

    def to_wire(self) -> list[Any]:
        return [self.TYPE, self.request_id, self.operation, list(self.args)]

    @classmethod
    def from_wire(cls, body: list[Any], limits: Limits) -> Request:
        if len(body) != 4:
            raise _bad("REQUEST has 3 fields")
        return cls(
            integer(body[1], "request_id", 0, (1 << 32) - 1),
            text(body[2], "operation", limits),
            tuple(array(body[3], "args", limits)),
        )


@dataclass(frozen=True, slots=True)
class Response:
    """``error`` is ``(code, message)`` for a failed request, else ``result`` holds the answer."""

    TYPE: ClassVar[MessageType] = MessageType.RESPONSE
    request_id: int
    result: Any = None
    error: tuple[int, str] | None = None

    def to_wire(self) -> list[Any]:
        error = None if self.error is None else list(self.error)
        return [self.TYPE, self.request_id, error, self.result]

    @classmethod
    def from_wire(cls, body: list[Any], limits: Limits) -> Response:
        if len(body) != 4:
            raise _bad("RESPONSE has 3 fields")
        error: tuple[int, str] | None = None
        if body[2] is not None:
            pair = array(body[2], "error", limits)
            if len(pair) != 2:
                raise _bad("a response error is [code, message]")
            error = (integer(pair[0], "error code", 0, 1 << 16), text(pair[1], "error", limits))
        return cls(integer(body[1], "request_id", 0, (1 << 32) - 1), body[3], error)


@dataclass(frozen=True, slots=True)
class Notify:
    """Unsolicited news from the peer, e.g. a database it serves has new entries."""

    TYPE: ClassVar[MessageType] = MessageType.NOTIFY
    topic: str
    args: tuple[Any, ...]

    def to_wire(self) -> list[Any]:
        return [self.TYPE, self.topic, list(self.args)]

    @classmethod
    def from_wire(cls, body: list[Any], limits: Limits) -> Notify:
        if len(body) != 3:
            raise _bad("NOTIFY has 2 fields")
        return cls(text(body[1], "topic", limits), tuple(array(body[2], "args", limits)))


@dataclass(frozen=True, slots=True)
class Bye:
    """A clean goodbye; no error."""

    TYPE: ClassVar[MessageType] = MessageType.BYE

    def to_wire(self) -> list[Any]:
        return [self.TYPE]

    @classmethod
    def from_wire(cls, body: list[Any], limits: Limits) -> Bye:
        if len(body) != 1:
            raise _bad("BYE has no fields")
        return cls()


Message = Hello | Auth | SessionKey | Error | Request | Response | Notify | Bye

_CLASSES: dict[int, Any] = {
    cls.TYPE: cls for cls in (Hello, Auth, SessionKey, Error, Request, Response, Notify, Bye)
}


def encode(message: Message) -> bytes:
    return msgpack.packb(message.to_wire(), use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Parse one frame; anything malformed or oversized is the peer's ``RemoteProtocolError``."""
    if len(data) > limits.max_message_bytes:
        raise RemoteProtocolError(ErrorCode.TOO_LARGE, f"message of {len(data)} bytes is too large")
    try:
        body = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_bin_len=limits.max_message_bytes,
            max_str_len=limits.max_text * 4,
            max_array_len=limits.max_list,
            max_map_len=limits.max_list,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.FormatError, msgpack.StackError) as exc:
        raise _bad(f"not a msgpack message: {exc}") from exc
    if not isinstance(body, list) or not body:
        raise _bad("a message is a non-empty array")
    kind = body[0]
    cls = _CLASSES.get(kind) if isinstance(kind, int) and not isinstance(kind, bool) else None
    if cls is None:
        raise _bad(f"unknown message type {kind!r}")
    message: Message = cls.from_wire(body, limits)
    return message
