"""Ed25519 signing: RFC 8032 known answers, verification as a bool, typed key errors."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from mindood.crypto import signing
from mindood.errors import InvalidKeyError, KeyFormatError

# RFC 8032 section 7.1, TEST 1 (empty message) and TEST 2 (one byte 0x72).
RFC8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        b"",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        b"\x72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
        "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
]


@pytest.mark.parametrize(("secret", "message", "expected"), RFC8032)
def test_rfc8032_known_answers(secret: str, message: bytes, expected: str) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))
    signature = signing.sign(key, message)
    assert signature.hex() == expected
    assert signing.verify(key.public_key(), message, signature)
    assert signing.verify(signing.signing_public_pem(key), message, signature)


def test_verify_rejects_other_data_other_key_and_bad_lengths() -> None:
    key = signing.generate_signing_keypair()
    other = signing.generate_signing_keypair()
    signature = signing.sign(key, b"challenge")
    assert signing.verify(key.public_key(), b"challenge", signature)
    assert not signing.verify(key.public_key(), b"challengE", signature)
    assert not signing.verify(other.public_key(), b"challenge", signature)
    assert not signing.verify(key.public_key(), b"challenge", signature[:-1])
    assert not signing.verify(key.public_key(), b"challenge", signature + b"\x00")
    assert not signing.verify(key.public_key(), b"challenge", b"")


def test_verify_with_bad_pem_raises_key_format_error() -> None:
    with pytest.raises(KeyFormatError):
        signing.verify("not a pem", b"data", bytes(64))


def test_wrong_key_objects_raise_invalid_key_error() -> None:
    with pytest.raises(InvalidKeyError):
        signing.sign(b"raw bytes", b"data")  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        signing.verify(object(), b"data", bytes(64))  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=100), bit=st.integers(min_value=0, max_value=511))
def test_flipped_signature_bit_fails_verification(data: bytes, bit: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    signature = bytearray(signing.sign(key, data))
    signature[bit // 8] ^= 1 << (bit % 8)
    assert not signing.verify(key.public_key(), data, bytes(signature))


@settings(max_examples=200, deadline=None)
@given(signature=st.binary(max_size=80))
def test_random_signatures_return_false(signature: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    assert signing.verify(key.public_key(), b"message", signature) is False
