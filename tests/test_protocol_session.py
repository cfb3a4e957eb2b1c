"""The sync session state machine, in memory: handshake, channel binding, refusals, fuzzing.

The tenant contexts here are small fakes: real Ed25519 keys and real AES-GCM sealing, but the
session key "wrap" is a plain tag instead of RSA (RSA wrapping is tested in test_crypto_rsa and
end to end in test_sync_node), so these tests run in milliseconds.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ErrorCode
from protocol.interfaces import PeerInfo, PeerRefused, Sealer
from protocol.messages import PROTOCOL_VERSION, Auth, Error, Hello, decode, encode
from protocol.session import (
    REFUSAL,
    Closed,
    Event,
    Opened,
    RequestReceived,
    ResponseReceived,
    Role,
    Session,
)

BINDING = hashlib.sha256(b"server certificate").digest()


@dataclass(frozen=True)
class FakeSealer:
    key: bytes

    def seal(self, data: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self.key).encrypt(nonce, data, None)

    def open(self, blob: bytes) -> bytes:
        try:
            return AESGCM(self.key).decrypt(blob[:12], blob[12:], None)
        except Exception as exc:
            raise ValueError("not ours") from exc


@dataclass
class FakeTenant:
    tenant_id: str = "acme"
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    trusted: set[str] = field(default_factory=set)
    revoked: set[str] = field(default_factory=set)

    @property
    def identity(self) -> str:
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode().rstrip("\n")

    @property
    def encryption_key(self) -> str:
        return f"rsa-of:{self.identity[-20:]}"

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    def check_peer(self, identity: str, encryption_key: str, *, dialed: bool) -> PeerInfo:
        if identity in self.revoked:
            raise PeerRefused("revoked", revoked=True)
        if identity not in self.trusted:
            if dialed:
                return PeerInfo(identity, encryption_key, provisional=True)
            raise PeerRefused("not granted")
        return PeerInfo(identity, f"rsa-of:{identity[-20:]}")

    def new_outgoing_key(self, peer: PeerInfo) -> tuple[bytes, Sealer]:
        key = os.urandom(32)
        return peer.encryption_public_key.encode() + b"|" + key, FakeSealer(key)

    def open_incoming_key(self, wrapped: bytes) -> Sealer:
        tag, _, key = wrapped.partition(b"|")
        if tag != f"rsa-of:{self.identity[-20:]}".encode():
            raise ValueError("not wrapped for us")
        return FakeSealer(key)


@dataclass
class Resolver:
    tenants: dict[str, FakeTenant]

    def lookup(self, tenant_id: str) -> FakeTenant | None:
        return self.tenants.get(tenant_id)


def _pair(
    client_tenant: FakeTenant,
    server_tenant: FakeTenant,
    *,
    client_binding: bytes = BINDING,
    server_binding: bytes = BINDING,
) -> tuple[Session, Session]:
    client = Session(Role.CLIENT, binding=client_binding, context=client_tenant)
    server = Session(
        Role.SERVER,
        binding=server_binding,
        resolver=Resolver({server_tenant.tenant_id: server_tenant}),
    )
    return client, server


def _pump(a: Session, b: Session, rounds: int = 10) -> tuple[list[Event], list[Event]]:
    """Move frames both ways until quiet (bounded); return each side's events."""
    events_a: list[Event] = []
    events_b: list[Event] = []
    for _ in range(rounds):
        to_b, to_a = a.data_to_send(), b.data_to_send()
        if not to_a and not to_b:
            break
        for frame in to_b:
            events_b.extend(b.receive(frame))
        for frame in to_a:
            events_a.extend(a.receive(frame))
    return events_a, events_b


def _trusting() -> tuple[FakeTenant, FakeTenant]:
    alice, bob = FakeTenant(), FakeTenant()
    alice.trusted.add(bob.identity)
    bob.trusted.add(alice.identity)
    return alice, bob


def test_handshake_opens_both_sides_and_payloads_round_trip() -> None:
    alice, bob = _trusting()
    client, server = _pair(alice, bob)
    client.start()
    events_c, events_s = _pump(client, server)
    assert [type(e) for e in events_c] == [Opened] and [type(e) for e in events_s] == [Opened]
    assert client.peer is not None and client.peer.identity == bob.identity
    assert server.peer is not None and server.peer.identity == alice.identity
    assert server.open_payload(client.seal(b"secret")) == b"secret"
    assert client.open_payload(server.seal(b"reply")) == b"reply"
    request_id = client.request("head", ["todos", "docs"])
    _, events_s = _pump(client, server)
    [received] = events_s
    assert isinstance(received, RequestReceived) and received.request.request_id == request_id
    server.respond(request_id, ["epoch", 7])
    events_c, _ = _pump(client, server)
    assert isinstance(events_c[0], ResponseReceived) and events_c[0].response.result == ["epoch", 7]


def test_a_relayed_handshake_fails_because_the_bindings_differ() -> None:
    """A man in the middle terminating TLS shows the client its own certificate."""
    alice, bob = _trusting()
    client, server = _pair(alice, bob, client_binding=hashlib.sha256(b"mitm cert").digest())
    client.start()
    _events_c, events_s = _pump(client, server)
    closed = [e for e in events_s if isinstance(e, Closed)]
    assert closed and closed[0].code == ErrorCode.AUTH_FAILED
    assert not client.is_open and not server.is_open


