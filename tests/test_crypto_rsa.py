"""RSA-OAEP-3072 hybrid encryption and raw key wraps (reference-formats §1.7)."""

from __future__ import annotations

import functools
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from mindood.crypto import rsa
from mindood.errors import CryptoError, DecryptionError, InvalidKeyError, KeyFormatError

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@functools.cache
def key_a() -> RSAPrivateKey:
    return rsa.generate_rsa_keypair()


@functools.cache
def key_b() -> RSAPrivateKey:
    return rsa.generate_rsa_keypair()


def test_keypair_parameters() -> None:
    key = key_a()
    assert key.key_size == 3072
    assert key.public_key().public_numbers().e == 65537


def test_hybrid_layout() -> None:
    data = b"x" * 100
    blob = rsa.encrypt(data, key_a().public_key())
    (enc_len,) = struct.unpack(">H", blob[:2])
    assert enc_len == 384
    assert len(blob) == 2 + 384 + 12 + len(data) + 16
    # Open it by hand: OAEP-SHA256 for the AES key, then AES-GCM with the IV that follows.
    aes_key = key_a().decrypt(blob[2:386], OAEP)
    assert len(aes_key) == 32
    assert AESGCM(aes_key).decrypt(blob[386:398], blob[398:], None) == data


def test_decrypts_hybrid_blob_assembled_by_hand() -> None:
    aes_key = bytes(range(32))
    iv = bytes(12)
    enc_key = key_a().public_key().encrypt(aes_key, OAEP)
    blob = struct.pack(">H", len(enc_key)) + enc_key + iv + AESGCM(aes_key).encrypt(iv, b"hi", None)
    assert rsa.decrypt(blob, key_a()) == b"hi"


def test_hybrid_round_trip_small_and_large() -> None:
    for data in (b"", b"a", bytes(range(256)) * 4096):
        assert rsa.decrypt(rsa.encrypt(data, key_a().public_key()), key_a()) == data


def test_hybrid_accepts_pem_public_key_and_base64() -> None:
    pem = rsa.rsa_public_pem(key_a())
    text = rsa.encrypt_to_base64(b"via pem", pem)
    assert rsa.decrypt_from_base64(text, key_a()) == b"via pem"


def test_hybrid_wrong_key_raises() -> None:
    blob = rsa.encrypt(b"secret", key_a().public_key())
    with pytest.raises(DecryptionError):
        rsa.decrypt(blob, key_b())


@pytest.mark.parametrize("offset", [0, 1, 2, 200, 386, 390, 398, -1])
def test_hybrid_tamper_raises(offset: int) -> None:
    blob = bytearray(rsa.encrypt(b"secret data", key_a().public_key()))
    blob[offset] ^= 0x01
    with pytest.raises(DecryptionError):
        rsa.decrypt(bytes(blob), key_a())


def test_hybrid_truncation_raises() -> None:
    blob = rsa.encrypt(b"secret", key_a().public_key())
    for length in (0, 1, 2, 386, 397, 398 + 15):
        with pytest.raises(DecryptionError):
            rsa.decrypt(blob[:length], key_a())


def test_wrap_key_is_raw_oaep() -> None:
    secret = bytes(range(32))
    wrapped = rsa.wrap_key(secret, key_a().public_key())
    assert len(wrapped) == 384
    assert key_a().decrypt(wrapped, OAEP) == secret
    assert rsa.unwrap_key(wrapped, key_a()) == secret
    assert rsa.unwrap_key(key_a().public_key().encrypt(b"by hand", OAEP), key_a()) == b"by hand"
    text = rsa.wrap_key_to_base64(secret, rsa.rsa_public_pem(key_a()))
    assert rsa.unwrap_key_from_base64(text, key_a()) == secret


def test_unwrap_wrong_key_or_tamper_raises() -> None:
    wrapped = rsa.wrap_key(b"k" * 32, key_a().public_key())
    with pytest.raises(DecryptionError):
        rsa.unwrap_key(wrapped, key_b())
    tampered = bytearray(wrapped)
    tampered[100] ^= 0x80
    with pytest.raises(DecryptionError):
        rsa.unwrap_key(bytes(tampered), key_a())
    with pytest.raises(DecryptionError):
        rsa.unwrap_key(wrapped[:-1], key_a())
    with pytest.raises(DecryptionError):
        rsa.unwrap_key_from_base64("not base64!", key_a())


def test_wrap_too_large_secret_raises_crypto_error() -> None:
    with pytest.raises(CryptoError):
        rsa.wrap_key(bytes(400), key_a().public_key())


def test_wrong_key_types_raise_typed_errors() -> None:
    with pytest.raises(KeyFormatError):
        rsa.encrypt(b"x", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
    with pytest.raises(InvalidKeyError):
        rsa.decrypt(b"x" * 500, key_a().public_key())  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        rsa.wrap_key(b"x", b"not a key")  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=500))
def test_random_bytes_only_raise_decryption_error(blob: bytes) -> None:
    with pytest.raises(DecryptionError):
        rsa.decrypt(blob, key_a())


@settings(max_examples=100, deadline=None)
@given(body=st.binary(min_size=384 + 28, max_size=500))
def test_random_body_with_valid_prefix_raises_decryption_error(body: bytes) -> None:
    # Reaches the RSA step (the length prefix is right) so OAEP must reject it cleanly.
    with pytest.raises(DecryptionError):
        rsa.decrypt(struct.pack(">H", 384) + body, key_a())


@settings(max_examples=100, deadline=None)
@given(wrapped=st.binary(min_size=384, max_size=384))
def test_random_wraps_raise_decryption_error(wrapped: bytes) -> None:
    with pytest.raises(DecryptionError):
        rsa.unwrap_key(wrapped, key_a())
