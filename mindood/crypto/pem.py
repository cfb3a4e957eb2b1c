"""Public keys as PEM text, byte-identical to the TypeScript reference (reference-formats §1.1).

The reference compares PEMs as exact strings (directory grants, signer checks), so the writer here
must produce the very same text: ``-----BEGIN PUBLIC KEY-----\\n``, the SPKI DER in standard base64
cut into 64-character lines joined by ``\\n``, then ``\\n-----END PUBLIC KEY-----`` and no trailing
newline. The reader is lenient about whitespace (so hand-edited or CRLF files load) but strict
about the key type, because using a signing key where an encryption key is expected is always a bug
or an attack.
"""

from __future__ import annotations

import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from mindood.crypto._codec import b64decode, b64encode
from mindood.errors import KeyFormatError

PEM_HEADER = "-----BEGIN PUBLIC KEY-----"
PEM_FOOTER = "-----END PUBLIC KEY-----"
PEM_LINE_LENGTH = 64
#: Smallest RSA modulus accepted from others; we generate 3072-bit keys.
MIN_RSA_KEY_BITS = 2048
#: Upper bound on PEM text we parse at all (an RSA-16384 SPKI is ~2.8 KB of base64).
MAX_PEM_CHARS = 16_384

_WHITESPACE = re.compile(r"\s+")

PublicKey = Ed25519PublicKey | RSAPublicKey


def spki_der_to_pem(der: bytes) -> str:
    """Wrap SPKI DER bytes in the reference's exact PEM text."""
    body = b64encode(der)
    lines = [body[i : i + PEM_LINE_LENGTH] for i in range(0, len(body), PEM_LINE_LENGTH)]
    return PEM_HEADER + "\n" + "\n".join(lines) + "\n" + PEM_FOOTER


def public_key_to_pem(key: PublicKey) -> str:
    """Export an Ed25519 or RSA public key as the reference's PEM text."""
    if not isinstance(key, Ed25519PublicKey | RSAPublicKey):
        raise TypeError(f"unsupported public key type {type(key).__name__}")
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return spki_der_to_pem(der)


def normalize_pem(pem: str) -> str:
    """The PEM with all whitespace removed: the form used when comparing keys leniently."""
    return _WHITESPACE.sub("", pem)


def pem_to_spki_der(pem: object) -> bytes:
    """The SPKI DER inside a ``PUBLIC KEY`` PEM; whitespace anywhere is ignored."""
    if not isinstance(pem, str):
        raise KeyFormatError(f"PEM must be a string, got {type(pem).__name__}")
    if len(pem) > MAX_PEM_CHARS:
        raise KeyFormatError("PEM is too long")
    compact = normalize_pem(pem)
    header, footer = normalize_pem(PEM_HEADER), normalize_pem(PEM_FOOTER)
    if not (compact.startswith(header) and compact.endswith(footer)):
        raise KeyFormatError("not a PEM 'PUBLIC KEY' block")
    body = compact[len(header) : len(compact) - len(footer)]
    if not body:
        raise KeyFormatError("PEM has an empty body")
    return b64decode(body, "PEM body")


def load_public_key_pem(pem: object) -> PublicKey:
    """Parse a PEM into an Ed25519 or RSA public key object (any other type is rejected)."""
    der = pem_to_spki_der(pem)
    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"PEM does not hold a valid public key: {exc}") from None
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, RSAPublicKey):
        if key.key_size < MIN_RSA_KEY_BITS:
            raise KeyFormatError(f"RSA key of {key.key_size} bits is below {MIN_RSA_KEY_BITS}")
        return key
    raise KeyFormatError(f"unsupported public key type {type(key).__name__}")


def load_ed25519_public_pem(pem: object) -> Ed25519PublicKey:
    """Parse a PEM that must hold an Ed25519 (signing) public key."""
    key = load_public_key_pem(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFormatError("expected an Ed25519 public key, got an RSA key")
    return key


def load_rsa_public_pem(pem: object) -> RSAPublicKey:
    """Parse a PEM that must hold an RSA (encryption) public key."""
    key = load_public_key_pem(pem)
    if not isinstance(key, RSAPublicKey):
        raise KeyFormatError("expected an RSA public key, got an Ed25519 key")
    return key


def is_canonical_pem(pem: str) -> bool:
    """True when ``pem`` is exactly the text this module (and the reference) would write."""
    try:
        return spki_der_to_pem(pem_to_spki_der(pem)) == pem
    except KeyFormatError:
        return False
