"""PEM text must be byte-identical to the reference's writer (reference-formats §1.1)."""

from __future__ import annotations

import base64
import functools

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from mindood.crypto import pem
from mindood.crypto.rsa import generate_rsa_keypair
from mindood.errors import KeyFormatError

# RFC 8032 section 7.1, test 1: public key d75a98...511a, as SPKI PEM.
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
    "-----END PUBLIC KEY-----"
)


@functools.cache
def rsa_key() -> RSAPrivateKey:
    return generate_rsa_keypair()


def test_ed25519_pem_known_answer() -> None:
    key = Ed25519PublicKey.from_public_bytes(RFC8032_PUBLIC)
    assert pem.public_key_to_pem(key) == RFC8032_PEM
    parsed = pem.load_ed25519_public_pem(RFC8032_PEM)
    assert parsed.public_bytes(Encoding.Raw, PublicFormat.Raw) == RFC8032_PUBLIC


def test_rsa_pem_shape_is_64_char_lines_without_trailing_newline() -> None:
    public = rsa_key().public_key()
    text = pem.public_key_to_pem(public)
    lines = text.split("\n")
    assert lines[0] == "-----BEGIN PUBLIC KEY-----"
    assert lines[-1] == "-----END PUBLIC KEY-----"
    assert not text.endswith("\n")
    body = lines[1:-1]
    assert all(len(line) == 64 for line in body[:-1])
    assert 0 < len(body[-1]) <= 64
    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert base64.b64decode("".join(body)) == der
    # RSA-3072 SPKI is 422 bytes: 564 base64 chars = 8 full lines + 52.
    assert len(der) == 422
    assert [len(line) for line in body] == [64] * 8 + [52]


def test_pem_round_trip_is_byte_exact() -> None:
    for public in (rsa_key().public_key(), Ed25519PrivateKey.generate().public_key()):
        text = pem.public_key_to_pem(public)
        assert pem.public_key_to_pem(pem.load_public_key_pem(text)) == text
        assert pem.is_canonical_pem(text)


def test_parser_tolerates_whitespace_but_canonical_check_does_not() -> None:
    messy = "\r\n  " + RFC8032_PEM.replace("\n", "\r\n").replace("MCow", "MC ow") + "\n\n"
    key = pem.load_ed25519_public_pem(messy)
    assert pem.public_key_to_pem(key) == RFC8032_PEM
    assert not pem.is_canonical_pem(messy)
    assert pem.normalize_pem(messy) == pem.normalize_pem(RFC8032_PEM)
    assert " " not in pem.normalize_pem(messy) and "\n" not in pem.normalize_pem(messy)


def test_parser_is_strict_about_key_type() -> None:
    rsa_pem = pem.public_key_to_pem(rsa_key().public_key())
    with pytest.raises(KeyFormatError):
        pem.load_ed25519_public_pem(rsa_pem)
    with pytest.raises(KeyFormatError):
        pem.load_rsa_public_pem(RFC8032_PEM)
    assert isinstance(pem.load_rsa_public_pem(rsa_pem), RSAPublicKey)


def test_parser_rejects_other_pem_labels_and_small_rsa() -> None:
    pkcs1 = rsa_key().public_key().public_bytes(Encoding.PEM, PublicFormat.PKCS1).decode()
    with pytest.raises(KeyFormatError):
        pem.load_public_key_pem(pkcs1)  # "RSA PUBLIC KEY" label
    private = (
        Ed25519PrivateKey.generate()
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
    )
    with pytest.raises(KeyFormatError):
        pem.load_public_key_pem(private)
    # A syntactically valid SPKI of a type we do not use (X25519) is refused too.
    x25519_spki = bytes.fromhex("302a300506032b656e032100") + bytes(32)
    with pytest.raises(KeyFormatError):
        pem.load_public_key_pem(pem.spki_der_to_pem(x25519_spki))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----",
        "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----",
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----",
        "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        RFC8032_PEM[:-5],
    ],
)
def test_malformed_pem_raises_key_format_error(bad: str) -> None:
    with pytest.raises(KeyFormatError):
        pem.load_public_key_pem(bad)


@pytest.mark.parametrize("bad", [None, 42, b"bytes", ["list"]])
def test_non_string_pem_raises_key_format_error(bad: object) -> None:
    with pytest.raises(KeyFormatError):
        pem.load_public_key_pem(bad)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_text_only_raises_typed_errors(text: str) -> None:
    with pytest.raises(KeyFormatError):
        pem.load_public_key_pem(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_random_der_in_valid_armor_only_raises_typed_errors(der: bytes) -> None:
    try:
        key = pem.load_public_key_pem(pem.spki_der_to_pem(der))
    except KeyFormatError:
        return
    assert isinstance(key, Ed25519PublicKey | RSAPublicKey)
