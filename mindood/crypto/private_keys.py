"""Password-encrypted keys: the reference's ``EncryptedPrivateKey`` (reference-formats §1.3).

JSON shape: ``{ciphertext, iv, tag, salt: standard base64, iterations: int, createdAt?: int}``.
The AES-256-GCM key is ``PBKDF2-SHA256(UTF-8(password), salt || UTF-8(saltString), iterations)``;
GCM runs without AAD over the secret (PKCS#8 DER for private keys, raw bytes for exported
symmetric keys), and ciphertext and tag are stored separately. The ``saltString`` says what the
key is for ("signing", "encryption", ``doc:v2:<tenant>:<key>``), so a blob moved to another slot
does not decrypt even with the right password.

A GCM failure cannot tell a wrong password from an altered blob; both raise
:class:`WrongPasswordError`, whose message says so. Malformed JSON raises :class:`KeyFormatError`
before any key derivation runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mindood.crypto._codec import b64decode, b64encode, optional_int, utf8
from mindood.crypto.aead import IV_LENGTH, TAG_LENGTH, gcm_decrypt, gcm_encrypt
from mindood.crypto.kdf import derive_key, pbkdf2_iterations, resolve_stored_iterations
from mindood.errors import DecryptionError, KeyFormatError, WrongPasswordError

SALT_LENGTH = 16
#: Largest secret we accept in a blob (an RSA-8192 PKCS#8 is ~4.9 KB).
MAX_SECRET_LENGTH = 65_536
MAX_SALT_LENGTH = 1_024


@dataclass(frozen=True, slots=True)
class EncryptedPrivateKey:
    """A secret sealed under a password; ``to_json`` gives the reference's JSON object."""

    ciphertext: bytes
    iv: bytes
    tag: bytes
    salt: bytes
    iterations: int | float | None
    created_at: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object in the reference's field order; absent optional fields are omitted."""
        out: dict[str, Any] = {
            "ciphertext": b64encode(self.ciphertext),
            "iv": b64encode(self.iv),
            "tag": b64encode(self.tag),
            "salt": b64encode(self.salt),
        }
        if self.iterations is not None:
            out["iterations"] = self.iterations
        if self.created_at is not None:
            out["createdAt"] = self.created_at
        return out

    @classmethod
    def from_json(cls, data: object) -> EncryptedPrivateKey:
        """Validate and decode the JSON object; unknown fields are ignored for forward compat."""
        if isinstance(data, EncryptedPrivateKey):
            return data
        if not isinstance(data, Mapping):
            raise KeyFormatError(f"encrypted key must be an object, got {type(data).__name__}")
        ciphertext = b64decode(data.get("ciphertext"), "encrypted key 'ciphertext'")
        iv = b64decode(data.get("iv"), "encrypted key 'iv'")
        tag = b64decode(data.get("tag"), "encrypted key 'tag'")
        salt = b64decode(data.get("salt"), "encrypted key 'salt'")
        if len(ciphertext) > MAX_SECRET_LENGTH:
            raise KeyFormatError("encrypted key 'ciphertext' is too large")
        if len(iv) != IV_LENGTH:
            raise KeyFormatError(f"encrypted key 'iv' must be {IV_LENGTH} bytes")
        if len(tag) != TAG_LENGTH:
            raise KeyFormatError(f"encrypted key 'tag' must be {TAG_LENGTH} bytes")
        if not 1 <= len(salt) <= MAX_SALT_LENGTH:
            raise KeyFormatError("encrypted key 'salt' has an invalid length")
        iterations = data.get("iterations")
        if iterations is not None and (
            isinstance(iterations, bool) or not isinstance(iterations, int | float)
        ):
            raise KeyFormatError("encrypted key 'iterations' must be a number")
        created_at = optional_int(data.get("createdAt"), "encrypted key 'createdAt'")
        return cls(ciphertext, iv, tag, salt, iterations, created_at)


def encrypt_private_key(
    secret: bytes,
    password: str,
    salt_string: str,
    *,
    created_at: int | None = None,
) -> EncryptedPrivateKey:
    """Seal ``secret`` (PKCS#8 DER or raw key bytes) under ``password`` for ``salt_string``.

    Uses a fresh 16-byte salt, a fresh IV and the current iteration count
    (:func:`mindood.crypto.kdf.pbkdf2_iterations`).
    """
    salt = os.urandom(SALT_LENGTH)
    iv = os.urandom(IV_LENGTH)
    iterations = pbkdf2_iterations()
    key = derive_key(password, salt + utf8(salt_string), iterations)
    sealed = gcm_encrypt(key, iv, bytes(secret))
    return EncryptedPrivateKey(
        ciphertext=sealed[:-TAG_LENGTH],
        iv=iv,
        tag=sealed[-TAG_LENGTH:],
        salt=salt,
        iterations=iterations,
        created_at=created_at,
    )


def decrypt_private_key(
    blob: EncryptedPrivateKey | Mapping[str, object], password: str, salt_string: str
) -> bytes:
    """Open a blob from :func:`encrypt_private_key` (or the reference) and return the secret.

    Raises :class:`KeyFormatError` for a malformed blob and :class:`WrongPasswordError` when the
    password (or ``salt_string``) is wrong or the blob was altered.
    """
    parsed = EncryptedPrivateKey.from_json(blob)
    iterations = resolve_stored_iterations(parsed.iterations)
    key = derive_key(password, parsed.salt + utf8(salt_string), iterations)
    try:
        return gcm_decrypt(key, parsed.iv, parsed.ciphertext + parsed.tag)
    except DecryptionError:
        raise WrongPasswordError(
            "cannot decrypt the key: wrong password, or the encrypted key was altered"
        ) from None
