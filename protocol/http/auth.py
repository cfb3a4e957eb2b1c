"""Challenge-response login and HS256 tokens for the HTTP API (reference-formats §3.2).

A client asks for a challenge (a UUIDv7, valid 5 minutes, usable once) by username and/or
signing key, signs its UTF-8 bytes with Ed25519, and gets a JWT (HS256, 1 hour) naming its
device key. Every later call presents the token; each use checks the signature, the expiry and
the directory again, so a key revoked after login stops working at its next request. The
secret is random per process, so tokens die with a restart, as the reference's do.

The node answers the directory questions through ``AuthDirectory``; this module holds no key
but the token secret. Time is an argument (``now`` in seconds), so tests step a clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from protocol.http.checks import ErrorKind, HttpError

CHALLENGE_SECONDS = 5 * 60
TOKEN_SECONDS = 60 * 60
MAX_CHALLENGES = 10_000
_MAX_TOKEN_CHARS = 16 * 1024


class KeyStatus(StrEnum):
    """What the tenant directory says about one signing key."""

    ACTIVE = "active"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class UserKeys:
    """A user's signing keys: ``active`` ones may log in; ``revoked`` says some were revoked."""

    active: tuple[str, ...]
    revoked: bool


class AuthDirectory(Protocol):
    """The tenant directory as login needs it (the node implements it; a relay reads it with
    the ``$publicinfos`` key alone)."""

    def user_keys(self, username: str) -> UserKeys:
        """The user's signing keys (none active and not revoked: unknown user)."""
        ...

    def key_status(self, signing_public_key: str) -> KeyStatus:
        """Whether the key may act now (the tenant admin's key is always active)."""
        ...


def normalize_key(pem: str) -> str:
    """A PEM without whitespace, the form the reference compares keys in."""
    return "".join(pem.split())


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token's claims (``sub`` is the username, or the device key PEM)."""

    sub: str
    iat: int
    exp: int
    tenant_id: str
    device_signing_key: str | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sub": self.sub,
            "iat": self.iat,
            "exp": self.exp,
            "tenantId": self.tenant_id,
        }
        if self.device_signing_key is not None:
            out["deviceSigningKey"] = self.device_signing_key
        return out


@dataclass(slots=True)
class _Challenge:
    username: str | None
    signing_public_key: str | None
    expires_at: float
    used: bool = False


