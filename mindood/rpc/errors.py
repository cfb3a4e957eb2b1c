"""RPC error codes, the typed errors that carry them, and the one ``MindoodError`` -> code table.

An error response is ``[1, msgid, {"code": int, "message": str, "type": str}, nil]``. Codes from
-32700 to -32600 follow JSON-RPC's meaning (they are what msgpack-RPC implementations commonly
reuse); -32000 and below name our own conditions. Both sides use this module: the daemon turns an
exception into a wire error with :func:`error_to_wire`, the client turns a wire error back into the
matching :class:`RpcError` subclass with :func:`error_from_wire`, so ``except TenantLockedError``
works in an application exactly as it reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from mindood import errors as e
from store import errors as se

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
TENANT_LOCKED = -32001
NOT_FOUND = -32002
NO_KEY = -32003
WRONG_PASSWORD = -32004
ALREADY_EXISTS = -32005
PERMISSION_DENIED = -32006
DOCUMENT_DELETED = -32007
LIMIT_EXCEEDED = -32008
UNAVAILABLE = -32009
STORE_FAILED = -32010
CORRUPT = -32011
TOO_LARGE = -32012

#: Longest message put on the wire (a message quoting hostile input stays bounded).
MAX_MESSAGE_CHARS = 1_000


class RpcError(e.MindoodError):
    """An error with an RPC code: raised by handlers, and by the client for an error response."""

    code: ClassVar[int] = SERVER_ERROR

    def __init__(self, message: str, *, code: int | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # an unknown code from a newer daemon
        self.kind = kind or type(self).__name__

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message[:MAX_MESSAGE_CHARS], "type": self.kind}


class ParseError(RpcError):
    """The bytes on the connection are not MessagePack; the connection is closed after this."""

    code = PARSE_ERROR


class InvalidRequestError(RpcError):
    """A well-formed MessagePack value that is not a msgpack-RPC request."""

    code = INVALID_REQUEST


class MethodNotFoundError(RpcError):
    """No method of that name."""

    code = METHOD_NOT_FOUND


class InvalidParamsError(RpcError):
    """A parameter is missing, of the wrong type or out of range (the message names it)."""

    code = INVALID_PARAMS


class InternalError(RpcError):
    """The daemon hit a bug handling the request; details are in its log, not on the wire."""

    code = INTERNAL_ERROR


class ServerError(RpcError):
    """The request was valid but could not be carried out (the message says why)."""

    code = SERVER_ERROR


class TenantLockedError(RpcError):
    """The tenant exists but is locked: unlock it with its user's password first."""

    code = TENANT_LOCKED


class NotFoundError(RpcError):
    """No such tenant, database, document, user or subscription."""

    code = NOT_FOUND


class NoKeyError(RpcError):
    """This node holds no key that opens the document."""

    code = NO_KEY


class WrongPasswordRpcError(RpcError):
    """The password did not open the session, identity or key."""

    code = WRONG_PASSWORD


class AlreadyExistsError(RpcError):
    """Something of that name exists already (a tenant, a document id)."""

    code = ALREADY_EXISTS


class PermissionDeniedError(RpcError):
    """The caller may not do this (another uid, not the tenant admin, access revoked)."""

    code = PERMISSION_DENIED


class DocumentDeletedRpcError(RpcError):
    """The document is deleted; it can be read but not changed."""

    code = DOCUMENT_DELETED


class LimitExceededError(RpcError):
    """A frame, a connection count or a subscription count went over its configured limit."""

    code = LIMIT_EXCEEDED


class EntryTooLargeRpcError(RpcError):
    """The write would make an entry over the tenant-wide size limit; nothing was stored."""

    code = TOO_LARGE


class UnavailableError(RpcError):
    """The service behind the method is not running (e.g. sync before peers are configured)."""

    code = UNAVAILABLE


class StoreFailedRpcError(RpcError):
    """A database's store is out of service (files damaged, unreadable or misplaced); see why."""

    code = STORE_FAILED


class CorruptDataRpcError(RpcError):
    """Stored bytes were damaged and set aside; a peer with a good copy restores them."""

    code = CORRUPT


_BY_CODE: dict[int, type[RpcError]] = {
    cls.code: cls
    for cls in (
        ParseError,
        InvalidRequestError,
        MethodNotFoundError,
        InvalidParamsError,
        InternalError,
        ServerError,
        TenantLockedError,
        NotFoundError,
        NoKeyError,
        WrongPasswordRpcError,
        AlreadyExistsError,
        PermissionDeniedError,
        DocumentDeletedRpcError,
        LimitExceededError,
        UnavailableError,
        StoreFailedRpcError,
        CorruptDataRpcError,
        EntryTooLargeRpcError,
    )
}