def test_a_replayed_auth_is_refused() -> None:
    alice, bob = _trusting()
    # Record a client's HELLO and AUTH from one handshake ...
    recorded_client = Session(Role.CLIENT, binding=BINDING, context=alice)
    first_server = Session(Role.SERVER, binding=BINDING, resolver=Resolver({"acme": bob}))
    recorded_client.start()
    [hello] = recorded_client.data_to_send()
    first_server.receive(hello)
    [server_hello] = first_server.data_to_send()
    recorded_client.receive(server_hello)
    [auth_frame] = recorded_client.data_to_send()
    assert isinstance(decode(auth_frame), Auth)
    # ... and replay both into a fresh server session: its new challenge was never signed.
    victim = Session(Role.SERVER, binding=BINDING, resolver=Resolver({"acme": bob}))
    victim.receive(hello)
    victim.data_to_send()
    [closed] = victim.receive(auth_frame)
    assert isinstance(closed, Closed) and closed.code == ErrorCode.AUTH_FAILED


def test_a_dialed_unknown_peer_is_only_provisional() -> None:
    alice, bob = _trusting()
    alice.trusted.clear()  # a new device: its directory does not know bob yet
    client, server = _pair(alice, bob)
    client.start()
    events_c, events_s = _pump(client, server)
    [opened] = [e for e in events_c if isinstance(e, Opened)]
    assert opened.peer.provisional
    assert next(e for e in events_s if isinstance(e, Opened)).peer.provisional is False


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("untrusted", ErrorCode.REFUSED),
        ("revoked", ErrorCode.REVOKED),
        ("other-tenant", ErrorCode.REFUSED),
    ],
)
def test_refusals_carry_their_reason(setup: str, code: ErrorCode) -> None:
    alice, bob = _trusting()
    if setup == "untrusted":
        bob.trusted.clear()
    elif setup == "revoked":
        bob.trusted.clear()
        bob.revoked.add(alice.identity)
    else:
        alice.tenant_id = "other"
    client, server = _pair(alice, bob)
    client.start()
    events_c, _ = _pump(client, server)
    closed = [e for e in events_c if isinstance(e, Closed)]
    assert closed and closed[0].by_peer and closed[0].code == code


def test_version_mismatch_and_bad_magic_are_told_apart() -> None:
    _alice, bob = _trusting()
    server = Session(Role.SERVER, binding=BINDING, resolver=Resolver({"acme": bob}))
    future = Hello(9, 9, "acme", os.urandom(32)).to_wire()
    [closed] = server.receive(encode_raw(future))
    assert isinstance(closed, Closed) and closed.code == ErrorCode.UNSUPPORTED_VERSION
    server = Session(Role.SERVER, binding=BINDING, resolver=Resolver({"acme": bob}))
    wire = Hello(PROTOCOL_VERSION, PROTOCOL_VERSION, "acme", os.urandom(32)).to_wire()
    wire[1] = b"NOTSYNC"
    [closed] = server.receive(encode_raw(wire))
    assert (
        isinstance(closed, Closed)
        and closed.code == ErrorCode.MALFORMED
        and "magic" in closed.message
    )


def encode_raw(wire: list[object]) -> bytes:
    import msgpack

    return msgpack.packb(wire, use_bin_type=True)  # type: ignore[no-any-return]


def test_requests_before_authentication_close_the_session() -> None:
    _alice, bob = _trusting()
    server = Session(Role.SERVER, binding=BINDING, resolver=Resolver({"acme": bob}))
    from protocol.messages import Request

    [closed] = server.receive(encode(Request(1, "get", ("todos", "docs", []))))
    assert isinstance(closed, Closed) and closed.code == ErrorCode.UNEXPECTED
    assert server.data_to_send()  # the peer is told why


def test_handshake_timeout() -> None:
    _alice, bob = _trusting()
    server = Session(
        Role.SERVER,
        binding=BINDING,
        resolver=Resolver({"acme": bob}),
        now=100.0,
        handshake_timeout=5,
    )
    assert server.get_timer() == 105.0
    assert server.handle_timer(104.0) == []
    [closed] = server.handle_timer(105.0)
    assert closed.code == ErrorCode.TIMEOUT


def test_too_many_requests_in_flight_close_the_session() -> None:
    alice, bob = _trusting()
    client, server = _pair(alice, bob)
    client.start()
    _pump(client, server)
    for _ in range(server.limits.max_in_flight_requests + 1):
        client.request("head", ["db", "docs"])
    _, events_s = _pump(client, server)
    assert any(isinstance(e, Closed) and e.code == ErrorCode.TOO_LARGE for e in events_s)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=200), max_size=5))
def test_random_frames_never_raise(frames: list[bytes]) -> None:
    _, bob = _trusting()
    server = Session(Role.SERVER, binding=BINDING, resolver=Resolver({"acme": bob}))
    for frame in frames:
        for event in server.receive(frame):
            assert isinstance(event, Closed)


