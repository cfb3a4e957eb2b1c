"""KeyBag: versioned symmetric keys, export/import and the sealed file (reference-formats §1.4)."""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from mindood.crypto import kdf
from mindood.crypto.aead import decrypt_payload, encrypt_payload
from mindood.errors import (
    KeyBagError,
    KeyBagFormatError,
    KeyFormatError,
    KeyNotFoundError,
    MindoodError,
    WrongPasswordError,
)
from mindood.identity import PrivateUserId, create_user_id
from mindood.keybag import KeyBag, derive_keybag_wrapping_key

FAST = 1_000
T = "tenant1"
K1, K2, K3 = (bytes([n]) * 32 for n in (1, 2, 3))


@pytest.fixture(autouse=True, scope="module")
def _fast_pbkdf2() -> Iterator[None]:
    with kdf.lowered_pbkdf2_iterations(FAST):
        yield


@functools.cache
def user() -> PrivateUserId:
    return create_user_id("cn=carol/o=acme", "carol-pw")


class FakeClock:
    """Milliseconds that advance by one on every read."""

    def __init__(self, start: int = 1_000) -> None:
        self._ticks = itertools.count(start)

    def __call__(self) -> int:
        return next(self._ticks)


def new_bag(clock: FakeClock | None = None) -> KeyBag:
    return KeyBag.for_user(user(), "carol-pw", clock=clock or FakeClock())


@functools.cache
def wrapping_key_by_hand(password: str) -> bytes:
    salt = user().encryption_private_key.salt + b"key-bag-encryption"
    return hashlib.pbkdf2_hmac(
        "sha256", (password + ":key-bag-encryption").encode(), salt, FAST, 32
    )


def seal_by_hand(plaintext: bytes, password: str = "carol-pw") -> bytes:
    iv = os.urandom(12)
    sealed = AESGCM(wrapping_key_by_hand(password)).encrypt(iv, plaintext, None)
    return iv + sealed[-16:] + sealed[:-16]


def open_by_hand(blob: bytes, password: str = "carol-pw") -> Any:
    plain = AESGCM(wrapping_key_by_hand(password)).decrypt(blob[:12], blob[28:] + blob[12:28], None)
    return json.loads(plain)


def test_versions_are_ordered_newest_first_by_created_at() -> None:
    bag = new_bag()
    bag.set(T, "default", K1, created_at=100)
    bag.set(T, "default", K2, created_at=300)
    bag.set(T, "default", K3)  # no createdAt counts as 0: oldest
    assert bag.get(T, "default") == K2
    assert bag.get_all(T, "default") == [K2, K1, K3]


def test_tie_on_created_at_prefers_the_version_added_last() -> None:
    bag = new_bag()
    bag.set(T, "k", K1, created_at=5)
    bag.set(T, "k", K2, created_at=5)
    assert bag.get_all(T, "k") == [K2, K1]


def test_identical_bytes_are_stored_once() -> None:
    bag = new_bag()
    assert bag.set(T, "k", K1, created_at=1)
    assert not bag.set(T, "k", K1, created_at=999)
    assert [(v.key, v.created_at) for v in bag.versions(T, "k")] == [(K1, 1)]
    # The same bytes under another key id or tenant are a different key.
    assert bag.set(T, "other", K1)
    assert bag.set("tenant2", "k", K1)


def test_added_at_is_stamped_locally_on_write() -> None:
    bag = new_bag(FakeClock(start=5_000))
    bag.set(T, "k", K1, created_at=1)
    bag.set(T, "k", K2, created_at=2)
    assert [v.added_at for v in bag.versions(T, "k")] == [5_001, 5_000]


def test_missing_keys_and_listing() -> None:
    bag = new_bag()
    assert not bag.has(T, "default")
    with pytest.raises(KeyNotFoundError):
        bag.get(T, "default")
    assert bag.get_all(T, "default") == []
    bag.set(T, "zeta", K1)
    bag.set(T, "alpha", K2)
    bag.set("t2", "default", K3)
    assert bag.has(T, "zeta")
    assert bag.list_keys(T) == ["alpha", "zeta"]
    assert bag.list_keys("t2") == ["default"]
    assert bag.delete(T, "zeta") and not bag.delete(T, "zeta")
    assert not bag.has(T, "zeta")


