"""Errors, limits and field checks of the reference's HTTP sync API (reference-formats §3.1).

An ``HttpError``'s ``kind`` decides the status the reference answers with
(``MindooDBServer.getStatusForErrorType``); the limits are the reference server's
(``src/node/server/validation.ts``). Parsing a peer's JSON goes through the checks here, so a
bad field is a 400 with a message, never a crash.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from store.entry import EntryMetadata
from store.errors import EntryFormatError
from store.json_codec import metadata_from_json

PROTOCOL_VERSION = "sync-v5"

# Limits of the reference server (src/node/server/validation.ts, MindooDBServer).
MAX_HAVE_IDS = 100_000
MAX_ENTRY_IDS = 100_000
MAX_PUT_ENTRIES = 10_000
MAX_PEM_LENGTH = 8192
MAX_SIGNATURE_LENGTH = 4096
MAX_CHALLENGE_LENGTH = 4096
MAX_USERNAME_LENGTH = 256
MAX_SCAN_PAGE = 1000
#: Express's "5mb" is 5 MiB; bodies above it get 413.
DEFAULT_BODY_LIMIT = 5 * 1024 * 1024
DEFAULT_BODY_LIMIT_TEXT = "5mb"
#: Longest entry id, doc id or cursor id a request may carry (ours are far shorter).
MAX_ID_LENGTH = 1024

_DB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


# -- errors ------------------------------------------------------------------------------------
class ErrorKind(StrEnum):
    """The reference's ``NetworkErrorType`` values plus the HTTP layer's own failures."""

    INVALID_TOKEN = "INVALID_TOKEN"
    USER_REVOKED = "USER_REVOKED"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    CHALLENGE_EXPIRED = "CHALLENGE_EXPIRED"
    ACCESS_DENIED = "ACCESS_DENIED"
    VALIDATION = "VALIDATION"
    NOT_FOUND = "NOT_FOUND"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
    CONFLICT = "CONFLICT"
    UNAVAILABLE = "UNAVAILABLE"
    SERVER_ERROR = "SERVER_ERROR"
    NETWORK_ERROR = "NETWORK_ERROR"


_STATUS = {
    ErrorKind.INVALID_TOKEN: 401,
    ErrorKind.USER_REVOKED: 403,
    ErrorKind.USER_NOT_FOUND: 404,
    # The reference answers 403 here although its docs say 401 (reference-formats §3.1).
    ErrorKind.INVALID_SIGNATURE: 403,
    ErrorKind.CHALLENGE_EXPIRED: 401,
    ErrorKind.ACCESS_DENIED: 403,
    ErrorKind.VALIDATION: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.PAYLOAD_TOO_LARGE: 413,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.CONFLICT: 409,
    ErrorKind.UNAVAILABLE: 503,
}


def status_for(kind: ErrorKind) -> int:
    """The HTTP status the reference server answers for an error of ``kind``."""
    return _STATUS.get(kind, 500)


class HttpError(Exception):
    """A request failed; ``kind`` decides the status, ``message`` goes to the peer as ``{error}``.

    ``detail`` is what this node logs but does not tell the peer; ``retry_after_s`` (a spent
    rate limit) goes out as ``Retry-After``.
    """

    def __init__(
        self, kind: ErrorKind, message: str, *, detail: str = "", retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        return status_for(self.kind)

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message}


def error_from_response(status: int, body: Any) -> HttpError:
    """The error a reference client reads from a failed answer (``HttpTransport``'s mapping)."""
    message = body.get("error") if isinstance(body, Mapping) else None
    text = message if isinstance(message, str) else f"HTTP {status}"
    kind = {
        401: ErrorKind.INVALID_TOKEN,
        403: ErrorKind.USER_REVOKED,
        404: ErrorKind.USER_NOT_FOUND,
        413: ErrorKind.PAYLOAD_TOO_LARGE,
        429: ErrorKind.RATE_LIMITED,
    }.get(status, ErrorKind.SERVER_ERROR)
    return HttpError(kind, text[:1000])


def invalid(message: str) -> HttpError:
    return HttpError(ErrorKind.VALIDATION, message)


# -- field checks ------------------------------------------------------------------------------
def _obj(value: Any, what: str = "request body") -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid(f"{what} must be a JSON object")
    return value


def _str(value: Any, name: str, max_len: int = MAX_ID_LENGTH) -> str:
    if not isinstance(value, str) or not value:
        raise invalid(f"{name} is required")
    if len(value) > max_len:
        raise invalid(f"{name} must be at most {max_len} characters")
    return value


def _opt_str(value: Any, name: str, max_len: int = MAX_ID_LENGTH) -> str | None:
    return None if value is None else _str(value, name, max_len)


def _int(value: Any, name: str, low: int = -(1 << 63), high: int = (1 << 63) - 1) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(f"{name} must be an integer")
    return value


def _opt_int(value: Any, name: str) -> int | None:
    return None if value is None else _int(value, name)


def _ids(value: Any, name: str, max_count: int) -> tuple[str, ...]:
    """An optional list of ids (absent = empty, as the reference's ``ids || []``)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid(f"{name} must be an array")
    if len(value) > max_count:
        raise invalid(f"{name} must contain at most {max_count} elements (received {len(value)})")
    for item in value:
        if not isinstance(item, str) or len(item) > MAX_ID_LENGTH:
            raise invalid(f"{name} must be an array of ids")
    return tuple(value)


def check_db_id(value: Any) -> str:
    """A database id as the reference validates it (``getDatabaseIdValidationError``)."""
    if not isinstance(value, str) or not _DB_ID.match(value):
        raise invalid("dbId must be 1-64 characters of letters, digits, '.', '_' or '-'")
    return value


def check_tenant_id(value: str) -> str:
    """A tenant id from a path, lowercased as the reference's ``tenantMiddleware`` does."""
    lowered = value.lower()
    if not _TENANT_ID.match(lowered):
        raise invalid("Invalid tenant ID format")
    return lowered


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(value: Any, name: str, max_bytes: int) -> bytes:
    if not isinstance(value, str) or len(value) > (max_bytes * 4) // 3 + 4:
        raise invalid(f"{name} must be base64 text of at most {max_bytes} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid(f"{name} is not valid base64") from exc


def _meta(obj: Any) -> EntryMetadata:
    """Metadata from JSON, keeping the sender's ``receiptOrder`` (a scan's order; a store that
    takes the entry in assigns its own)."""
    try:
        meta = metadata_from_json(obj)
    except EntryFormatError as exc:
        raise invalid(f"bad entry metadata: {exc}") from exc
    order = obj.get("receiptOrder")
    if isinstance(order, int) and not isinstance(order, bool) and 0 < order < (1 << 63):
        meta = meta.with_receipt_order(order)
    return meta


def _meta_list(value: Any, name: str = "entries") -> tuple[EntryMetadata, ...]:
    if not isinstance(value, list):
        raise invalid(f"{name} must be an array")
    return tuple(_meta(item) for item in value)
