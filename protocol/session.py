"""The sync session as a state machine without I/O.

Feed it frames with ``receive(frame)``, read the frames to send with ``data_to_send()``, and act
on the events it returns. Time is an argument (``now``); nothing here sleeps or opens sockets,
so tests step two sessions against each other in memory.

Handshake (client C dials server S; both know ``binding`` = SHA-256 of S's TLS certificate, or
the DTLS fingerprints for WebRTC)::

    C -> S  HELLO(tenant, c_challenge)
    S -> C  HELLO("", s_challenge)
    C -> S  AUTH(c_identity, sign_C(client | tenant | binding | s_challenge | c_challenge))
    S -> C  AUTH(s_identity, sign_S(server | ...)), SESSION_KEY(S's key wrapped for C)
    C -> S  SESSION_KEY(C's key wrapped for S)                    -> both OPEN

Each side signs the other's fresh challenge, so a recorded AUTH cannot be replayed, and the
channel binding, so a man in the middle who terminates TLS cannot relay it: it sees another
certificate. The role is signed too, so a signature cannot be reflected back.

Until the session is open the peer is a stranger, and nothing we send names a path, a user or
a tenant it did not name itself. A server asked for a tenant it does not serve answers HELLO as
if it did, checks the AUTH signature all the same, and refuses with exactly the ERROR it sends a
key its directory does not grant (``REFUSED``, ``REFUSAL``): a stranger cannot probe tenant ids.
Only a peer that proved it holds a revoked key learns that it is revoked (``REVOKED``).
"""

from __future__ import annotations

import enum
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from protocol.errors import ErrorCode, LocalProtocolError, ProtocolError, RemoteProtocolError
from protocol.interfaces import PeerInfo, PeerRefused, Sealer, TenantContext, TenantResolver
from protocol.messages import (
    DEFAULT_LIMITS,
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    Auth,
    Bye,
    Error,
    Hello,
    Limits,
    Message,
    Notify,
    Request,
    Response,
    SessionKey,
    decode,
    encode,
)

log = logging.getLogger("mindood.protocol")

CHALLENGE_BYTES = 32
CAPABILITIES = ("store-v1", "notify-v1", "session-key-v1")
_AUTH_CONTEXT = b"mindood-sync-auth-v1\x00"
#: The one refusal a peer gets, whether the tenant is unknown here or its key is not granted.
REFUSAL = "not admitted (tenant not served here, or key not granted)"


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    IDLE = "idle"
    SENT_HELLO = "sent-hello"
    SENT_AUTH = "sent-auth"
    AWAIT_KEY = "await-key"
    OPEN = "open"
    CLOSED = "closed"


# -- events ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Opened:
    """The handshake finished: ``peer`` is authenticated and trusted."""

    peer: PeerInfo
    tenant_id: str


@dataclass(frozen=True, slots=True)
class RequestReceived:
    request: Request


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    response: Response


@dataclass(frozen=True, slots=True)
class NotifyReceived:
    notify: Notify


@dataclass(frozen=True, slots=True)
class Closed:
    """The session ended; ``by_peer`` tells whether the peer ended it or we did."""

    code: int
    message: str
    by_peer: bool


Event = Opened | RequestReceived | ResponseReceived | NotifyReceived | Closed


def auth_payload(
    role: Role,
    tenant_id: str,
    binding: bytes,
    peer_challenge: bytes,
    own_challenge: bytes,
    encryption_key: str,
) -> bytes:
    """The bytes an AUTH signature covers (see module docstring)."""
    key = encryption_key.encode()
    return b"".join(
        (
            _AUTH_CONTEXT,
            role.value.encode(),
            b"\x00",
            tenant_id.encode(),
            b"\x00",
            len(binding).to_bytes(2, "big"),
            binding,
            peer_challenge,
            own_challenge,
            len(key).to_bytes(4, "big"),
            key,
        )
    )


