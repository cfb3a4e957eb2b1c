"""Saved sessions: everything needed to reopen a tenant, as one password-sealed blob.

A session holds the user's identity (private keys still sealed under the user's password), this
tenant's symmetric keys and the tenant's public facts. Its password is the user's password: one
secret reopens everything, and the restored identity and KeyBag are sealed with it as before.

Layout (all integers big-endian)::

    "MDBS" | version u8 (=1) | salt[16] | iterations u32 | iv[12] | AES-256-GCM(ciphertext||tag)

The AES key is ``PBKDF2-SHA256(UTF-8(password), salt || "mindood-session:v1", iterations)``; the
header up to the IV is the GCM associated data, so changing the version, salt or iteration count
fails authentication like a wrong password does. The count is stored (unlike the reference's
KeyBag), so a session survives a change of the default count; stored counts are bounded by the
same floor and cap as every other password blob. The plaintext is compact JSON::

    {"v": 1, "tenantId", "adminSigningPublicKey", "adminEncryptionPublicKey",
     "user": <PrivateUserId JSON>, "keys": [{"keyId", "versions": [{"key", "createdAt"?}]}],
     "tenantLabel"?}
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mindood.crypto._codec import b64decode, b64encode, dumps_json, loads_json, optional_int, utf8
from mindood.crypto.aead import IV_LENGTH, TAG_LENGTH
from mindood.crypto.kdf import pbkdf2_iterations, pbkdf2_sha256, resolve_stored_iterations
from mindood.errors import (
    DecryptionError,
    KeyFormatError,
    SessionFormatError,
    WrongPasswordError,
)
from mindood.identity import PrivateUserId
from mindood.keybag import KeyVersion

MAGIC = b"MDBS"
FORMAT_VERSION = 1
SALT_LENGTH = 16
PURPOSE = b"mindood-session:v1"
MAX_SESSION_BYTES = 4 * 1024 * 1024
_HEADER = struct.Struct(f">4sB{SALT_LENGTH}sI")
_MIN_LENGTH = _HEADER.size + IV_LENGTH + TAG_LENGTH


@dataclass(frozen=True, slots=True)
class SessionData:
    """What a session restores."""

    tenant_id: str
    admin_signing_public_key: str
    admin_encryption_public_key: str
    user: PrivateUserId
    keys: Mapping[str, Sequence[KeyVersion]]
    tenant_label: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "tenantId": self.tenant_id,
            "adminSigningPublicKey": self.admin_signing_public_key,
            "adminEncryptionPublicKey": self.admin_encryption_public_key,
            "user": self.user.to_json(),
            "keys": [
                {"keyId": key_id, "versions": [_version_json(v) for v in versions]}
                for key_id, versions in self.keys.items()
            ],
        }
        if self.tenant_label is not None:
            out["tenantLabel"] = self.tenant_label
        return out

    @classmethod
    def from_json(cls, data: object) -> SessionData:
        try:
            return cls._from_json(data)
        except KeyFormatError as exc:
            raise SessionFormatError(f"session contents are invalid: {exc}") from None

    @classmethod
    def _from_json(cls, data: object) -> SessionData:
        if not isinstance(data, Mapping) or data.get("v") != FORMAT_VERSION:
            raise SessionFormatError("session contents are not a version 1 session")
        keys: dict[str, list[KeyVersion]] = {}
        raw_keys = data.get("keys")
        if not isinstance(raw_keys, list):
            raise SessionFormatError("session 'keys' must be a list")
        for item in raw_keys:
            if not isinstance(item, Mapping) or not isinstance(item.get("keyId"), str):
                raise SessionFormatError("session key item must be {keyId, versions}")
            versions = item.get("versions")
            if not isinstance(versions, list):
                raise SessionFormatError("session key 'versions' must be a list")
            keys[item["keyId"]] = [_parse_version(v) for v in versions]
        label = data.get("tenantLabel")
        return cls(
            tenant_id=_text(data, "tenantId"),
            admin_signing_public_key=_text(data, "adminSigningPublicKey"),
            admin_encryption_public_key=_text(data, "adminEncryptionPublicKey"),
            user=PrivateUserId.from_json(data.get("user")),
            keys=keys,
            tenant_label=label if isinstance(label, str) else None,
        )


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise SessionFormatError(f"session {key!r} must be a non-empty string")
    return value


def _version_json(version: KeyVersion) -> dict[str, Any]:
    out: dict[str, Any] = {"key": b64encode(version.key)}
    if version.created_at is not None:
        out["createdAt"] = version.created_at
    return out


def _parse_version(raw: object) -> KeyVersion:
    if not isinstance(raw, Mapping):
        raise SessionFormatError("session key version must be an object")
    key = b64decode(raw.get("key"), "session 'key'")
    if not 1 <= len(key) <= 1024:
        raise SessionFormatError("session key has an invalid length")
    return KeyVersion(key, optional_int(raw.get("createdAt"), "session 'createdAt'"))


def _derive(password: str, salt: bytes, iterations: int) -> bytes:
    return pbkdf2_sha256(utf8(password), salt + PURPOSE, iterations)


def seal_session(data: SessionData, password: str) -> bytes:
    """The sealed blob (one PBKDF2: call it off the event loop)."""
    salt = os.urandom(SALT_LENGTH)
    iterations = pbkdf2_iterations()
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, salt, iterations)
    iv = os.urandom(IV_LENGTH)
    sealed = AESGCM(_derive(password, salt, iterations)).encrypt(
        iv, dumps_json(data.to_json()), header
    )
    return header + iv + sealed


def open_session(blob: bytes, password: str) -> SessionData:
    """Open a blob from :func:`seal_session`.

    :class:`SessionFormatError` for a blob that is not a session (truncated, wrong magic, unknown
    version, bad contents); :class:`WrongPasswordError` when authentication fails, which is what
    a wrong password and a tampered blob look like alike.
    """
    if not isinstance(blob, bytes | bytearray) or not _MIN_LENGTH <= len(blob) <= MAX_SESSION_BYTES:
        raise SessionFormatError("not a session blob (bad length)")
    blob = bytes(blob)
    magic, version, salt, stored = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise SessionFormatError("not a session blob (bad magic)")
    if version != FORMAT_VERSION:
        raise SessionFormatError(f"session format version {version} is not supported")
    try:
        iterations = resolve_stored_iterations(stored)
    except KeyFormatError as exc:
        raise SessionFormatError(str(exc)) from None
    header, body = blob[: _HEADER.size], blob[_HEADER.size :]
    try:
        plain = AESGCM(_derive(password, salt, iterations)).decrypt(
            body[:IV_LENGTH], body[IV_LENGTH:], header
        )
    except (InvalidTag, DecryptionError):
        raise WrongPasswordError(
            "cannot open the session: wrong password, or the session blob was altered"
        ) from None
    try:
        parsed = loads_json(plain, "session contents")
    except KeyFormatError as exc:
        raise SessionFormatError(str(exc)) from None
    return SessionData.from_json(parsed)
