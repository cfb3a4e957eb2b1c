"""User identities: creation, serialisation, unlocking and the public/private key match check."""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPrivateNumbers
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from mindood.crypto import kdf, rsa, signing
from mindood.crypto.pem import is_canonical_pem, load_ed25519_public_pem, load_rsa_public_pem
from mindood.crypto.private_keys import encrypt_private_key
from mindood.errors import (
    KeyFormatError,
    KeyMismatchError,
    MindoodError,
    WrongPasswordError,
)
from mindood.identity import (
    PrivateUserId,
    PublicUserId,
    create_user_id,
    to_public_user_id,
    unlock,
)

FAST = 1_000


@pytest.fixture(autouse=True, scope="module")
def _fast_pbkdf2() -> Iterator[None]:
    with kdf.lowered_pbkdf2_iterations(FAST):
        yield


@functools.cache
def alice() -> PrivateUserId:
    return create_user_id("cn=alice/o=acme", "alice-pw")


@functools.cache
def bob() -> PrivateUserId:
    return create_user_id("cn=bob/o=acme", "bob-pw")


def open_by_hand(blob: dict[str, Any], password: str, salt_string: str) -> bytes:
    salt = base64.b64decode(blob["salt"]) + salt_string.encode()
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, blob["iterations"], 32)
    sealed = base64.b64decode(blob["ciphertext"]) + base64.b64decode(blob["tag"])
    return AESGCM(key).decrypt(base64.b64decode(blob["iv"]), sealed, None)


def test_created_identity_has_ed25519_and_rsa3072_public_keys() -> None:
    user = alice()
    assert user.username == "cn=alice/o=acme"
    assert is_canonical_pem(user.signing_public_key)
    assert is_canonical_pem(user.encryption_public_key)
    load_ed25519_public_pem(user.signing_public_key)
    assert load_rsa_public_pem(user.encryption_public_key).key_size == 3072
    assert user.signing_private_key.iterations == FAST


def test_private_keys_are_pkcs8_sealed_with_their_salt_strings() -> None:
    data = alice().to_json()
    signing_der = open_by_hand(data["userSigningKeyPair"]["privateKey"], "alice-pw", "signing")
    signing_key = load_der_private_key(signing_der, None)
    assert isinstance(signing_key, Ed25519PrivateKey)
    assert signing.signing_public_pem(signing_key) == alice().signing_public_key
    enc_der = open_by_hand(data["userEncryptionKeyPair"]["privateKey"], "alice-pw", "encryption")
    enc_key = load_der_private_key(enc_der, None)
    assert isinstance(enc_key, RSAPrivateKey)
    assert rsa.rsa_public_pem(enc_key) == alice().encryption_public_key


def test_two_identities_differ() -> None:
    assert alice().signing_public_key != bob().signing_public_key
    assert alice().encryption_public_key != bob().encryption_public_key
    assert alice().signing_private_key.salt != bob().signing_private_key.salt


def test_public_user_id_json_uses_reference_field_names() -> None:
    public = to_public_user_id(alice())
    assert public == alice().public
    assert public.to_json() == {
        "username": "cn=alice/o=acme",
        "userSigningPublicKey": alice().signing_public_key,
        "userEncryptionPublicKey": alice().encryption_public_key,
    }
    assert PublicUserId.from_bytes(public.to_bytes()) == public
    assert PublicUserId.from_json(json.loads(public.to_bytes())) == public


def test_private_user_id_round_trips_through_json_and_bytes() -> None:
    data = alice().to_json()
    assert set(data) == {"username", "userSigningKeyPair", "userEncryptionKeyPair"}
    assert set(data["userSigningKeyPair"]) == {"publicKey", "privateKey"}
    assert PrivateUserId.from_json(json.loads(json.dumps(data))) == alice()
    restored = PrivateUserId.from_bytes(alice().to_bytes())
    assert restored == alice()
    assert unlock(restored, "alice-pw").public == alice().public


