"""Password-encrypted keys, the reference's ``EncryptedPrivateKey`` (reference-formats §1.3)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from mindood.crypto import kdf
from mindood.crypto.private_keys import (
    EncryptedPrivateKey,
    decrypt_private_key,
    encrypt_private_key,
)
from mindood.errors import KeyFormatError, MindoodError, WrongPasswordError

FAST = 1_000
PKCS8 = Ed25519PrivateKey.from_private_bytes(bytes(range(32))).private_bytes(
    Encoding.DER, PrivateFormat.PKCS8, NoEncryption()
)


@pytest.fixture(autouse=True, scope="module")
def _fast_pbkdf2() -> Iterator[None]:
    with kdf.lowered_pbkdf2_iterations(FAST):
        yield


@contextmanager
def real_pbkdf2() -> Iterator[None]:
    """Turn the test switch off (production policy) for a block, then restore it."""
    previous = kdf.get_test_pbkdf2_iterations()
    kdf.set_test_pbkdf2_iterations(None)
    try:
        yield
    finally:
        kdf.set_test_pbkdf2_iterations(previous)


def by_hand(blob: dict[str, Any], password: str, salt_string: str) -> bytes:
    """Decrypt the JSON exactly as §1.3 describes, with hashlib and AESGCM only."""
    salt = base64.b64decode(blob["salt"]) + salt_string.encode()
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, blob["iterations"], 32)
    ciphertext = base64.b64decode(blob["ciphertext"]) + base64.b64decode(blob["tag"])
    return AESGCM(key).decrypt(base64.b64decode(blob["iv"]), ciphertext, None)


def test_blob_fields_and_manual_decryption() -> None:
    blob = encrypt_private_key(PKCS8, "pw", "signing", created_at=1_700_000_000_000).to_json()
    assert list(blob) == ["ciphertext", "iv", "tag", "salt", "iterations", "createdAt"]
    assert len(base64.b64decode(blob["iv"])) == 12
    assert len(base64.b64decode(blob["tag"])) == 16
    assert len(base64.b64decode(blob["salt"])) == 16
    assert len(base64.b64decode(blob["ciphertext"])) == len(PKCS8)
    assert blob["iterations"] == FAST
    assert blob["createdAt"] == 1_700_000_000_000
    assert by_hand(blob, "pw", "signing") == PKCS8
    # Survives a trip through JSON text, as it would through a file.
    assert decrypt_private_key(json.loads(json.dumps(blob)), "pw", "signing") == PKCS8


def test_real_iteration_count_known_answer() -> None:
    with real_pbkdf2():
        blob = encrypt_private_key(PKCS8, "pässword", "encryption").to_json()
    assert blob["iterations"] == 310_000
    assert "createdAt" not in blob
    assert by_hand(blob, "pässword", "encryption") == PKCS8


def test_fresh_salt_and_iv_each_time() -> None:
    first = encrypt_private_key(PKCS8, "pw", "signing")
    second = encrypt_private_key(PKCS8, "pw", "signing")
    assert first.salt != second.salt and first.iv != second.iv
    assert first.ciphertext != second.ciphertext


def test_wrong_password_or_salt_string_raises_wrong_password() -> None:
    blob = encrypt_private_key(PKCS8, "right", "signing")
    with pytest.raises(WrongPasswordError, match="wrong password"):
        decrypt_private_key(blob, "wrong", "signing")
    with pytest.raises(WrongPasswordError):
        decrypt_private_key(blob, "right", "encryption")


@pytest.mark.parametrize("field", ["ciphertext", "iv", "tag", "salt"])
def test_flipped_bit_in_any_field_raises_wrong_password(field: str) -> None:
    blob = encrypt_private_key(PKCS8, "pw", "signing").to_json()
    raw = bytearray(base64.b64decode(blob[field]))
    raw[0] ^= 0x01
    blob[field] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(WrongPasswordError):
        decrypt_private_key(blob, "pw", "signing")


def test_stored_count_below_floor_is_raised_without_test_switch() -> None:
    # A blob claiming 1,000 iterations is decrypted with 60,000 in production: the tampered
    # (or too cheap) count is not honoured, so the key does not open.
    blob = encrypt_private_key(PKCS8, "pw", "signing")
    assert blob.iterations == FAST
    with real_pbkdf2(), pytest.raises(WrongPasswordError):
        decrypt_private_key(blob, "pw", "signing")
    assert decrypt_private_key(blob, "pw", "signing") == PKCS8


def test_float_iteration_count_is_floored() -> None:
    blob = encrypt_private_key(PKCS8, "pw", "signing").to_json()
    blob["iterations"] = FAST + 0.75
    assert decrypt_private_key(blob, "pw", "signing") == PKCS8


def _valid_json() -> dict[str, Any]:
    return encrypt_private_key(PKCS8, "pw", "signing").to_json()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.pop("ciphertext"),
        lambda b: b.pop("tag"),
        lambda b: b.update(iv=base64.b64encode(bytes(11)).decode()),
        lambda b: b.update(tag=base64.b64encode(bytes(15)).decode()),
        lambda b: b.update(salt=""),
        lambda b: b.update(ciphertext="not base64!"),
        lambda b: b.update(ciphertext=123),
        lambda b: b.update(iterations="310000"),
        lambda b: b.update(iterations=True),
        lambda b: b.update(iterations=10**12),
        lambda b: b.update(createdAt="yesterday"),
        lambda b: b.update(createdAt=1.5),
    ],
)
def test_malformed_blob_raises_key_format_error(mutate: Any) -> None:
    blob = _valid_json()
    mutate(blob)
    with pytest.raises(KeyFormatError):
        decrypt_private_key(blob, "pw", "signing")


@pytest.mark.parametrize("bad", [None, [], "string", 42])
def test_non_object_raises_key_format_error(bad: Any) -> None:
    with pytest.raises(KeyFormatError):
        decrypt_private_key(bad, "pw", "signing")


def test_unknown_fields_are_ignored() -> None:
    blob = _valid_json()
    blob["futureField"] = {"x": 1}
    assert decrypt_private_key(blob, "pw", "signing") == PKCS8


def test_dataclass_round_trip() -> None:
    blob = encrypt_private_key(PKCS8, "pw", "signing", created_at=5)
    assert EncryptedPrivateKey.from_json(blob.to_json()) == blob


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
B64 = st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "ciphertext": B64 | JSON_VALUES,
        "iv": B64 | JSON_VALUES,
        "tag": B64 | JSON_VALUES,
        "salt": B64 | JSON_VALUES,
        # Never a count between 2,000 and the cap: a valid-looking blob would then run a slow
        # PBKDF2 (what the cap guards against is tested separately).
        "iterations": st.integers(min_value=-5, max_value=2_000)
        | st.floats(max_value=2_000, allow_nan=False, allow_infinity=False)
        | st.floats(min_value=1e8, allow_infinity=False)
        | st.none()
        | st.booleans()
        | st.text(max_size=5),
        "createdAt": st.integers() | JSON_VALUES,
    },
)


@settings(max_examples=200, deadline=None)
@given(blob=FIELDS | JSON_VALUES, password=st.text(max_size=10))
def test_random_dicts_only_raise_typed_errors(blob: Any, password: str) -> None:
    with pytest.raises(MindoodError):
        decrypt_private_key(blob, password, "signing")
