"""The client side of the reference's HTTP sync API, without I/O: what the remote store needs.

The parts here are pure so they can be tested with real inputs and no socket: errors as a
sync driver sees them (``wire.error_from_response`` decides what a status means), the token
cache (a token is used until 60 s before its ``exp``, the reference client's buffer), and
body-limit batching (partition to the advertised limit, halve a batch the server answers 413
to, as the reference's ``HttpTransport`` does). ``HttpFetcher`` is the small interface the
transport implements. The SSE parser is ``protocol.http.sse``, shared with the server.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from protocol.errors import ErrorCode, RequestError
from protocol.http.checks import ErrorKind, HttpError, error_from_response

T = TypeVar("T")
R = TypeVar("R")

#: A token is renewed this long before its ``exp`` (the reference client's one-minute buffer).
TOKEN_RENEW_MARGIN = 60.0
#: Lifetime assumed for a token whose payload cannot be read (the reference's fallback).
TOKEN_DEFAULT_LIFETIME = 3600.0


# -- the transport's interface -------------------------------------------------------------------
class HttpReply(Protocol):
    """A whole (bounded) response, as the transport read it."""

    @property
    def status(self) -> int: ...

    @property
    def content_type(self) -> str: ...

    @property
    def body(self) -> bytes: ...

    @property
    def retry_after(self) -> str:
        """The ``Retry-After`` header ("" without one): what a 429 asks the client to wait."""
        ...


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    content_type: str
    body: bytes
    retry_after: str = ""


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
    ) -> HttpReply: ...

    def stream(
        self,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[HttpEventStream]: ...


# -- errors --------------------------------------------------------------------------------------
_CODES = {
    ErrorKind.INVALID_TOKEN: ErrorCode.AUTH_FAILED,
    ErrorKind.USER_REVOKED: ErrorCode.REFUSED,
    ErrorKind.USER_NOT_FOUND: ErrorCode.UNKNOWN_DATABASE,
    ErrorKind.PAYLOAD_TOO_LARGE: ErrorCode.TOO_LARGE,
    ErrorKind.RATE_LIMITED: ErrorCode.TIMEOUT,
}


class HttpCallError(RequestError):
    """The server answered an error status; ``kind`` is what the reference client reads from
    it (``wire.error_from_response``: 401 invalid token, 403 revoked/denied, 413 too large...).

    A ``RequestError``, so the sync driver retries the database with backoff like any failed
    request to a native peer.
    """

    def __init__(self, error: HttpError, status: int) -> None:
        super().__init__(_CODES.get(error.kind, ErrorCode.INTERNAL), error.message)
        self.kind = error.kind
        self.status = status


class BadResponse(RequestError):
    """The server's answer did not parse as the API says (not JSON, wrong shape, over limits)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.MALFORMED, message)


class Unreachable(RequestError):
    """The request got no answer (connection refused, reset, timed out, body over the limit)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.TIMEOUT, message)


def error_for(response: HttpReply) -> HttpCallError:
    """The error an HTTP error status stands for, with the server's ``{error}`` message."""
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    return HttpCallError(error_from_response(response.status, body), response.status)


def too_large(message: str) -> HttpCallError:
    return HttpCallError(HttpError(ErrorKind.PAYLOAD_TOO_LARGE, message), 413)


def json_body(response: HttpReply) -> Any:
    """The response's JSON, or the error its status means."""
    if not 200 <= response.status < 300:
        raise error_for(response)
    try:
        return json.loads(response.body)
    except ValueError as exc:
        raise BadResponse(f"the server sent a body that is not JSON: {exc}") from exc


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


# -- body-limit batching -------------------------------------------------------------------------
def partition(sizes: Sequence[int], overhead: int, limit: int | None) -> list[range]:
    """Index ranges whose ``overhead + sum(sizes) (+1 separator each)`` fit ``limit``.

    Raises a 413 ``HttpCallError`` for an item that cannot fit alone (the reference client's rule).
    """
    if limit is None:
        return [range(len(sizes))] if sizes else []
    batches: list[range] = []
    start, used = 0, overhead
    for index, size in enumerate(sizes):
        if overhead + size > limit:
            raise too_large(f"entry {index} alone exceeds the body limit of {limit}")
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
        except HttpCallError as exc:
            if exc.kind is not ErrorKind.PAYLOAD_TOO_LARGE or hi - lo <= 1:
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
