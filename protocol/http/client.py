"""The client side of the reference's HTTP sync API, without I/O: what the remote store needs.

The parts here are pure so they can be tested with real inputs and no socket: the error each
HTTP status means (as the reference's ``HttpTransport`` maps them), the token cache (a token is
used until 60 s before its ``exp``, the reference client's buffer), the SSE parser (as the
reference client reads ``text/event-stream``: events split on a bare ``"\\n\\n"``, lines on
``"\\n"``, comments and heartbeats ignored, only ``change`` events whose data has a string
``dbId``), and body-limit batching (partition to the advertised limit, halve a batch the server
answers 413 to). ``HttpFetcher`` is the small interface the transport implements.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from protocol.errors import ErrorCode, RequestError

T = TypeVar("T")
R = TypeVar("R")

#: A token is renewed this long before its ``exp`` (the reference client's one-minute buffer).
TOKEN_RENEW_MARGIN = 60.0
#: Lifetime assumed for a token whose payload cannot be read (the reference's fallback).
TOKEN_DEFAULT_LIFETIME = 3600.0
#: One SSE event may not grow past this before its blank line (a server cannot fill our memory).
MAX_SSE_EVENT_BYTES = 64 * 1024


# -- the transport's interface -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    content_type: str
    body: bytes


class HttpEventStream(Protocol):
    """An open streaming response (an SSE feed): its status, then its body in chunks."""

    @property
    def status(self) -> int: ...

    async def read_body(self) -> bytes:
        """The whole (bounded) body, for an error status."""
        ...

    def chunks(self) -> AsyncIterator[bytes]: ...


class HttpFetcher(Protocol):
    """One HTTP origin (``https://host[:port]``): what ``transports.http_client`` provides.

    ``path`` starts with ``/``. Transport failures (refused, reset, timed out, body over the
    limit) raise ``OSError`` or ``TimeoutError``; an HTTP error status is a response, not an error.
    """

    @property
    def origin(self) -> str: ...

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpResponse: ...

    def stream(
        self,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[HttpEventStream]: ...


# -- errors --------------------------------------------------------------------------------------
class HttpSyncError(RequestError):
    """The server answered an error status; ``status`` and its ``{error}`` text."""

    CODE = ErrorCode.INTERNAL

    def __init__(self, status: int, message: str) -> None:
        super().__init__(self.CODE, message)
        self.status = status


class BadRequest(HttpSyncError):
    CODE = ErrorCode.BAD_ARGUMENTS


class InvalidToken(HttpSyncError):
    """401: the token expired or the server restarted (its secret is per process): re-auth."""

    CODE = ErrorCode.AUTH_FAILED


class AccessDenied(HttpSyncError):
    """403: revoked user, bad signature, or a database this user may not open."""

    CODE = ErrorCode.REFUSED


class NotFound(HttpSyncError):
    CODE = ErrorCode.UNKNOWN_DATABASE


class PayloadTooLarge(HttpSyncError):
    """413: the request body is over the server's limit (or one entry alone would be)."""

    CODE = ErrorCode.TOO_LARGE


class RateLimited(HttpSyncError):
    CODE = ErrorCode.TIMEOUT


class ServerError(HttpSyncError):
    CODE = ErrorCode.INTERNAL


class BadResponse(RequestError):
    """The server's answer did not parse as the API says (not JSON, wrong shape, over limits)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.MALFORMED, message)


class Unreachable(RequestError):
    """The request did not get an answer (connection refused, reset, timed out)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.TIMEOUT, message)


_BY_STATUS: dict[int, type[HttpSyncError]] = {
    400: BadRequest,
    401: InvalidToken,
    403: AccessDenied,
    404: NotFound,
    413: PayloadTooLarge,
    429: RateLimited,
}


def error_for(response: HttpResponse) -> HttpSyncError:
    """The error an HTTP error status stands for, with the server's ``{error}`` message."""
    message = f"HTTP {response.status}"
    try:
        data = json.loads(response.body)
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            message = data["error"][:500]
    except ValueError:
        pass
    return _BY_STATUS.get(response.status, ServerError)(response.status, message)