#: The library's errors as RPC codes: the first matching class wins, so narrow types come first.
MINDOOD_ERROR_CODES: tuple[tuple[type[e.MindoodError], int], ...] = (
    (e.WrongPasswordError, WRONG_PASSWORD),
    (e.KeyNotFoundError, NO_KEY),
    (e.DocumentNotFoundError, NOT_FOUND),
    (e.UserNotFoundError, NOT_FOUND),
    (e.GroupNotFoundError, NOT_FOUND),
    (e.DocumentDeletedError, DOCUMENT_DELETED),
    (e.DocumentExistsError, ALREADY_EXISTS),
    (e.EntryTooLargeError, TOO_LARGE),
    (e.NotAdminError, PERMISSION_DENIED),
    (e.AccessRevokedError, PERMISSION_DENIED),
    (e.JoinResponseDeviceMismatchError, INVALID_PARAMS),
    (e.SharePasswordRequiredError, INVALID_PARAMS),
    (e.InvalidNameError, INVALID_PARAMS),
    (e.InvalidUriError, INVALID_PARAMS),
    (e.SessionFormatError, INVALID_PARAMS),
    (e.KeyFormatError, INVALID_PARAMS),
    (e.UnsupportedValueError, INVALID_PARAMS),
    (e.InvalidChangeError, INVALID_PARAMS),
    (e.ProxyClosedError, INVALID_PARAMS),
    (e.CorruptDocumentError, CORRUPT),
)

#: The store layer's errors (not ``MindoodError``s) that reach a method: damage is news for the
#: caller, with the store's own message, never an "internal error".
STORE_ERROR_CODES: tuple[tuple[type[se.StoreError], int], ...] = (
    (se.CorruptEntryError, CORRUPT),
    (se.StoreClosedError, UNAVAILABLE),
    (se.StoreError, STORE_FAILED),
)

#: What a method may raise on purpose: both become a typed error response.
ExpectedError = e.MindoodError | se.StoreError


def code_for(exc: ExpectedError) -> int:
    """The RPC code of a library error (``SERVER_ERROR`` when no narrower code applies)."""
    if isinstance(exc, RpcError):
        return exc.code
    if isinstance(exc, se.StoreError):
        return next(code for cls, code in STORE_ERROR_CODES if isinstance(exc, cls))
    for cls, code in MINDOOD_ERROR_CODES:
        if isinstance(exc, cls):
            return code
    return SERVER_ERROR


def error_to_wire(exc: ExpectedError) -> dict[str, Any]:
    """The error object of a response for a library error raised while handling a request."""
    if isinstance(exc, RpcError):
        return exc.to_wire()
    return {
        "code": code_for(exc),
        "message": (str(exc) or type(exc).__name__)[:MAX_MESSAGE_CHARS],
        "type": type(exc).__name__,
    }


def error_from_wire(raw: object) -> RpcError:
    """The typed error for an error object received from the daemon (tolerant of odd shapes)."""
    if not isinstance(raw, Mapping):
        return ServerError(str(raw)[:MAX_MESSAGE_CHARS])
    code = raw.get("code")
    message = raw.get("message")
    kind = raw.get("type")
    text = message if isinstance(message, str) else str(raw)[:MAX_MESSAGE_CHARS]
    name = kind if isinstance(kind, str) else None
    if not isinstance(code, int) or isinstance(code, bool):
        return ServerError(text, kind=name)
    cls = _BY_CODE.get(code)
    if cls is None:
        return RpcError(text, code=code, kind=name)
    return cls(text, kind=name)


__all__ = [
    "ALREADY_EXISTS",
    "CORRUPT",
    "DOCUMENT_DELETED",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "LIMIT_EXCEEDED",
    "METHOD_NOT_FOUND",
    "MINDOOD_ERROR_CODES",
    "NOT_FOUND",
    "NO_KEY",
    "PARSE_ERROR",
    "PERMISSION_DENIED",
    "SERVER_ERROR",
    "STORE_ERROR_CODES",
    "STORE_FAILED",
    "TENANT_LOCKED",
    "TOO_LARGE",
    "UNAVAILABLE",
    "WRONG_PASSWORD",
    "AlreadyExistsError",
    "CorruptDataRpcError",
    "DocumentDeletedRpcError",
    "EntryTooLargeRpcError",
    "ExpectedError",
    "InternalError",
    "InvalidParamsError",
    "InvalidRequestError",
    "LimitExceededError",
    "MethodNotFoundError",
    "NoKeyError",
    "NotFoundError",
    "ParseError",
    "PermissionDeniedError",
    "RpcError",
    "ServerError",
    "StoreFailedRpcError",
    "TenantLockedError",
    "UnavailableError",
    "WrongPasswordRpcError",
    "code_for",
    "error_from_wire",
    "error_to_wire",
]