def test_optional_user_key_pair_is_validated_and_kept() -> None:
    # Newer reference identities carry a person-bound RSA "userKeyPair"; re-saving must keep it.
    data = copy.deepcopy(alice().to_json())
    assert "userKeyPair" not in data
    data["userKeyPair"] = copy.deepcopy(bob().to_json()["userEncryptionKeyPair"])
    parsed = PrivateUserId.from_json(data)
    assert parsed.user_key_public_key == bob().encryption_public_key
    assert parsed.to_json() == data
    data["userKeyPair"]["publicKey"] = alice().signing_public_key  # not an RSA key
    with pytest.raises(KeyFormatError):
        PrivateUserId.from_json(data)


def test_unicode_username_round_trips() -> None:
    public = dataclasses.replace(to_public_user_id(alice()), username="Zoë 🚀")
    assert PublicUserId.from_bytes(public.to_bytes()).username == "Zoë 🚀"


def test_unlock_gives_working_keys() -> None:
    unlocked = unlock(alice(), "alice-pw")
    assert unlocked.username == alice().username
    signature = unlocked.sign(b"challenge")
    assert signing.verify(alice().signing_public_key, b"challenge", signature)
    blob = rsa.encrypt(b"for alice", alice().encryption_public_key)
    assert unlocked.decrypt(blob) == b"for alice"
    wrapped = rsa.wrap_key(b"k" * 32, alice().encryption_public_key)
    assert unlocked.unwrap_key(wrapped) == b"k" * 32
    assert "PRIVATE" not in repr(unlocked)


def test_unlock_with_wrong_password_raises() -> None:
    with pytest.raises(WrongPasswordError):
        unlock(alice(), "bob-pw")


def test_unlock_rejects_a_swapped_public_key() -> None:
    # A tampered file claiming bob's public keys with alice's sealed private keys must not unlock:
    # otherwise alice would sign under bob's key id.
    fake_signing = dataclasses.replace(alice(), signing_public_key=bob().signing_public_key)
    with pytest.raises(KeyMismatchError):
        unlock(fake_signing, "alice-pw")
    fake_enc = dataclasses.replace(alice(), encryption_public_key=bob().encryption_public_key)
    with pytest.raises(KeyMismatchError):
        unlock(fake_enc, "alice-pw")


def test_keys_swapped_between_slots_do_not_open() -> None:
    # The salt strings bind each sealed key to its slot.
    swapped = dataclasses.replace(
        alice(),
        signing_private_key=alice().encryption_private_key,
        encryption_private_key=alice().signing_private_key,
    )
    with pytest.raises(WrongPasswordError):
        unlock(swapped, "alice-pw")


def test_wrong_key_type_in_slot_raises_key_format_error() -> None:
    rsa_der = rsa.generate_rsa_keypair().private_bytes(
        Encoding.DER, PrivateFormat.PKCS8, NoEncryption()
    )
    bad = dataclasses.replace(
        alice(), signing_private_key=encrypt_private_key(rsa_der, "alice-pw", "signing")
    )
    with pytest.raises(KeyFormatError):
        unlock(bad, "alice-pw")
    garbage = dataclasses.replace(
        alice(), signing_private_key=encrypt_private_key(b"not pkcs8", "alice-pw", "signing")
    )
    with pytest.raises(KeyFormatError):
        unlock(garbage, "alice-pw")


def _broken_rsa_pkcs8(field: str) -> bytes:
    """Alice's own RSA key (same n and e, so the PEM check passes) with one value corrupted.

    (p and q cannot be corrupted this way: ``RSAPrivateNumbers`` itself refuses p*q != n.)
    """
    numbers = unlock(alice(), "alice-pw").encryption_key.private_numbers()
    values = {
        "p": numbers.p,
        "q": numbers.q,
        "d": numbers.d,
        "dmp1": numbers.dmp1,
        "dmq1": numbers.dmq1,
        "iqmp": numbers.iqmp,
    }
    values[field] += 2
    broken = RSAPrivateNumbers(**values, public_numbers=numbers.public_numbers).private_key(
        unsafe_skip_rsa_key_validation=True
    )
    return broken.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())


