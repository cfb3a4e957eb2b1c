"""Login state without sockets: challenges, tokens and revocation, on a stepped clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.http.auth import (
    AuthService,
    KeyStatus,
    UserKeys,
    bearer_token,
    normalize_key,
    uuid7,
)
from protocol.http.wire import ErrorKind, HttpError


class Directory:
    def __init__(self) -> None:
        self.users: dict[str, list[str]] = {}
        self.revoked: set[str] = set()

    def user_keys(self, username: str) -> UserKeys:
        keys = [k for k in self.users.get(username, []) if normalize_key(k) not in self.revoked]
        return UserKeys(tuple(keys), len(keys) < len(self.users.get(username, [])))

    def key_status(self, signing_public_key: str) -> KeyStatus:
        key = normalize_key(signing_public_key)
        if key in self.revoked:
            return KeyStatus.REVOKED
        known = {normalize_key(k) for keys in self.users.values() for k in keys}
        return KeyStatus.ACTIVE if key in known else KeyStatus.UNKNOWN


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _device() -> tuple[Ed25519PrivateKey, str]:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem.decode().strip()


Setup = tuple[AuthService, Directory, Clock, Ed25519PrivateKey, str]


@pytest.fixture
def setup() -> Setup:
    directory, clock = Directory(), Clock()
    key, pem = _device()
    directory.users["cn=bob"] = [pem]
    return AuthService("acme", directory, clock=clock, max_challenges=3), directory, clock, key, pem


def _kind(call: object) -> ErrorKind:
    with pytest.raises(HttpError) as info:
        call()  # type: ignore[operator]
    return info.value.kind


def test_uuid7_is_version_7_and_time_ordered() -> None:
    first, later = uuid.UUID(uuid7(1000.0)), uuid.UUID(uuid7(1001.0))
    assert first.version == 7 and first.variant == uuid.RFC_4122
    assert str(first) < str(later)


def test_login_flow_single_use_expiry_and_cap(setup: Setup) -> None:
    auth, _directory, clock, key, pem = setup
    challenge = auth.challenge("cn=bob", pem)
    token = auth.authenticate(challenge, key.sign(challenge.encode()))
    claims = auth.validate(token)
    assert (claims.sub, claims.tenant_id, claims.device_signing_key) == ("cn=bob", "acme", pem)
    assert claims.exp - claims.iat == 3600
    assert _kind(lambda: auth.authenticate(challenge, key.sign(challenge.encode()))) is (
        ErrorKind.CHALLENGE_EXPIRED
    )
    late = auth.challenge(None, pem)
    clock.now += 301
    assert _kind(lambda: auth.authenticate(late, key.sign(late.encode()))) is (
        ErrorKind.CHALLENGE_EXPIRED
    )
    oldest = auth.challenge("cn=bob", None)
    for _ in range(3):
        auth.challenge("cn=bob", None)
    assert _kind(lambda: auth.authenticate(oldest, key.sign(oldest.encode()))) is (
        ErrorKind.CHALLENGE_EXPIRED
    )  # evicted by the cap of 3
    other, _ = _device()
    fresh = auth.challenge("cn=bob", None)
    assert _kind(lambda: auth.authenticate(fresh, other.sign(fresh.encode()))) is (
        ErrorKind.INVALID_SIGNATURE
    )


def test_challenges_are_refused_by_the_directory(setup: Setup) -> None:
    auth, directory, _clock, _key, pem = setup
    _, stranger = _device()
    assert _kind(lambda: auth.challenge("cn=nobody", None)) is ErrorKind.USER_NOT_FOUND
    assert _kind(lambda: auth.challenge(None, stranger)) is ErrorKind.USER_NOT_FOUND
    assert _kind(lambda: auth.challenge("cn=bob", stranger)) is ErrorKind.USER_NOT_FOUND
    assert _kind(lambda: auth.challenge(None, None)) is ErrorKind.USER_NOT_FOUND
    directory.revoked.add(normalize_key(pem))
    assert _kind(lambda: auth.challenge("cn=bob", None)) is ErrorKind.USER_REVOKED
    assert _kind(lambda: auth.challenge(None, pem)) is ErrorKind.USER_REVOKED


def test_every_use_of_a_token_asks_the_directory_again(setup: Setup) -> None:
    auth, directory, clock, key, pem = setup
    challenge = auth.challenge(None, pem)
    token = auth.authenticate(challenge, key.sign(challenge.encode()))
    assert auth.validate(token).sub == pem  # by key alone: the key is the subject
    directory.revoked.add(normalize_key(pem))
    assert _kind(lambda: auth.validate(token)) is ErrorKind.INVALID_TOKEN
    directory.revoked.clear()
    clock.now += 3601
    assert _kind(lambda: auth.validate(token)) is ErrorKind.INVALID_TOKEN


def _forge(payload: dict[str, object], secret: bytes, alg: str = "HS256") -> str:
    def part(obj: dict[str, object]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    head = part({"alg": alg, "typ": "JWT"})
    body = part(payload)
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_tokens_are_pinned_to_hs256_the_secret_and_the_tenant() -> None:
    directory, clock = Directory(), Clock()
    _, pem = _device()
    directory.users["cn=bob"] = [pem]
    secret = b"s" * 32
    auth = AuthService("acme", directory, secret=secret, clock=clock)
    now = int(clock())
    claims = {"sub": "cn=bob", "iat": now, "exp": now + 60, "tenantId": "acme"}
    assert auth.validate(_forge(claims, secret)).sub == "cn=bob"  # a username token
    for bad in (
        _forge(claims, secret, alg="none"),
        _forge(claims, secret, alg="HS512"),
        _forge(claims, b"x" * 32),
        _forge({**claims, "tenantId": "other"}, secret),
        _forge({**claims, "sub": "cn=nobody"}, secret),
        _forge({**claims, "exp": "soon"}, secret),
        "not.a.jwt",
        "",
    ):
        assert _kind(lambda bad=bad: auth.validate(bad)) is ErrorKind.INVALID_TOKEN


def test_bearer_header() -> None:
    assert bearer_token({"authorization": "Bearer abc"}) == "abc"
    for headers in ({}, {"authorization": "Basic abc"}, {"authorization": "bearer abc"}):
        with pytest.raises(HttpError) as info:
            bearer_token(headers)
        assert info.value.status == 401
