"""Protocol errors say whose fault it is (h11's split).

``RemoteProtocolError``: the peer sent something malformed, oversized, out of order or
unauthenticated; the session is dead and the peer is told why. ``LocalProtocolError``: this node
used the session wrongly (a bug). ``RequestError``: one request failed at the peer; the session
lives on.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Codes carried in ERROR frames and failed responses."""

    MALFORMED = 1
    TOO_LARGE = 2
    UNSUPPORTED_VERSION = 3
    UNKNOWN_TENANT = 4
    AUTH_FAILED = 5
    #: No longer sent (a refusal is ``REFUSED``, whatever its reason); kept so old peers parse.
    NOT_TRUSTED = 6
    REVOKED = 7
    UNEXPECTED = 8
    UNKNOWN_OPERATION = 9
    UNKNOWN_DATABASE = 10
    BAD_ARGUMENTS = 11
    #: Not admitted: the tenant is not served here, or the key is not granted in it. One code
    #: and one message for both, so a stranger cannot probe which tenants a node serves.
    REFUSED = 12
    INTERNAL = 13
    TIMEOUT = 14
    SHUTDOWN = 15


class ProtocolError(Exception):
    """Base of every error raised by ``protocol/``."""

    def __init__(self, code: ErrorCode, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: What this node logs but does not tell the peer (e.g. why it was refused).
        self.detail = detail


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; the session must close."""


class LocalProtocolError(ProtocolError):
    """This node misused the session (e.g. a request before authentication)."""


class PeerClosedError(ProtocolError):
    """The peer ended the session, with the code and reason it gave."""


class RequestError(ProtocolError):
    """One request failed at the peer (bad arguments, unknown database, refused)."""
