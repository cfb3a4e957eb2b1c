"""RSA-OAEP-3072 encryption keys: hybrid encryption and raw key wrapping (reference-formats §1.7).

Parameters as the reference: modulus 3072 bits, e = 65537, OAEP with SHA-256 and MGF1-SHA-256,
empty label.

* Hybrid :func:`encrypt` (used for any data, even tiny): a fresh AES-256 key is RSA-wrapped and
  the data sealed with it: ``u16BE(len(encKey)) || encKey || IV(12) || ciphertext || tag(16)``.
* Raw :func:`wrap_key`: plain RSA-OAEP of a small secret, no framing (session keys, join
  responses, ``$publicinfos`` deliveries).

Public keys may be given as key objects or as PEM text; bad input raises a typed error.
"""

from __future__ import annotations

import os
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import (
    RSAPrivateKey,
    RSAPublicKey,
    generate_private_key,
)

from mindood.crypto._codec import b64decode, b64encode
from mindood.crypto.aead import IV_LENGTH, KEY_LENGTH, TAG_LENGTH, gcm_decrypt, gcm_encrypt
from mindood.crypto.pem import load_rsa_public_pem, public_key_to_pem
from mindood.errors import CryptoError, DecryptionError, InvalidKeyError, KeyFormatError

RSA_KEY_BITS = 3072
RSA_PUBLIC_EXPONENT = 65537
_LENGTH_PREFIX = struct.Struct(">H")


def _oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def generate_rsa_keypair() -> RSAPrivateKey:
    """A new RSA-3072 private key (its public half via ``.public_key()``); takes ~0.35 s."""
    return generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_KEY_BITS)


def rsa_public_pem(key: RSAPrivateKey | RSAPublicKey) -> str:
    """The reference-format PEM of an RSA key's public half."""
    public = key.public_key() if isinstance(key, RSAPrivateKey) else key
    return public_key_to_pem(public)


def _public(key: RSAPublicKey | str) -> RSAPublicKey:
    if isinstance(key, str):
        return load_rsa_public_pem(key)
    if not isinstance(key, RSAPublicKey):
        raise InvalidKeyError(f"expected an RSA public key, got {type(key).__name__}")
    return key


def _private(key: RSAPrivateKey) -> RSAPrivateKey:
    if not isinstance(key, RSAPrivateKey):
        raise InvalidKeyError(f"expected an RSA private key, got {type(key).__name__}")
    return key


def wrap_key(raw: bytes, public_key: RSAPublicKey | str) -> bytes:
    """RSA-OAEP ciphertext of a small secret (at most 318 bytes for a 3072-bit key)."""
    key = _public(public_key)
    try:
        return key.encrypt(bytes(raw), _oaep())
    except ValueError as exc:
        raise CryptoError(f"cannot RSA-wrap {len(raw)} bytes: {exc}") from None


def unwrap_key(wrapped: bytes, private_key: RSAPrivateKey) -> bytes:
    """Inverse of :func:`wrap_key`; wrong key or tampering raises :class:`DecryptionError`."""
    key = _private(private_key)
    if len(wrapped) != key.key_size // 8:
        raise DecryptionError(f"RSA ciphertext must be {key.key_size // 8} bytes")
    try:
        return key.decrypt(bytes(wrapped), _oaep())
    except ValueError:
        raise DecryptionError("RSA-OAEP decryption failed (wrong key or tampered)") from None


def encrypt(data: bytes, public_key: RSAPublicKey | str) -> bytes:
    """Hybrid-encrypt ``data`` for the holder of ``public_key`` (§1.7 layout)."""
    aes_key = os.urandom(KEY_LENGTH)
    enc_key = wrap_key(aes_key, public_key)
    iv = os.urandom(IV_LENGTH)
    return _LENGTH_PREFIX.pack(len(enc_key)) + enc_key + iv + gcm_encrypt(aes_key, iv, data)


def decrypt(blob: bytes, private_key: RSAPrivateKey) -> bytes:
    """Decrypt a blob written by :func:`encrypt`; any defect raises :class:`DecryptionError`."""
    key = _private(private_key)
    if len(blob) < _LENGTH_PREFIX.size:
        raise DecryptionError("hybrid RSA blob is truncated")
    (enc_len,) = _LENGTH_PREFIX.unpack_from(blob)
    if enc_len != key.key_size // 8:
        raise DecryptionError(f"wrapped key length {enc_len} does not match the RSA key")
    body = _LENGTH_PREFIX.size + enc_len
    if len(blob) < body + IV_LENGTH + TAG_LENGTH:
        raise DecryptionError("hybrid RSA blob is truncated")
    aes_key = unwrap_key(blob[_LENGTH_PREFIX.size : body], key)
    if len(aes_key) != KEY_LENGTH:
        raise DecryptionError("wrapped AES key has the wrong length")
    return gcm_decrypt(aes_key, blob[body : body + IV_LENGTH], blob[body + IV_LENGTH :])


def encrypt_to_base64(data: bytes, public_key: RSAPublicKey | str) -> str:
    """:func:`encrypt`, as standard base64."""
    return b64encode(encrypt(data, public_key))


def decrypt_from_base64(text: str, private_key: RSAPrivateKey) -> bytes:
    """:func:`decrypt` of standard base64; bad base64 raises :class:`DecryptionError`."""
    return decrypt(_b64_ciphertext(text), private_key)


def wrap_key_to_base64(raw: bytes, public_key: RSAPublicKey | str) -> str:
    """:func:`wrap_key`, as standard base64."""
    return b64encode(wrap_key(raw, public_key))


def unwrap_key_from_base64(text: str, private_key: RSAPrivateKey) -> bytes:
    """:func:`unwrap_key` of standard base64; bad base64 raises :class:`DecryptionError`."""
    return unwrap_key(_b64_ciphertext(text), private_key)


def _b64_ciphertext(text: str) -> bytes:
    try:
        return b64decode(text, "RSA ciphertext")
    except KeyFormatError as exc:
        raise DecryptionError(str(exc)) from None
