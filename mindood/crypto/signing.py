"""Ed25519 signing keys (users, devices, admins, node identities).

:func:`verify` returns a bool rather than raising: "is this signature valid" is an ordinary
question whose answer drives a decision (accept or drop an entry), and a bool cannot be swallowed
by a broad ``except``. A malformed signature (wrong length) is simply invalid. Only a key that is
not an Ed25519 public key raises (:class:`KeyFormatError` for bad PEM text), because that is a
caller problem, not a property of the signed data.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mindood.crypto.pem import load_ed25519_public_pem, public_key_to_pem
from mindood.errors import InvalidKeyError

SIGNATURE_LENGTH = 64


def generate_signing_keypair() -> Ed25519PrivateKey:
    """A new Ed25519 private key (its public half via ``.public_key()``)."""
    return Ed25519PrivateKey.generate()


def signing_public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The reference-format PEM of an Ed25519 key's public half."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public_key_to_pem(public)


def sign(private_key: Ed25519PrivateKey, data: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``data``."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise InvalidKeyError(f"expected an Ed25519 private key, got {type(private_key).__name__}")
    return private_key.sign(bytes(data))


def verify(public_key: Ed25519PublicKey | str, data: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is a valid Ed25519 signature of ``data`` by ``public_key``.

    ``public_key`` may be a key object or PEM text (parsed strictly; bad PEM raises
    :class:`KeyFormatError`).
    """
    key = load_ed25519_public_pem(public_key) if isinstance(public_key, str) else public_key
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidKeyError(f"expected an Ed25519 public key, got {type(key).__name__}")
    if len(signature) != SIGNATURE_LENGTH:
        return False
    try:
        key.verify(bytes(signature), bytes(data))
    except InvalidSignature:
        return False
    return True