def uuid7(now: float) -> str:
    """A UUIDv7 (RFC 9562): 48-bit ms timestamp, version 7, random rest."""
    ms = int(now * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62)
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _compact(obj: Mapping[str, Any]) -> bytes:
    """``JSON.stringify`` of a flat object of strings and numbers."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def verify_ed25519(public_pem: str, signature: bytes, message: bytes) -> bool:
    try:
        key = load_pem_public_key(public_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False
    if not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


class AuthService:
    """One tenant's challenges and tokens."""

    def __init__(
        self,
        tenant_id: str,
        directory: AuthDirectory,
        *,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
        challenge_seconds: float = CHALLENGE_SECONDS,
        token_seconds: int = TOKEN_SECONDS,
        max_challenges: int = MAX_CHALLENGES,
    ) -> None:
        self.tenant_id = tenant_id
        self._directory = directory
        self._secret = secret if secret is not None else os.urandom(32)
        self._clock = clock
        self._challenge_seconds = challenge_seconds
        self._token_seconds = token_seconds
        self._max = max_challenges
        self._challenges: OrderedDict[str, _Challenge] = OrderedDict()

    # -- challenge ---------------------------------------------------------------------------
    def challenge(self, username: str | None, signing_public_key: str | None) -> str:
        """A fresh challenge; the directory is asked first, so a revoked user gets none."""
        if username is None and signing_public_key is None:
            raise HttpError(
                ErrorKind.USER_NOT_FOUND, "A username or signing public key is required."
            )
        if username is not None:
            keys = self._directory.user_keys(username)
            if not keys.active:
                if keys.revoked:
                    raise HttpError(
                        ErrorKind.USER_REVOKED,
                        f'User "{username}" has no active access grant for this tenant.',
                    )
                raise HttpError(
                    ErrorKind.USER_NOT_FOUND, f'User "{username}" is not found in this tenant.'
                )
            if signing_public_key is not None and normalize_key(signing_public_key) not in {
                normalize_key(k) for k in keys.active
            }:
                raise HttpError(
                    ErrorKind.USER_NOT_FOUND,
                    f"This device's signing key is not in the tenant directory for "
                    f'user "{username}".',
                )
        else:
            assert signing_public_key is not None
            status = self._directory.key_status(signing_public_key)
            if status is KeyStatus.REVOKED:
                raise HttpError(ErrorKind.USER_REVOKED, "This signing key was revoked.")
            if status is not KeyStatus.ACTIVE:
                raise HttpError(
                    ErrorKind.USER_NOT_FOUND,
                    "No active access grant is known for the provided signing key.",
                )
        now = self._clock()
        self._drop_expired(now)
        challenge = uuid7(now)
        self._challenges[challenge] = _Challenge(
            username, signing_public_key, now + self._challenge_seconds
        )
        while len(self._challenges) > self._max:
            self._challenges.popitem(last=False)  # the oldest go first
        return challenge

    def _drop_expired(self, now: float) -> None:
        while self._challenges:
            oldest = next(iter(self._challenges.values()))
            if oldest.expires_at >= now:
                break
            self._challenges.popitem(last=False)

    # -- authenticate ------------------------------------------------------------------------
    def authenticate(self, challenge: str, signature: bytes) -> str:
        """A token for the key that signed ``challenge``, or ``HttpError``: an unknown, expired
        or used challenge is ``CHALLENGE_EXPIRED`` (401), a wrong signature
        ``INVALID_SIGNATURE`` (403), a user no longer granted ``USER_NOT_FOUND``."""
        record = self._challenges.get(challenge)
        if record is None:
            raise HttpError(ErrorKind.CHALLENGE_EXPIRED, "Challenge not found or expired")
        now = self._clock()
        if now > record.expires_at:
            del self._challenges[challenge]
            raise HttpError(ErrorKind.CHALLENGE_EXPIRED, "Challenge expired")
        if record.used:
            raise HttpError(ErrorKind.CHALLENGE_EXPIRED, "Challenge already used")
        record.used = True
        label = record.username or record.signing_public_key or "unknown"
        candidates: list[str]
        if record.username is not None:
            candidates = list(self._directory.user_keys(record.username).active)
            if record.signing_public_key is not None:
                wanted = normalize_key(record.signing_public_key)
                candidates = [k for k in candidates if normalize_key(k) == wanted]
        else:
            assert record.signing_public_key is not None
            active = self._directory.key_status(record.signing_public_key) is KeyStatus.ACTIVE
            candidates = [record.signing_public_key] if active else []
        if not candidates:
            raise HttpError(
                ErrorKind.INVALID_TOKEN,
                f'User "{label[:300]}" is not found, or has no active access grant here.',
            )
        message = challenge.encode("utf-8")
        matched = next((k for k in candidates if verify_ed25519(k, signature, message)), None)
        if matched is None:
            raise HttpError(ErrorKind.INVALID_SIGNATURE, "Invalid signature")
        return self.issue(record.username or matched, matched)

    def issue(self, sub: str, device_signing_key: str | None) -> str:
        """A signed token for ``sub`` (tests and node-internal callers use it directly)."""
        iat = int(self._clock())
        claims = Claims(sub, iat, iat + self._token_seconds, self.tenant_id, device_signing_key)
        head = _b64url(_compact({"alg": "HS256", "typ": "JWT"}))
        body = _b64url(_compact(claims.to_json()))
        mac = hmac.new(self._secret, f"{head}.{body}".encode("ascii"), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64url(mac)}"

    # -- every call --------------------------------------------------------------------------
    def validate(self, token: str) -> Claims:
        """The claims of a valid, unexpired token whose key the directory still trusts."""
        claims = self._verify(token)
        if claims is None or claims.exp < int(self._clock()):
            raise HttpError(ErrorKind.INVALID_TOKEN, "Invalid or expired token")
        key = claims.device_signing_key
        if key is not None:
            if self._directory.key_status(key) is not KeyStatus.ACTIVE:
                raise HttpError(ErrorKind.INVALID_TOKEN, "Invalid or expired token")
        elif not self._directory.user_keys(claims.sub).active:
            raise HttpError(ErrorKind.INVALID_TOKEN, "Invalid or expired token")
        return claims

    def _verify(self, token: str) -> Claims | None:
        if len(token) > _MAX_TOKEN_CHARS:
            return None
        parts = token.split(".")
        if len(parts) != 3:
            return None
        head_b64, body_b64, mac_b64 = parts
        try:
            header = json.loads(_unb64url(head_b64))
            if not isinstance(header, dict) or header.get("alg") != "HS256":
                return None  # the algorithm is pinned: no "none", no key confusion
            expected = hmac.new(
                self._secret, f"{head_b64}.{body_b64}".encode("ascii"), hashlib.sha256
            ).digest()
            if not hmac.compare_digest(expected, _unb64url(mac_b64)):
                return None
            body = json.loads(_unb64url(body_b64))
        except (ValueError, binascii.Error, UnicodeEncodeError):
            return None
        if not isinstance(body, dict):
            return None
        sub, iat, exp = body.get("sub"), body.get("iat"), body.get("exp")
        tenant, device = body.get("tenantId"), body.get("deviceSigningKey")
        if not (isinstance(sub, str) and isinstance(iat, int) and isinstance(exp, int)):
            return None
        if tenant != self.tenant_id or (device is not None and not isinstance(device, str)):
            return None
        return Claims(sub, iat, exp, tenant, device)


def bearer_token(headers: Mapping[str, str]) -> str:
    """The token of an ``Authorization: Bearer`` header (keys lowercased); 401 if absent."""
    value = headers.get("authorization", "")
    if not value.startswith("Bearer "):
        raise HttpError(ErrorKind.INVALID_TOKEN, "Missing or invalid Authorization header")
    return value[7:]