@pytest.mark.parametrize(("tenant", "key_id"), [("", "k"), ("a:b", "k"), (T, "")])
def test_invalid_ids_raise_keybag_error(tenant: str, key_id: str) -> None:
    with pytest.raises(KeyBagError):
        new_bag().set(tenant, key_id, K1)


def test_create_and_store_symmetric_key_rotates() -> None:
    bag = new_bag()
    first = bag.create_and_store_symmetric_key(T, "default")
    second = bag.create_and_store_symmetric_key(T, "default")
    assert len(first) == len(second) == 32 and first != second
    assert bag.get(T, "default") == second
    assert bag.get_all(T, "default") == [second, first]
    assert decrypt_payload(bag.get(T, "default"), encrypt_payload(second, b"x")) == b"x"


def test_export_uses_doc_v2_salt_and_imports_elsewhere() -> None:
    bag = new_bag()
    bag.set(T, "secret", K1, created_at=42)
    bag.set(T, "secret", K2, created_at=7)
    exported = bag.encrypt_and_export_key(T, "secret", "share-pw").to_json()
    assert exported["createdAt"] == 42
    salt = base64.b64decode(exported["salt"]) + b"doc:v2:tenant1:secret"
    key = hashlib.pbkdf2_hmac("sha256", b"share-pw", salt, exported["iterations"], 32)
    sealed = base64.b64decode(exported["ciphertext"]) + base64.b64decode(exported["tag"])
    assert AESGCM(key).decrypt(base64.b64decode(exported["iv"]), sealed, None) == K1

    other = new_bag()
    assert other.decrypt_and_import_key(T, "secret", exported, "share-pw") == K1
    assert [(v.key, v.created_at) for v in other.versions(T, "secret")] == [(K1, 42)]
    with pytest.raises(WrongPasswordError):
        other.decrypt_and_import_key(T, "secret", exported, "nope")
    with pytest.raises(WrongPasswordError):  # bound to tenant and key id by the salt
        other.decrypt_and_import_key(T, "other-id", exported, "share-pw")
    with pytest.raises(KeyNotFoundError):
        bag.encrypt_and_export_key(T, "absent", "pw")


def test_saved_blob_is_iv_tag_ciphertext_over_json() -> None:
    bag = new_bag(FakeClock(start=10))
    bag.set(T, "default", K1, created_at=100)
    bag.set(T, "default", K2)
    blob = bag.save()
    iv, tag, ciphertext = blob[:12], blob[12:28], blob[28:]
    # Decrypted by hand: the tag sits BEFORE the ciphertext, unlike payload blobs.
    plain = AESGCM(wrapping_key_by_hand("carol-pw")).decrypt(iv, ciphertext + tag, None)
    assert json.loads(plain) == [
        [
            "doc:tenant1:default",
            [
                {"key": base64.b64encode(K1).decode(), "createdAt": 100, "addedAt": 10},
                {"key": base64.b64encode(K2).decode(), "addedAt": 11},
            ],
        ]
    ]
    assert b" " not in plain  # compact, as JSON.stringify writes it
    assert derive_keybag_wrapping_key(user(), "carol-pw") == wrapping_key_by_hand("carol-pw")


def test_save_load_round_trip() -> None:
    bag = new_bag()
    bag.set(T, "default", K1, created_at=1)
    bag.set(T, "default", K2, created_at=2)
    bag.set("t2", "named", K3)
    blob = bag.save()
    assert blob != bag.save()  # fresh IV each time
    loaded = KeyBag.load(blob, user(), "carol-pw")
    assert loaded.get_all(T, "default") == [K2, K1]
    assert loaded.versions(T, "default") == bag.versions(T, "default")
    assert loaded.get("t2", "named") == K3
    assert loaded.get_doc_key_fingerprint(T) == bag.get_doc_key_fingerprint(T)


def test_load_with_wrong_password_raises_clear_error() -> None:
    blob = new_bag().save()
    with pytest.raises(WrongPasswordError, match="wrong password"):
        KeyBag.load(blob, user(), "not-carol")


