"""Short, stable names for keys, as the reference computes them (reference-formats §1.11).

* :func:`rsa_key_fingerprint`: the first 8 bytes of SHA-256 over a public key's SPKI DER, as
  lowercase hex pairs joined by ``:`` (``3d:e9:dc:13:e4:8a:1a:a7``). It names a device's
  encryption key (the ``deviceWraps`` map of a User-Key document) and a User-Key (the
  ``<usernamehash>|<fingerprint>`` keys of ``pushto_users_keys``). It hashes the decoded key, not
  the PEM text, so line breaks do not change it.
* :func:`key_version_fingerprint`: SHA-256 hex of a raw symmetric key: the identity of one key
  version in a key-distribution manifest, checked after every unwrap.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mindood.crypto.pem import load_rsa_public_pem, pem_to_spki_der

FINGERPRINT_BYTES = 8


def spki_fingerprint(spki_der: bytes) -> str:
    """The colon-separated fingerprint of SPKI DER bytes."""
    digest = hashlib.sha256(bytes(spki_der)).digest()[:FINGERPRINT_BYTES]
    return ":".join(f"{byte:02x}" for byte in digest)


def rsa_key_fingerprint(key: str | RSAPublicKey | RSAPrivateKey) -> str:
    """Fingerprint of an RSA public key given as PEM text or a key object.

    A PEM must hold an RSA key (:class:`~mindood.errors.KeyFormatError` otherwise): a
    fingerprint of something else would name a key no one can wrap to.
    """
    if isinstance(key, str):
        load_rsa_public_pem(key)
        return spki_fingerprint(pem_to_spki_der(key))
    public = key.public_key() if isinstance(key, RSAPrivateKey) else key
    return spki_fingerprint(public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))


def key_version_fingerprint(raw_key: bytes) -> str:
    """SHA-256 hex (lowercase, 64 chars) of a raw symmetric key version."""
    return hashlib.sha256(bytes(raw_key)).hexdigest()