@pytest.mark.parametrize("field", ["d", "dmp1", "dmq1", "iqmp"])
def test_a_sealed_rsa_key_with_inconsistent_values_does_not_unlock(field: str) -> None:
    # Sealed keys skip OpenSSL's primality tests (0.2 s each); the arithmetic checks that
    # replace them must still refuse a key whose private values do not fit its modulus.
    pkcs8 = _broken_rsa_pkcs8(field)
    bad = dataclasses.replace(
        alice(), encryption_private_key=encrypt_private_key(pkcs8, "alice-pw", "encryption")
    )
    with pytest.raises(KeyFormatError, match="consistent RSA key"):
        unlock(bad, "alice-pw")
    public = rsa.rsa_public_pem(unlock(alice(), "alice-pw").encryption_key)
    bad_user_key = dataclasses.replace(
        alice(),
        user_key_public_key=public,
        user_key_private_key=encrypt_private_key(pkcs8, "alice-pw", "userkey"),
    )
    opened = unlock(bad_user_key, "alice-pw")
    assert opened.user_key is None and opened.user_key_error is not None
    assert "consistent RSA key" in opened.user_key_error


def _set(path: tuple[str, ...], value: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        for part in path[:-1]:
            data = data[part]
        if value is _DELETE:
            del data[path[-1]]
        else:
            data[path[-1]] = value

    return mutate


_DELETE = object()


@pytest.mark.parametrize(
    "mutate",
    [
        _set(("username",), _DELETE),
        _set(("username",), ""),
        _set(("username",), 7),
        _set(("userSigningKeyPair",), "x"),
        _set(("userSigningKeyPair", "publicKey"), "garbage"),
        _set(("userSigningKeyPair", "publicKey"), _DELETE),
        _set(("userEncryptionKeyPair", "privateKey"), None),
        _set(("userEncryptionKeyPair", "privateKey", "iv"), "AAAA"),
    ],
)
def test_private_from_json_rejects_malformed(mutate: Any) -> None:
    data = copy.deepcopy(alice().to_json())
    mutate(data)
    with pytest.raises(KeyFormatError):
        PrivateUserId.from_json(data)


def test_from_json_rejects_keys_of_the_wrong_type() -> None:
    data = copy.deepcopy(alice().to_json())
    data["userSigningKeyPair"]["publicKey"] = alice().encryption_public_key
    with pytest.raises(KeyFormatError):
        PrivateUserId.from_json(data)
    public = alice().public.to_json()
    public["userEncryptionPublicKey"] = alice().signing_public_key
    with pytest.raises(KeyFormatError):
        PublicUserId.from_json(public)


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b"null", b'{"username": NaN}', b"\xff"])
def test_from_bytes_rejects_non_objects(raw: bytes) -> None:
    with pytest.raises(KeyFormatError):
        PublicUserId.from_bytes(raw)
    with pytest.raises(KeyFormatError):
        PrivateUserId.from_bytes(raw)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(value=JSON)
def test_random_json_only_raises_key_format_error(value: Any) -> None:
    with pytest.raises(KeyFormatError):
        PublicUserId.from_json(value)
    with pytest.raises(KeyFormatError):
        PrivateUserId.from_json(value)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=200))
def test_random_bytes_only_raise_key_format_error(raw: bytes) -> None:
    with pytest.raises(KeyFormatError):
        PrivateUserId.from_bytes(raw)


PATHS = [
    ("username",),
    ("userSigningKeyPair",),
    ("userSigningKeyPair", "publicKey"),
    ("userSigningKeyPair", "privateKey"),
    ("userSigningKeyPair", "privateKey", "salt"),
    ("userEncryptionKeyPair", "publicKey"),
    ("userEncryptionKeyPair", "privateKey", "tag"),
    ("userEncryptionKeyPair", "privateKey", "iterations"),
]


@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from(PATHS), value=JSON)
def test_mutated_identity_parses_or_raises_typed_error(path: tuple[str, ...], value: Any) -> None:
    data = copy.deepcopy(alice().to_json())
    _set(path, value)(data)
    try:
        parsed = PrivateUserId.from_json(data)
    except KeyFormatError:
        return
    # Whatever was accepted must serialise again and fail only with typed errors when used.
    assert PrivateUserId.from_json(parsed.to_json()) == parsed
    if path[-1] != "iterations":
        with pytest.raises(MindoodError):
            unlock(parsed, "wrong-pw")
