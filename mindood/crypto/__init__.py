"""Crypto core of mindood: the reference's key and ciphertext formats, byte for byte.

Submodules: ``pem`` (public key text), ``kdf`` (PBKDF2 and iteration policy), ``aead``
(AES-256-GCM payloads and attachment chunks), ``rsa`` (RSA-OAEP-3072 hybrid encryption and key
wrapping), ``signing`` (Ed25519) and ``private_keys`` (password-encrypted keys).
"""

from mindood.crypto.aead import (
    decrypt_attachment_chunk,
    decrypt_attachment_chunk_with_any,
    decrypt_payload,
    decrypt_with_any,
    encrypt_attachment_chunk,
    encrypt_payload,
    new_symmetric_key,
)
from mindood.crypto.kdf import (
    DEFAULT_PBKDF2_ITERATIONS,
    MIN_PBKDF2_ITERATIONS,
    apply_test_pbkdf2_iterations_from_env,
    lowered_pbkdf2_iterations,
    pbkdf2_iterations,
    pbkdf2_sha256,
    resolve_stored_iterations,
    set_test_pbkdf2_iterations,
)
from mindood.crypto.pem import (
    is_canonical_pem,
    load_ed25519_public_pem,
    load_public_key_pem,
    load_rsa_public_pem,
    normalize_pem,
    public_key_to_pem,
)
from mindood.crypto.private_keys import (
    EncryptedPrivateKey,
    decrypt_private_key,
    encrypt_private_key,
)
from mindood.crypto.rsa import generate_rsa_keypair, rsa_public_pem
from mindood.crypto.signing import generate_signing_keypair, sign, signing_public_pem, verify

__all__ = [
    "DEFAULT_PBKDF2_ITERATIONS",
    "MIN_PBKDF2_ITERATIONS",
    "EncryptedPrivateKey",
    "apply_test_pbkdf2_iterations_from_env",
    "decrypt_attachment_chunk",
    "decrypt_attachment_chunk_with_any",
    "decrypt_payload",
    "decrypt_private_key",
    "decrypt_with_any",
    "encrypt_attachment_chunk",
    "encrypt_payload",
    "encrypt_private_key",
    "generate_rsa_keypair",
    "generate_signing_keypair",
    "is_canonical_pem",
    "load_ed25519_public_pem",
    "load_public_key_pem",
    "load_rsa_public_pem",
    "lowered_pbkdf2_iterations",
    "new_symmetric_key",
    "normalize_pem",
    "pbkdf2_iterations",
    "pbkdf2_sha256",
    "public_key_to_pem",
    "resolve_stored_iterations",
    "rsa_public_pem",
    "set_test_pbkdf2_iterations",
    "sign",
    "signing_public_pem",
    "verify",
]