def json_body(response: HttpResponse) -> dict[str, Any]:
    """The response's JSON object, or the error its status means."""
    if not 200 <= response.status < 300:
        raise error_for(response)
    try:
        data = json.loads(response.body)
    except ValueError as exc:
        raise BadResponse(f"the server sent a body that is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadResponse("the server sent JSON that is not an object")
    return data


# -- tokens --------------------------------------------------------------------------------------
def token_expiry(token: str, now: float) -> float:
    """When a JWT expires (its ``exp``, seconds); unreadable payloads get the default lifetime.

    The client does not verify the token (only the server can): ``exp`` only decides when to
    ask for a new one.
    """
    parts = token.split(".")
    if len(parts) == 3:
        try:
            raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
            exp = json.loads(raw).get("exp")
            if isinstance(exp, int | float) and not isinstance(exp, bool) and math.isfinite(exp):
                return float(exp)
        except (ValueError, binascii.Error, AttributeError):
            pass
    return now + TOKEN_DEFAULT_LIFETIME


@dataclass(slots=True)
class TokenCache:
    """The bearer token of one server and tenant, shared by every store of that pair."""

    token: str | None = None
    expires_at: float = 0.0

    def current(self, now: float) -> str | None:
        """The token if it is still good for more than the renew margin."""
        if self.token is not None and self.expires_at > now + TOKEN_RENEW_MARGIN:
            return self.token
        return None

    def store(self, token: str, now: float) -> None:
        self.token = token
        self.expires_at = token_expiry(token, now)

    def clear(self, token: str | None = None) -> None:
        """Forget the token (only if it is still ``token``, when given: a newer one stays)."""
        if token is None or token == self.token:
            self.token = None
            self.expires_at = 0.0


# -- SSE -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A ``change`` event: store ``kind`` of ``db`` grew (head fields when the server sent them)."""

    db: str
    kind: str | None = None
    epoch: str | None = None
    max_receipt_order: int | None = None


class SseTooLarge(BadResponse):
    def __init__(self) -> None:
        super().__init__(f"an SSE event grew past {MAX_SSE_EVENT_BYTES} bytes")


class SseParser:
    """Feeds on the bytes of a ``text/event-stream`` body; yields ``change`` events."""

    def __init__(self, max_event_bytes: int = MAX_SSE_EVENT_BYTES) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._max = max_event_bytes

    def feed(self, data: bytes) -> list[ChangeEvent]:
        self._buffer += self._decoder.decode(data)
        events: list[ChangeEvent] = []
        while (end := self._buffer.find("\n\n")) >= 0:
            block, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            event = parse_sse_block(block)
            if event is not None:
                events.append(event)
        if len(self._buffer) > self._max:
            raise SseTooLarge()
        return events


def parse_sse_block(block: str) -> ChangeEvent | None:
    """One event block as the reference client reads it; ``None`` for anything but a change."""
    name = "message"
    data: list[str] = []
    for line in block.split("\n"):
        if line.startswith(":"):
            continue  # a comment: the heartbeat
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if name != "change" or not data:
        return None
    try:
        payload = json.loads("\n".join(data))
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("dbId"), str):
        return None
    kind, epoch, head = (
        payload.get("storeKind"),
        payload.get("epoch"),
        payload.get("maxReceiptOrder"),
    )
    return ChangeEvent(
        payload["dbId"],
        kind if isinstance(kind, str) else None,
        epoch if isinstance(epoch, str) else None,
        head if isinstance(head, int) and not isinstance(head, bool) else None,
    )


# -- body-limit batching -------------------------------------------------------------------------
def partition(sizes: Sequence[int], overhead: int, limit: int | None) -> list[range]:
    """Index ranges whose ``overhead + sum(sizes) (+1 separator each)`` fit ``limit``.

    Raises ``PayloadTooLarge`` for an item that cannot fit alone (the reference client's rule).
    """
    if limit is None:
        return [range(len(sizes))] if sizes else []
    batches: list[range] = []
    start, used = 0, overhead
    for index, size in enumerate(sizes):
        if overhead + size > limit:
            raise PayloadTooLarge(413, f"entry {index} alone exceeds the body limit of {limit}")
        extra = size + (1 if index > start else 0)
        if used + extra > limit and index > start:
            batches.append(range(start, index))
            start, used = index, overhead + size
        else:
            used += extra
    if start < len(sizes):
        batches.append(range(start, len(sizes)))
    return batches


async def send_batched(
    items: Sequence[T],
    send: Callable[[Sequence[T]], Awaitable[R]],
    *,
    sizes: Sequence[int],
    overhead: int,
    limit: int | None,
) -> list[R]:
    """Send ``items`` in batches that fit ``limit``; a batch answered 413 is sent as halves."""
    results: list[R] = []

    async def one(lo: int, hi: int) -> None:
        try:
            results.append(await send(items[lo:hi]))
        except PayloadTooLarge:
            if hi - lo <= 1:
                raise
            middle = lo + (hi - lo + 1) // 2
            await one(lo, middle)
            await one(middle, hi)

    for batch in partition(sizes, overhead, limit):
        await one(batch.start, batch.stop)
    return results


def parse_byte_limit(value: object) -> int | None:
    """``maxJsonRequestBodyBytes`` or the ``"5mb"`` form of ``maxJsonRequestBodyLimit``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if isinstance(value, float) and math.isfinite(value) and value > 0:
        return int(value)
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    units = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
    for unit in ("kb", "mb", "gb", "b"):
        if text.endswith(unit):
            number = text[: -len(unit)].strip()
            break
    else:
        unit, number = "b", text
    try:
        amount = float(number)
    except ValueError:
        return None
    if not math.isfinite(amount) or amount <= 0:
        return None
    return round(amount * units[unit])