@settings(max_examples=100)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_mutated_handshake_frames_only_close(position: int, value: int) -> None:
    alice, bob = _trusting()
    client, server = _pair(alice, bob)
    client.start()
    [hello] = client.data_to_send()
    mutated = bytearray(hello)
    mutated[position % len(mutated)] = value
    events = server.receive(bytes(mutated))
    assert all(isinstance(e, Closed) for e in events)


def _server_frames(client_tenant: FakeTenant, server_tenant: FakeTenant) -> list[bytes]:
    """Every frame a server sends a client of ``client_tenant`` before the session opens."""
    client, server = _pair(client_tenant, server_tenant)
    client.start()
    sent: list[bytes] = []
    for _ in range(10):
        to_server, to_client = client.data_to_send(), server.data_to_send()
        if not to_server and not to_client:
            break
        sent.extend(to_client)
        for frame in to_server:
            server.receive(frame)
        for frame in to_client:
            client.receive(frame)
    return sent


def test_an_unknown_tenant_and_an_untrusted_key_get_the_same_answers() -> None:
    """A stranger cannot tell whether this node serves a tenant: HELLO and ERROR look alike."""
    alice, bob = _trusting()
    bob.trusted.clear()  # bob serves "acme" but does not grant alice
    stranger = FakeTenant(tenant_id="probe-tenant-4711")
    known = _server_frames(alice, bob)
    unknown = _server_frames(stranger, bob)
    assert len(known) == len(unknown) == 2
    hello_known, hello_unknown = decode(known[0]), decode(unknown[0])
    assert isinstance(hello_known, Hello) and isinstance(hello_unknown, Hello)
    assert hello_known.challenge != hello_unknown.challenge  # fresh each time, as for a tenant
    assert hello_unknown.tenant_id == hello_known.tenant_id == ""
    assert b"probe-tenant-4711" not in unknown[0] and b"acme" not in known[0]
    assert known[1] == unknown[1]  # byte for byte
    assert decode(known[1]) == Error(int(ErrorCode.REFUSED), REFUSAL)


def test_a_bad_signature_fails_alike_for_known_and_unknown_tenants() -> None:
    """The decoy checks AUTH as a real tenant would: a forged one is AUTH_FAILED, not refused."""
    _alice, bob = _trusting()
    frames = []
    for tenant_id in ("acme", "no-such-tenant"):
        server = Session(Role.SERVER, binding=BINDING, resolver=Resolver({"acme": bob}))
        server.receive(encode(Hello(PROTOCOL_VERSION, PROTOCOL_VERSION, tenant_id, os.urandom(32))))
        server.data_to_send()
        forger = FakeTenant(tenant_id=tenant_id)
        [closed] = server.receive(encode(Auth(forger.identity, "rsa", os.urandom(64))))
        assert isinstance(closed, Closed) and closed.code == ErrorCode.AUTH_FAILED
        frames.append(server.data_to_send())
    assert frames[0] == frames[1]


def test_only_the_holder_of_a_revoked_key_learns_it_is_revoked() -> None:
    alice, bob = _trusting()
    bob.trusted.clear()
    bob.revoked.add(alice.identity)
    sent = _server_frames(alice, bob)
    error = decode(sent[-1])
    assert isinstance(error, Error) and error.code == ErrorCode.REVOKED
    # Someone presenting the revoked key without its private half gets AUTH_FAILED.
    server = Session(Role.SERVER, binding=BINDING, resolver=Resolver({"acme": bob}))
    server.receive(encode(Hello(PROTOCOL_VERSION, PROTOCOL_VERSION, "acme", os.urandom(32))))
    server.data_to_send()
    [closed] = server.receive(encode(Auth(alice.identity, "rsa", os.urandom(64))))
    assert closed.code == ErrorCode.AUTH_FAILED


def test_a_client_treats_the_refusal_as_a_refusal() -> None:
    alice, bob = _trusting()
    bob.trusted.clear()
    client, server = _pair(alice, bob)
    client.start()
    events_c, _ = _pump(client, server)
    [closed] = [e for e in events_c if isinstance(e, Closed)]
    assert closed.by_peer and closed.code == ErrorCode.REFUSED and closed.message == REFUSAL
    assert not client.is_open and client.peer is None


def test_hello_carries_no_node_name() -> None:
    import msgpack

    alice, bob = _trusting()
    client, _server = _pair(alice, bob)
    client.start()
    [hello] = client.data_to_send()
    assert msgpack.unpackb(hello)[7] == ""  # the slot that once held the node name


def test_a_handshake_frame_over_the_small_limit_closes_the_session() -> None:
    _alice, bob = _trusting()
    server = Session(Role.SERVER, binding=BINDING, resolver=Resolver({"acme": bob}))
    big = encode(
        Hello(PROTOCOL_VERSION, PROTOCOL_VERSION, "acme", os.urandom(32), ("x" * 8000,) * 9)
    )
    assert len(big) > server.limits.max_handshake_bytes
    [closed] = server.receive(big)
    assert isinstance(closed, Closed) and closed.code == ErrorCode.TOO_LARGE
