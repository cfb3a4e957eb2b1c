"""msgpack-RPC messages: the three shapes, their validation, and bounded stream decoding.

The msgpack-RPC spec defines::

    request      [0, msgid, method, params]
    response     [1, msgid, error, result]
    notification [2, method, params]

``msgid`` is a 32-bit unsigned integer and ``params`` an array. Our convention for ``params``:
an empty array (no arguments) or an array holding one map of named arguments
(``[0, 7, "doc.get", [{"tenant": "acme", "db": "contacts", "doc_id": "..."}]]``), so every
method has named, self-describing parameters and new optional ones never shift positions.

Everything here is pure (no I/O): the connection feeds bytes to an :class:`msgpack.Unpacker`
built by :func:`make_unpacker`, whose limits bound the buffer and every string, binary, array
and map, so a hostile frame costs at most ``max_frame_bytes`` of memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from mindood.rpc.errors import InvalidRequestError

REQUEST = 0
RESPONSE = 1
NOTIFICATION = 2
MAX_MSGID = 2**32 - 1
MAX_METHOD_CHARS = 128


@dataclass(frozen=True, slots=True)
class FrameLimits:
    """Size limits on incoming frames (every one applies to each frame separately)."""

    max_frame_bytes: int = 16 * 1024 * 1024
    max_str_bytes: int = 4 * 1024 * 1024
    max_bin_bytes: int = 16 * 1024 * 1024
    max_array_len: int = 100_000
    max_map_len: int = 100_000


@dataclass(frozen=True, slots=True)
class Request:
    msgid: int
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Response:
    msgid: int
    error: Any
    result: Any


Message = Request | Notification | Response


class BadMessageError(InvalidRequestError):
    """A frame that decoded but is not a valid message; ``msgid`` is set when it could be read."""

    def __init__(self, message: str, msgid: int | None = None) -> None:
        super().__init__(message)
        self.msgid = msgid


def make_unpacker(limits: FrameLimits) -> msgpack.Unpacker:
    """A streaming decoder bounded by ``limits``; timestamps decode to aware UTC datetimes."""
    return msgpack.Unpacker(
        raw=False,
        use_list=True,
        strict_map_key=True,
        timestamp=3,
        max_buffer_size=limits.max_frame_bytes,
        max_str_len=min(limits.max_str_bytes, limits.max_frame_bytes),
        max_bin_len=min(limits.max_bin_bytes, limits.max_frame_bytes),
        max_array_len=limits.max_array_len,
        max_map_len=limits.max_map_len,
        max_ext_len=min(1024, limits.max_frame_bytes),
    )


def pack(message: list[Any]) -> bytes:
    """Encode one message (``bytes`` as bin, aware datetimes as the timestamp extension)."""
    data: bytes = msgpack.packb(message, use_bin_type=True, datetime=True)
    return data


def request_frame(msgid: int, method: str, params: Mapping[str, Any] | None) -> bytes:
    return pack([REQUEST, msgid, method, [dict(params)] if params else []])


def notification_frame(method: str, params: Mapping[str, Any]) -> bytes:
    return pack([NOTIFICATION, method, [dict(params)]])


def response_frame(msgid: int | None, error: Any, result: Any) -> bytes:
    return pack([RESPONSE, msgid, error, result])


def _msgid(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_MSGID:
        return value
    return None


def _named_params(raw: object, msgid: int | None) -> dict[str, Any]:
    if not isinstance(raw, list):
        raise BadMessageError("params must be an array", msgid)
    if not raw:
        return {}
    if len(raw) != 1 or not isinstance(raw[0], dict):
        raise BadMessageError("params must be [] or [ {named parameters} ]", msgid)
    named: dict[str, Any] = raw[0]
    return named


def _method(raw: object, msgid: int | None) -> str:
    if not isinstance(raw, str) or not raw or len(raw) > MAX_METHOD_CHARS:
        raise BadMessageError(f"method must be a string of 1-{MAX_METHOD_CHARS} chars", msgid)
    return raw


def parse_message(obj: object) -> Message:
    """Validate one decoded frame; :class:`BadMessageError` says what is wrong with it."""
    if not isinstance(obj, list) or not obj:
        raise BadMessageError("a message must be a non-empty array")
    kind = obj[0]
    if kind == REQUEST and not isinstance(kind, bool):
        msgid = _msgid(obj[1]) if len(obj) > 1 else None
        if len(obj) != 4:
            raise BadMessageError("a request is [0, msgid, method, params]", msgid)
        if msgid is None:
            raise BadMessageError("msgid must be an unsigned 32-bit integer")
        return Request(msgid, _method(obj[2], msgid), _named_params(obj[3], msgid))
    if kind == NOTIFICATION and not isinstance(kind, bool):
        if len(obj) != 3:
            raise BadMessageError("a notification is [2, method, params]")
        return Notification(_method(obj[1], None), _named_params(obj[2], None))
    if kind == RESPONSE and not isinstance(kind, bool):
        msgid = _msgid(obj[1]) if len(obj) > 1 else None
        if len(obj) != 4 or msgid is None:
            raise BadMessageError("a response is [1, msgid, error, result]", msgid)
        return Response(msgid, obj[2], obj[3])
    raise BadMessageError("message type must be 0 (request), 1 (response) or 2 (notification)")


__all__ = [
    "MAX_MSGID",
    "NOTIFICATION",
    "REQUEST",
    "RESPONSE",
    "BadMessageError",
    "FrameLimits",
    "Message",
    "Notification",
    "Request",
    "Response",
    "make_unpacker",
    "notification_frame",
    "pack",
    "parse_message",
    "request_frame",
    "response_frame",
]