def _verify(identity: str, signature: bytes, payload: bytes) -> bool:
    try:
        key = load_pem_public_key(identity.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True


class Session:
    """One authenticated, multiplexed request/response session over one channel."""

    def __init__(
        self,
        role: Role,
        *,
        binding: bytes,
        context: TenantContext | None = None,
        resolver: TenantResolver | None = None,
        limits: Limits = DEFAULT_LIMITS,
        handshake_timeout: float = 15.0,
        now: float = 0.0,
    ) -> None:
        if role is Role.CLIENT and context is None:
            raise LocalProtocolError(ErrorCode.INTERNAL, "a client session needs its tenant")
        if role is Role.SERVER and resolver is None:
            raise LocalProtocolError(ErrorCode.INTERNAL, "a server session needs a resolver")
        self.role = role
        self.state = State.IDLE
        self.limits = limits
        self.peer: PeerInfo | None = None
        self._binding = binding
        self._context = context
        self._resolver = resolver
        #: The tenant the handshake is about: ours (client) or the one the HELLO named (server,
        #: also when it is not one we serve and ``_context`` stays None).
        self._tenant_id = context.tenant_id if context is not None else ""
        self._challenge = secrets.token_bytes(CHALLENGE_BYTES)
        self._peer_challenge = b""
        self._outbox: list[bytes] = []
        self._deadline: float | None = now + handshake_timeout
        self._next_request = 1
        self._pending: set[int] = set()
        self._peer_in_flight: set[int] = set()
        self._sent_key = False
        self._outgoing: Sealer | None = None
        self._incoming: Sealer | None = None

    # -- plumbing ----------------------------------------------------------------------------
    def _set_state(self, state: State) -> None:
        log.debug(
            "session %s -> %s", self.state.value, state.value, extra={"role": self.role.value}
        )
        self.state = state

    def _send(self, message: Message) -> None:
        self._outbox.append(encode(message))

    def data_to_send(self) -> list[bytes]:
        """Frames to write to the channel, in order; each call hands them over once."""
        out, self._outbox = self._outbox, []
        return out

    @property
    def tenant_id(self) -> str:
        return self._context.tenant_id if self._context else ""

    @property
    def is_open(self) -> bool:
        return self.state is State.OPEN

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must run next (the handshake deadline), or None."""
        return self._deadline

    def handle_timer(self, now: float) -> list[Event]:
        if self._deadline is not None and now >= self._deadline and self.state is not State.OPEN:
            return [self._fail(ErrorCode.TIMEOUT, "handshake did not finish in time")]
        return []

    # -- handshake ---------------------------------------------------------------------------
    def start(self) -> None:
        """Client side: send HELLO."""
        if self.role is not Role.CLIENT or self.state is not State.IDLE or self._context is None:
            raise LocalProtocolError(ErrorCode.UNEXPECTED, "only an idle client starts")
        self._send(self._hello(self._context.tenant_id))
        self._set_state(State.SENT_HELLO)

    def _hello(self, tenant_id: str) -> Hello:
        return Hello(
            PROTOCOL_VERSION,
            MIN_PROTOCOL_VERSION,
            tenant_id,
            self._challenge,
            CAPABILITIES,
        )

    def _auth(self) -> Auth:
        context = self._context
        assert context is not None
        payload = auth_payload(
            self.role,
            context.tenant_id,
            self._binding,
            self._peer_challenge,
            self._challenge,
            context.encryption_key,
        )
        return Auth(context.identity, context.encryption_key, context.sign(payload))

    def _check_hello(self, hello: Hello) -> None:
        if hello.min_version > PROTOCOL_VERSION or hello.version < MIN_PROTOCOL_VERSION:
            raise RemoteProtocolError(
                ErrorCode.UNSUPPORTED_VERSION,
                f"peer speaks versions {hello.min_version}..{hello.version}, "
                f"we speak {MIN_PROTOCOL_VERSION}..{PROTOCOL_VERSION}",
            )
        if len(hello.challenge) != CHALLENGE_BYTES:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "challenge must be 32 bytes")
        if hmac.compare_digest(hello.challenge, self._challenge):
            raise RemoteProtocolError(ErrorCode.AUTH_FAILED, "peer echoed our own challenge")
        self._peer_challenge = hello.challenge

    def _authenticate_peer(self, auth: Auth) -> PeerInfo:
        peer_role = Role.SERVER if self.role is Role.CLIENT else Role.CLIENT
        payload = auth_payload(
            peer_role,
            self._tenant_id,
            self._binding,
            self._challenge,
            self._peer_challenge,
            auth.encryption_key,
        )
        if not _verify(auth.identity, auth.signature, payload):
            raise RemoteProtocolError(ErrorCode.AUTH_FAILED, "authentication signature invalid")
        if self._context is None:
            raise RemoteProtocolError(
                ErrorCode.REFUSED, REFUSAL, detail="HELLO named a tenant this node does not serve"
            )
        try:
            return self._context.check_peer(
                auth.identity, auth.encryption_key, dialed=self.role is Role.CLIENT
            )
        except PeerRefused as exc:
            if exc.revoked:  # the peer proved it holds this key: it may learn its fate
                raise RemoteProtocolError(ErrorCode.REVOKED, str(exc)) from exc
            raise RemoteProtocolError(ErrorCode.REFUSED, REFUSAL, detail=str(exc)) from exc

    def _send_key(self) -> None:
        assert self._context is not None and self.peer is not None
        wrapped, self._outgoing = self._context.new_outgoing_key(self.peer)
        self._send(SessionKey(wrapped))
        self._sent_key = True

    def _accept_key(self, message: SessionKey) -> None:
        assert self._context is not None
        try:
            self._incoming = self._context.open_incoming_key(message.wrapped_key)
        except ValueError as exc:
            raise RemoteProtocolError(ErrorCode.AUTH_FAILED, "session key not for us") from exc

    def _on_handshake(self, message: Message) -> list[Event]:
        state, role = self.state, self.role
        if role is Role.SERVER and state is State.IDLE and isinstance(message, Hello):
            assert self._resolver is not None
            self._check_hello(message)
            # An unknown tenant gets the same answer as a known one (see the module docstring).
            self._context = self._resolver.lookup(message.tenant_id)
            self._tenant_id = message.tenant_id
            self._send(self._hello(""))  # no echo: the AUTH signatures bind the tenant
            self._set_state(State.SENT_HELLO)
            return []
        if role is Role.CLIENT and state is State.SENT_HELLO and isinstance(message, Hello):
            assert self._context is not None
            # A server names no tenant before we authenticated (older ones echoed ours).
            if message.tenant_id not in ("", self._context.tenant_id):
                raise RemoteProtocolError(
                    ErrorCode.UNKNOWN_TENANT, "peer answered for another tenant"
                )
            self._check_hello(message)
            self._send(self._auth())
            self._set_state(State.SENT_AUTH)
            return []
        if role is Role.SERVER and state is State.SENT_HELLO and isinstance(message, Auth):
            self.peer = self._authenticate_peer(message)  # refuses when _context is None
            self._send(self._auth())
            self._send_key()
            self._set_state(State.AWAIT_KEY)
            return []
        if role is Role.CLIENT and state is State.SENT_AUTH and isinstance(message, Auth):
            self.peer = self._authenticate_peer(message)
            self._send_key()
            self._set_state(State.AWAIT_KEY)
            return []
        if state is State.AWAIT_KEY and isinstance(message, SessionKey) and self._sent_key:
            self._accept_key(message)
            self._set_state(State.OPEN)
            self._deadline = None
            assert self.peer is not None and self._context is not None
            return [Opened(self.peer, self._context.tenant_id)]
        raise RemoteProtocolError(
            ErrorCode.UNEXPECTED, f"{type(message).__name__} not expected in state {state.value}"
        )

    # -- receiving ---------------------------------------------------------------------------
    def receive(self, frame: bytes) -> list[Event]:
        """Process one frame from the peer. Errors close the session and become a ``Closed``."""
        if self.state is State.CLOSED:
            return []
        try:
            if self.state is not State.OPEN and len(frame) > self.limits.max_handshake_bytes:
                raise RemoteProtocolError(
                    ErrorCode.TOO_LARGE, f"handshake frame of {len(frame)} bytes is too large"
                )
            message = decode(frame, self.limits)
            if isinstance(message, Error):
                self._set_state(State.CLOSED)
                return [Closed(message.code, message.message, by_peer=True)]
            if isinstance(message, Bye):
                self._set_state(State.CLOSED)
                return [Closed(0, "peer said goodbye", by_peer=True)]
            if self.state is not State.OPEN:
                return self._on_handshake(message)
            return self._on_open(message)
        except ProtocolError as exc:
            return [self._fail(exc.code, exc.message, exc.detail)]

    def _on_open(self, message: Message) -> list[Event]:
        if isinstance(message, Request):
            if message.request_id in self._peer_in_flight:
                raise RemoteProtocolError(ErrorCode.MALFORMED, "request id reused while in flight")
            if len(self._peer_in_flight) >= self.limits.max_in_flight_requests:
                raise RemoteProtocolError(ErrorCode.TOO_LARGE, "too many requests in flight")
            self._peer_in_flight.add(message.request_id)
            return [RequestReceived(message)]
        if isinstance(message, Response):
            if message.request_id not in self._pending:
                raise RemoteProtocolError(ErrorCode.UNEXPECTED, "response to no request of ours")
            self._pending.discard(message.request_id)
            return [ResponseReceived(message)]
        if isinstance(message, Notify):
            return [NotifyReceived(message)]
        raise RemoteProtocolError(ErrorCode.UNEXPECTED, f"{type(message).__name__} after handshake")

    def _fail(self, code: ErrorCode, message: str, detail: str = "") -> Closed:
        """Tell the peer ``message`` and close; ``detail`` is for our log only."""
        if self.state is not State.CLOSED:
            log.warning(
                "closing sync session: %s",
                detail or message,
                extra={"code": int(code), "role": self.role.value, "tenant": self._tenant_id},
            )
            self._send(Error(int(code), message))
            self._set_state(State.CLOSED)
        return Closed(int(code), message, by_peer=False)

    # -- sending -----------------------------------------------------------------------------
    def _require_open(self) -> None:
        if self.state is not State.OPEN:
            raise LocalProtocolError(ErrorCode.UNEXPECTED, f"session is {self.state.value}")

    def request(self, operation: str, args: list[Any]) -> int:
        """Queue a request; returns its id for matching the ``ResponseReceived`` event."""
        self._require_open()
        request_id = self._next_request
        self._next_request = (self._next_request % 0xFFFFFFFF) + 1
        self._pending.add(request_id)
        self._send(Request(request_id, operation, tuple(args)))
        return request_id

    def respond(
        self, request_id: int, result: Any = None, error: tuple[int, str] | None = None
    ) -> None:
        if self.state is State.CLOSED:
            return
        if request_id not in self._peer_in_flight:
            raise LocalProtocolError(ErrorCode.UNEXPECTED, "no such request in flight")
        self._peer_in_flight.discard(request_id)
        self._send(Response(request_id, result, error))

    def notify(self, topic: str, args: list[Any]) -> None:
        self._require_open()
        self._send(Notify(topic, tuple(args)))

    def close(self, code: ErrorCode = ErrorCode.SHUTDOWN, message: str = "closing") -> Closed:
        """End the session from our side (e.g. the peer was revoked, or we shut down)."""
        if code is ErrorCode.SHUTDOWN and self.state is not State.CLOSED:
            self._send(Bye())
            self._set_state(State.CLOSED)
            return Closed(int(code), message, by_peer=False)
        return self._fail(code, message)

    # -- payload layer -----------------------------------------------------------------------
    def seal(self, data: bytes) -> bytes:
        """Wrap a payload we send (spec layer 2: readable only by the authenticated peer)."""
        self._require_open()
        assert self._outgoing is not None
        return self._outgoing.seal(data)

    def open_payload(self, blob: bytes) -> bytes:
        """Unwrap a payload the peer sent; a blob not sealed for us is the peer's error."""
        self._require_open()
        assert self._incoming is not None
        try:
            return self._incoming.open(blob)
        except ValueError as exc:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "payload not sealed for us") from exc