def test_load_rejects_short_and_tampered_blobs() -> None:
    blob = new_bag().save()
    assert len(blob) == 28 + len(b"[]")
    for length in (0, 12, 27):
        with pytest.raises(KeyBagFormatError):
            KeyBag.load(blob[:length], user(), "carol-pw")
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    with pytest.raises(WrongPasswordError):
        KeyBag.load(bytes(tampered), user(), "carol-pw")


def test_legacy_tenant_ids_are_normalised_and_duplicates_collapse() -> None:
    k1 = base64.b64encode(K1).decode()
    k2 = base64.b64encode(K2).decode()
    contents = [
        ["tenant:acme", [{"key": k1, "createdAt": 5, "addedAt": 50}]],
        [
            "doc:acme:default",
            [{"key": k1, "createdAt": 9, "addedAt": 70}, {"key": k2, "createdAt": 7}],
        ],
        ["doc:acme:named", [{"key": k2}]],
    ]
    bag = KeyBag.load(seal_by_hand(json.dumps(contents).encode()), user(), "carol-pw")
    versions = bag.versions("acme", "default")
    assert [(v.key, v.created_at, v.added_at) for v in versions] == [(K1, 9, 50), (K2, 7, None)]
    assert bag.list_scoped_key_ids() == ["doc:acme:default", "doc:acme:named"]


def test_doc_key_fingerprint() -> None:
    bag = new_bag()
    assert bag.get_doc_key_fingerprint(T) == "v1:"
    bag.set(T, "zeta", K1)
    bag.set(T, "$publicinfos", K2)
    bag.set(T, "default", K3)
    bag.set("tenant10", "default", K3)  # another tenant, even with a shared prefix, is excluded
    assert bag.get_doc_key_fingerprint(T) == (
        "v1:doc:tenant1:$publicinfos|doc:tenant1:default|doc:tenant1:zeta"
    )


@pytest.mark.parametrize(
    "contents",
    [
        b"{}",
        b"not json",
        b"[1]",
        b'[["doc:t:k"]]',
        b'[["doc:t:k", {}]]',
        b"[[5, []]]",
        b'[["", []]]',
        b'[["doc:t:k", [5]]]',
        b'[["doc:t:k", [{"key": "!!"}]]]',
        b'[["doc:t:k", [{"key": ""}]]]',
        b'[["doc:t:k", [{"createdAt": 1}]]]',
        b'[["doc:t:k", [{"key": "AQ==", "createdAt": "x"}]]]',
        b'[["doc:t:k", [{"key": "AQ==", "addedAt": 1.5}]]]',
        b"\xff\xfe",
    ],
)
def test_malformed_contents_raise_keybag_format_error(contents: bytes) -> None:
    with pytest.raises(KeyBagFormatError) as info:
        KeyBag.load(seal_by_hand(contents), user(), "carol-pw")
    assert isinstance(info.value, KeyFormatError)


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=200))
def test_random_blobs_only_raise_typed_errors(blob: bytes) -> None:
    with pytest.raises(MindoodError):
        KeyBag.load_with_wrapping_key(blob, wrapping_key_by_hand("carol-pw"))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
VERSION = st.fixed_dictionaries(
    {},
    optional={
        "key": st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()) | JSON,
        "createdAt": JSON,
        "addedAt": JSON,
    },
)
CONTENTS = st.lists(st.tuples(st.text(max_size=20) | JSON, st.lists(VERSION | JSON, max_size=3)))


@settings(max_examples=200, deadline=None)
@given(contents=CONTENTS | JSON)
def test_random_sealed_json_loads_or_raises_typed_error(contents: Any) -> None:
    key = wrapping_key_by_hand("carol-pw")
    blob = seal_by_hand(json.dumps(contents).encode())
    try:
        bag = KeyBag.load_with_wrapping_key(blob, key)
    except KeyBagFormatError:
        return
    # Whatever loads must save and load back to the same content.
    again = KeyBag.load_with_wrapping_key(bag.save(), key)
    assert open_by_hand(again.save()) == open_by_hand(bag.save())
