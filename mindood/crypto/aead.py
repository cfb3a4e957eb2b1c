"""AES-256-GCM for entry payloads and attachment chunks (reference-formats §1.5, §1.6).

Payload blob: ``IV(12) || ciphertext || tag(16)``, random IV, no associated data.
Attachment chunk: ``mode(1) || IV(12) || ciphertext || tag(16)``; mode 0x01 derives the IV from
the plaintext (first 12 bytes of its SHA-256) so that equal chunks under the same key give equal
ciphertext and thus the same content hash, which lets stores deduplicate them. Mode 0x00 uses a
random IV. Reusing an IV is safe here only because the IV is a function of the plaintext: the same
IV always goes with the same plaintext.

Every failure (wrong key, flipped bit, truncation) raises :class:`DecryptionError`; GCM's tag
check guarantees we never return garbage.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mindood.errors import DecryptionError, InvalidKeyError, KeyNotFoundError

KEY_LENGTH = 32
IV_LENGTH = 12
TAG_LENGTH = 16
ATTACHMENT_MODE_RANDOM = 0x00
ATTACHMENT_MODE_DETERMINISTIC = 0x01
MIN_PAYLOAD_LENGTH = IV_LENGTH + TAG_LENGTH
MIN_ATTACHMENT_LENGTH = 1 + IV_LENGTH + TAG_LENGTH
_K = TypeVar("_K")


def new_symmetric_key() -> bytes:
    """A fresh random AES-256 key (32 bytes)."""
    return os.urandom(KEY_LENGTH)


def _cipher(key: bytes) -> AESGCM:
    if not isinstance(key, bytes | bytearray) or len(key) != KEY_LENGTH:
        raise InvalidKeyError(f"AES-256-GCM key must be {KEY_LENGTH} bytes")
    return AESGCM(bytes(key))


def gcm_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """``ciphertext || tag`` for one IV (no AAD); building block for the framed formats."""
    return _cipher(key).encrypt(iv, plaintext, None)


def gcm_decrypt(key: bytes, iv: bytes, ciphertext_and_tag: bytes) -> bytes:
    """Inverse of :func:`gcm_encrypt`; raises :class:`DecryptionError` on any mismatch."""
    cipher = _cipher(key)
    if len(iv) != IV_LENGTH or len(ciphertext_and_tag) < TAG_LENGTH:
        raise DecryptionError("ciphertext is truncated")
    try:
        return cipher.decrypt(iv, ciphertext_and_tag, None)
    except InvalidTag:
        raise DecryptionError("wrong key or tampered ciphertext") from None


def encrypt_payload(key: bytes, plaintext: bytes) -> bytes:
    """Encrypt an entry payload: ``IV(12 random) || ciphertext || tag``."""
    iv = os.urandom(IV_LENGTH)
    return iv + gcm_encrypt(key, iv, plaintext)


def decrypt_payload(key: bytes, blob: bytes) -> bytes:
    """Decrypt a payload written by :func:`encrypt_payload`."""
    if len(blob) < MIN_PAYLOAD_LENGTH:
        raise DecryptionError(f"payload of {len(blob)} bytes is shorter than IV + tag")
    return gcm_decrypt(key, blob[:IV_LENGTH], blob[IV_LENGTH:])


class PayloadCipher:
    """:func:`encrypt_payload` / :func:`decrypt_payload` under one key, set up once.

    For a sync session's key, which seals every entry a session moves: building the AES
    context costs several times more than sealing a 1 KiB payload with it.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = _cipher(key)

    def encrypt(self, plaintext: bytes) -> bytes:
        iv = os.urandom(IV_LENGTH)
        return iv + self._aead.encrypt(iv, plaintext, None)

    def decrypt(self, blob: bytes) -> bytes:
        if len(blob) < MIN_PAYLOAD_LENGTH:
            raise DecryptionError(f"payload of {len(blob)} bytes is shorter than IV + tag")
        view = memoryview(blob)
        try:
            return self._aead.decrypt(view[:IV_LENGTH], view[IV_LENGTH:], None)
        except InvalidTag:
            raise DecryptionError("wrong key or tampered ciphertext") from None


class PayloadKeys:
    """:func:`decrypt_with_any` under one key's versions, each AES context set up once.

    A batch read decrypts the entries of hundreds of documents under the same few keys; the
    context costs about as much as decrypting a small payload with it.
    """

    __slots__ = ("_ciphers", "_only")

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._ciphers = [PayloadCipher(key) for key in keys]
        #: The usual case, a key with one version: its cipher, called directly.
        self._only = self._ciphers[0] if len(self._ciphers) == 1 else None

    def decrypt(self, blob: bytes) -> bytes:
        if self._only is not None:
            try:
                return self._only.decrypt(blob)
            except DecryptionError:
                raise DecryptionError("none of 1 key version(s) decrypts the data") from None
        return _with_any(PayloadCipher.decrypt, self._ciphers, blob)


def attachment_iv(plaintext: bytes) -> bytes:
    """The deterministic IV of mode 0x01: ``SHA-256(plaintext)[:12]``."""
    return hashlib.sha256(plaintext).digest()[:IV_LENGTH]


def encrypt_attachment_chunk(key: bytes, plaintext: bytes, *, deterministic: bool = True) -> bytes:
    """Encrypt one attachment chunk; deterministic (mode 0x01) by default, as the reference."""
    if deterministic:
        mode, iv = ATTACHMENT_MODE_DETERMINISTIC, attachment_iv(plaintext)
    else:
        mode, iv = ATTACHMENT_MODE_RANDOM, os.urandom(IV_LENGTH)
    return bytes([mode]) + iv + gcm_encrypt(key, iv, plaintext)


def decrypt_attachment_chunk(key: bytes, blob: bytes) -> bytes:
    """Decrypt a chunk written by :func:`encrypt_attachment_chunk` (either mode)."""
    if len(blob) < MIN_ATTACHMENT_LENGTH:
        raise DecryptionError(f"attachment chunk of {len(blob)} bytes is truncated")
    if blob[0] not in (ATTACHMENT_MODE_RANDOM, ATTACHMENT_MODE_DETERMINISTIC):
        raise DecryptionError(f"unknown attachment encryption mode 0x{blob[0]:02x}")
    return gcm_decrypt(key, blob[1 : 1 + IV_LENGTH], blob[1 + IV_LENGTH :])


def _with_any(decrypt: Callable[[_K, bytes], bytes], keys: Sequence[_K], blob: bytes) -> bytes:
    """``decrypt`` under each key version in turn (raw keys, or ciphers set up from them)."""
    if not keys:
        raise KeyNotFoundError("no key versions to decrypt with")
    for key in keys:
        try:
            return decrypt(key, blob)
        except DecryptionError:
            continue
    raise DecryptionError(f"none of {len(keys)} key version(s) decrypts the data")


def decrypt_with_any(keys: Sequence[bytes], blob: bytes) -> bytes:
    """Decrypt a payload trying each key version in order (pass them newest first).

    Raises :class:`KeyNotFoundError` for an empty list, :class:`DecryptionError` if none fits.
    """
    return _with_any(decrypt_payload, keys, blob)


def decrypt_attachment_chunk_with_any(keys: Sequence[bytes], blob: bytes) -> bytes:
    """Like :func:`decrypt_with_any`, for attachment chunks."""
    return _with_any(decrypt_attachment_chunk, keys, blob)
