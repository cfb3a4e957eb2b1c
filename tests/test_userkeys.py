"""User-Keys and key distributions, checked against a tenant and a join request the reference made.

The reference tenant's user (tom) holds a User-Key; his ``userkey_*`` document wraps it to his
device, and ``acl_keydistribution_default`` wraps ``default`` to the User-Key. Everything is read
from the reference's own bytes: tom's identity, his KeyBag, the directory entries.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import logging
from collections import defaultdict
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from mindood.crypto import kdf, rsa
from mindood.crypto.aead import decrypt_with_any
from mindood.crypto.fingerprint import key_version_fingerprint, rsa_key_fingerprint
from mindood.document.automerge_doc import AutomergeDoc
from mindood.errors import InvalidKeyDistributionError, KeyFormatError, UserKeyError
from mindood.identity import (
    PrivateUserId,
    UnlockedUserId,
    create_user_id,
    ensure_user_key_pair,
    unlock,
)
from mindood.keybag import KeyBag
from mindood.tenant.hashing import username_hash, username_hash_candidates
from mindood.tenant.joinrequest import JoinRequest
from mindood.tenant.keydistribution import (
    KeyDistribution,
    KeyVersionRef,
    PullRecipient,
    apply_key_distribution,
    decrypt_name_list,
    decrypt_text_field,
    key_distribution_doc_id,
    key_distribution_fields,
    key_version_refs,
    keys_for_recipient,
    parse_key_distribution,
    validate_key_distribution,
    wrap_for_devices,
    wrap_for_user_key,
)
from mindood.tenant.userkeys import (
    DeviceWrap,
    UserKeyDocument,
    add_device_wrap,
    open_own_device_wraps,
    parse_user_key_document,
    pending_user_key_payload,
    unwrap_user_key_from_device,
    user_key_document_id,
    wrap_user_key_for_device,
)
from tests.interop import reference_tenant, store_entries, vector

VECTOR = reference_tenant()
JOIN = vector("reference-join-request")
TENANT = VECTOR["tenantId"]
PASSWORD = VECTOR["userPassword"]
DIST_ID = "acl_keydistribution_default"


@pytest.fixture(scope="module")
def tom() -> PrivateUserId:
    return PrivateUserId.from_json(VECTOR["user"])


@pytest.fixture(scope="module")
def unlocked(tom: PrivateUserId) -> UnlockedUserId:
    return unlock(tom, PASSWORD)  # the stored 310000 iterations: ~0.6 s for three keys


@pytest.fixture(scope="module")
def user_key(unlocked: UnlockedUserId) -> RSAPrivateKey:
    assert unlocked.user_key is not None, unlocked.user_key_error
    return unlocked.user_key


@pytest.fixture(scope="module")
def key_bag(tom: PrivateUserId) -> KeyBag:
    # A KeyBag stores no iteration count: it opens with the reference's default only.
    with kdf.lowered_pbkdf2_iterations(kdf.DEFAULT_PBKDF2_ITERATIONS):
        return KeyBag.load(base64.b64decode(VECTOR["keyBag"]), tom, PASSWORD)


def _documents(store: str, bag: KeyBag) -> dict[str, dict[str, Any]]:
    """Each document of a vector store, decrypted with tom's keys and loaded by Automerge."""
    chunks: dict[str, list[bytes]] = defaultdict(list)
    for entry in store_entries(store):
        keys = bag.get_all(TENANT, entry.metadata.decryption_key_id)
        chunks[entry.doc_id].append(decrypt_with_any(keys, entry.encrypted_data))
    return {
        doc_id: AutomergeDoc.from_changes(parts, b"\x01" * 16).to_python()
        for doc_id, parts in chunks.items()
    }


@pytest.fixture(scope="module")
def directory_docs(key_bag: KeyBag) -> dict[str, dict[str, Any]]:
    return _documents("directory/docs", key_bag)


@pytest.fixture(scope="module")
def userkey_docs(key_bag: KeyBag) -> dict[str, dict[str, Any]]:
    return _documents("userdirectory/docs", key_bag)


def _grant_id_of(directory_docs: dict[str, dict[str, Any]], user_hash: str) -> str:
    ids = [
        doc_id
        for doc_id, data in directory_docs.items()
        if data.get("type") == "grantaccess" and data.get("username_hash") == user_hash
    ]
    assert len(ids) == 1
    return ids[0]


@pytest.fixture(scope="module")
def tom_doc(
    tom: PrivateUserId,
    directory_docs: dict[str, dict[str, Any]],
    userkey_docs: dict[str, dict[str, Any]],
) -> UserKeyDocument:
    grant_id = _grant_id_of(directory_docs, username_hash(TENANT, tom.username))
    doc = parse_user_key_document(userkey_docs[user_key_document_id(grant_id)])
    assert doc is not None
    return doc


@pytest.fixture(scope="module")
def distribution(directory_docs: dict[str, dict[str, Any]]) -> KeyDistribution:
    dist = parse_key_distribution(directory_docs[key_distribution_doc_id("default")])
    assert dist is not None
    return dist


# ---- identity -----------------------------------------------------------------------------------


def test_reference_identity_unlocks_including_its_user_key(
    tom: PrivateUserId, unlocked: UnlockedUserId, user_key: RSAPrivateKey
) -> None:
    assert tom.to_json() == VECTOR["user"]  # userKeyPair read and written back unchanged
    assert unlocked.user_key_error is None
    assert user_key.key_size == 3072
    assert rsa.rsa_public_pem(user_key) == tom.user_key_public_key  # byte-identical PEM
    probe = rsa.encrypt(b"probe", VECTOR["user"]["userKeyPair"]["publicKey"])
    assert rsa.decrypt(probe, user_key) == b"probe"


@pytest.fixture(scope="module")
def fresh() -> PrivateUserId:
    """A mindood-made identity with a User-Key (cheap test iterations, unlike the vectors)."""
    made = create_user_id("cn=fresh/o=acme", "pw", with_user_key=True)
    assert made.has_user_key
    return made


def test_an_unopenable_user_key_does_not_block_unlock(fresh: PrivateUserId) -> None:
    data = copy.deepcopy(fresh.to_json())
    data["userKeyPair"]["publicKey"] = data["userEncryptionKeyPair"]["publicKey"]  # foreign
    opened = unlock(PrivateUserId.from_json(data), "pw")
    assert opened.user_key is None and opened.user_key_pkcs8() is None
    assert opened.user_key_error is not None and "does not match" in opened.user_key_error
    assert opened.signing_key is not None and opened.encryption_key is not None
    # The device key's blob is sealed with salt "encryption": it cannot open as "userkey".
    moved = dataclasses.replace(fresh, user_key_private_key=fresh.encryption_private_key)
    wrong = unlock(moved, "pw")
    assert wrong.user_key is None and wrong.user_key_error is not None


def test_user_key_pair_needs_both_halves(tom: PrivateUserId) -> None:
    with pytest.raises(KeyFormatError):
        dataclasses.replace(tom, user_key_private_key=None)
    data = copy.deepcopy(VECTOR["user"])
    del data["userKeyPair"]["privateKey"]
    with pytest.raises(KeyFormatError):
        PrivateUserId.from_json(data)


def test_user_key_is_made_on_demand_as_in_the_reference(fresh: PrivateUserId) -> None:
    opened = unlock(fresh, "pw")
    assert opened.user_key is not None
    assert rsa.rsa_public_pem(opened.user_key) == fresh.user_key_public_key
    assert ensure_user_key_pair(fresh, "pw") is fresh  # an existing pair is kept
    old = dataclasses.replace(fresh, user_key_public_key=None, user_key_private_key=None)
    assert not old.has_user_key and "userKeyPair" not in old.to_json()
    assert unlock(old, "pw").user_key is None and unlock(old, "pw").user_key_error is None
    assert JoinRequest.for_identity(old).user_public_key is None
    made = ensure_user_key_pair(old, "pw")
    assert made.has_user_key and made.user_key_public_key != fresh.user_key_public_key
    assert PrivateUserId.from_json(made.to_json()) == made
    remade = unlock(made, "pw").user_key
    assert remade is not None and rsa.rsa_public_pem(remade) == made.user_key_public_key
    request = JoinRequest.for_identity(made, label="  laptop ")
    assert request.user_public_key == made.user_key_public_key and request.label == "laptop"


# ---- join request ---------------------------------------------------------------------------


def test_reference_join_request_carries_the_identity_and_its_user_key() -> None:
    identity = PrivateUserId.from_json(JOIN["identity"])
    request = JoinRequest.from_uri(JOIN["uri"])
    assert request.username == identity.username
    assert request.signing_public_key == identity.signing_public_key  # PEMs rebuilt byte-exact
    assert request.encryption_public_key == identity.encryption_public_key
    assert request.user_public_key == identity.user_key_public_key is not None
    opened = unlock(identity, JOIN["password"])
    assert opened.user_key is not None
    assert rsa.rsa_public_pem(opened.user_key) == request.user_public_key
    # Built from the identity, mindood writes the very URI the reference wrote.
    assert JoinRequest.for_identity(identity, label=request.label).to_uri() == JOIN["uri"]
    verbose = request.to_object()
    assert verbose["userPublicKey"] == identity.user_key_public_key
    assert JoinRequest.from_object(verbose) == request


# ---- User-Key documents ---------------------------------------------------------------------


def test_user_key_documents_sit_at_the_id_of_their_grant(
    directory_docs: dict[str, dict[str, Any]], userkey_docs: dict[str, dict[str, Any]]
) -> None:
    assert len(userkey_docs) == 2
    for doc_id, data in userkey_docs.items():
        doc = parse_user_key_document(data)
        assert doc is not None
        assert user_key_document_id(_grant_id_of(directory_docs, doc.username_hash)) == doc_id


def test_fingerprints_match_the_reference(
    tom: PrivateUserId, tom_doc: UserKeyDocument, userkey_docs: dict[str, dict[str, Any]]
) -> None:
    gen = tom_doc.current
    assert gen is not None and tom_doc.current_epoch == "1" and not tom_doc.is_pending
    assert gen.public_key == tom.user_key_public_key
    assert rsa_key_fingerprint(gen.public_key) == gen.fingerprint
    assert list(gen.device_wraps) == [rsa_key_fingerprint(tom.encryption_public_key)]
    for data in userkey_docs.values():
        doc = parse_user_key_document(data)
        assert doc is not None and doc.current is not None
        assert rsa_key_fingerprint(doc.current.public_key) == doc.current.fingerprint


def test_device_wrap_holds_the_user_keys_pkcs8(
    tom: PrivateUserId, unlocked: UnlockedUserId, tom_doc: UserKeyDocument
) -> None:
    gen = tom_doc.current
    assert gen is not None
    wrap = gen.wrap_for(rsa_key_fingerprint(tom.encryption_public_key))
    assert wrap is not None and wrap.label == "First device"
    assert wrap.approved_by_signing_public_key == tom.signing_public_key
    # The wrap is hybrid RSA of PKCS#8 DER, the same bytes the identity seals with "userkey",
    # and Python's PKCS#8 export of the key is byte-identical to the reference's.
    pkcs8 = rsa.decrypt_from_base64(wrap.wrapped_key, unlocked.encryption_key)
    assert pkcs8 == unlocked.user_key_pkcs8()
    key = unwrap_user_key_from_device(wrap.wrapped_key, unlocked.encryption_key, gen.public_key)
    assert rsa.rsa_public_pem(key) == tom.user_key_public_key
    [opened] = open_own_device_wraps(tom_doc, unlocked.encryption_key)
    assert opened.epoch == "1" and opened.fingerprint == gen.fingerprint
    assert rsa.rsa_public_pem(opened.private_key) == gen.public_key


def test_a_device_without_a_wrap_opens_nothing(
    tom_doc: UserKeyDocument, user_key: RSAPrivateKey
) -> None:
    assert open_own_device_wraps(tom_doc, user_key) == []


def test_pending_document_is_built_exactly_as_the_reference_builds_it(
    userkey_docs: dict[str, dict[str, Any]],
) -> None:
    pending = [d for d in userkey_docs.values() if not d["userKeys"]["1"]["deviceWraps"]]
    assert len(pending) == 1
    data = pending[0]
    doc = parse_user_key_document(data)
    assert doc is not None and doc.is_pending
    gen = data["userKeys"]["1"]
    built = pending_user_key_payload(data["username_hash"], gen["publicKey"], gen["createdAt"])
    assert built == {k: v for k, v in data.items() if not k.startswith("_")}


def test_device_wrap_round_trip_in_a_live_document(
    tom: PrivateUserId, unlocked: UnlockedUserId
) -> None:
    public_key = tom.user_key_public_key
    pkcs8 = unlocked.user_key_pkcs8()
    assert public_key is not None and pkcs8 is not None
    wrap = DeviceWrap(
        wrap_user_key_for_device(pkcs8, tom.encryption_public_key),
        approved_at=5,
        approved_by_signing_public_key=tom.signing_public_key,
    )
    device = rsa_key_fingerprint(tom.encryption_public_key)
    doc = AutomergeDoc.new(b"\x02" * 16)
    doc.change(lambda d: d.update(pending_user_key_payload("ab" * 32, public_key, 1)))
    results: list[bool] = []
    doc.change(lambda d: results.append(add_device_wrap(d, "1", device, wrap)))
    doc.change(lambda d: results.append(add_device_wrap(d, "1", device, wrap)))  # kept as is
    labelled = dataclasses.replace(wrap, wrapped_key="other", label="phone")
    doc.change(lambda d: results.append(add_device_wrap(d, "1", device, labelled)))
    assert results == [True, False, True]
    parsed = parse_user_key_document(doc.to_python())
    assert parsed is not None and not parsed.is_pending
    stored = parsed.generations["1"].device_wraps[device]
    assert stored == dataclasses.replace(wrap, label="phone")  # first wrap kept, label added
    [opened] = open_own_device_wraps(parsed, unlocked.encryption_key)
    assert rsa.rsa_public_pem(opened.private_key) == tom.user_key_public_key
    with pytest.raises(UserKeyError):
        add_device_wrap(doc.to_python(), "2", device, wrap)


def test_current_epoch_is_the_highest_number() -> None:
    data = {
        "form": "userdirectory",
        "type": "userkey",
        "username_hash": "h",
        "userKeys": {
            k: {"publicKey": "pem", "deviceWraps": {"d": {"wrappedKey": "w"}}}
            for k in ("2", "10", "9", "x")
        },
    }
    doc = parse_user_key_document(data)
    assert doc is not None and doc.current_epoch == "10"
    assert doc.epochs_newest_first() == ["10", "9", "2"]
    assert parse_user_key_document({**data, "type": "grantaccess"}) is None
    assert parse_user_key_document({**data, "userKeys": []}) is None


# ---- key distribution -----------------------------------------------------------------------


def test_distribution_delivers_default_to_toms_user_key(
    tom: PrivateUserId,
    key_bag: KeyBag,
    distribution: KeyDistribution,
    user_key: RSAPrivateKey,
) -> None:
    assert key_distribution_doc_id("default") == DIST_ID
    default = key_bag.versions(TENANT, "default")
    assert [r.fingerprint for r in distribution.key_versions] == [
        key_version_fingerprint(v.key) for v in default
    ]
    assert tom.user_key_public_key is not None
    mine = username_hash_candidates(TENANT, tom.username)
    expected_entry = f"{username_hash(TENANT, tom.username)}|"
    expected_entry += rsa_key_fingerprint(tom.user_key_public_key)
    assert list(distribution.entries_for(mine)) == [expected_entry]
    delivery = keys_for_recipient(distribution, mine, [user_key])
    assert delivery.addressed and not delivery.revoked and delivery.problems == ()
    assert [v.key for v in delivery.versions] == [key_bag.get(TENANT, "default")]
    assert delivery.versions[0].created_at == default[0].created_at


def test_the_device_key_alone_cannot_open_a_user_key_wrap(
    tom: PrivateUserId,
    unlocked: UnlockedUserId,
    distribution: KeyDistribution,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mine = username_hash_candidates(TENANT, tom.username)
    with caplog.at_level(logging.WARNING, "mindood.tenant.keydistribution"):
        delivery = keys_for_recipient(distribution, mine, [unlocked.encryption_key])
    assert delivery.addressed and delivery.versions == () and delivery.problems
    assert "nothing delivered" in caplog.text


def test_names_and_title_decrypt_with_default(
    key_bag: KeyBag, directory_docs: dict[str, dict[str, Any]]
) -> None:
    data = directory_docs[DIST_ID]
    keys = key_bag.get_all(TENANT, "default")
    names = decrypt_name_list(data, "pushto_users_encrypted", keys)
    assert names is not None and VECTOR["user"]["username"] in names
    assert [username_hash(TENANT, n) for n in names] == data["pushto_users_hashes"]
    assert decrypt_name_list(data, "pullfrom_users_encrypted", keys) == []
    assert isinstance(decrypt_text_field(data, "title_encrypted", keys), str)
    assert decrypt_name_list(data, "pushto_users_encrypted", [bytes(32)]) is None


def test_pullfrom_wins_and_others_get_nothing(
    tom: PrivateUserId, distribution: KeyDistribution, user_key: RSAPrivateKey
) -> None:
    mine = username_hash_candidates(TENANT, tom.username)
    revoked = dataclasses.replace(
        distribution, pullfrom_users_hashes=(username_hash(TENANT, tom.username),)
    )
    delivery = keys_for_recipient(revoked, mine, [user_key])
    assert delivery.revoked and delivery.versions == ()
    stranger = username_hash_candidates(TENANT, "CN=eve/O=interop")
    assert not keys_for_recipient(distribution, stranger, [user_key]).addressed
    protected = dataclasses.replace(distribution, key_id="$publicinfos")
    assert keys_for_recipient(protected, mine, [user_key]).versions == ()


def test_a_version_that_does_not_match_its_fingerprint_is_rejected(
    tom: PrivateUserId,
    distribution: KeyDistribution,
    user_key: RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Point the manifest entry at another key's fingerprint, keeping the wrap under it.
    [ref] = distribution.key_versions
    forged_fp = key_version_fingerprint(b"\x00" * 32)
    keys = {
        entry: {forged_fp: wraps[ref.fingerprint]}
        for entry, wraps in distribution.pushto_users_keys.items()
    }
    forged = dataclasses.replace(
        distribution,
        key_versions=(dataclasses.replace(ref, fingerprint=forged_fp),),
        pushto_users_keys=keys,
    )
    mine = username_hash_candidates(TENANT, tom.username)
    with caplog.at_level(logging.WARNING, "mindood.tenant.keydistribution"):
        delivery = keys_for_recipient(forged, mine, [user_key])
    assert delivery.versions == () and "rejected" in delivery.problems[0]
    assert "rejected" in caplog.text


def test_built_distribution_round_trips_and_matches_the_reference_fields(
    tom: PrivateUserId,
    key_bag: KeyBag,
    directory_docs: dict[str, dict[str, Any]],
    user_key: RSAPrivateKey,
    unlocked: UnlockedUserId,
) -> None:
    assert tom.user_key_public_key is not None
    versions = key_bag.versions(TENANT, "default")
    tom_hash = username_hash(TENANT, tom.username)
    fields = key_distribution_fields(
        key_id="default",
        key_versions=key_version_refs(versions),
        prepared_by_public_key=VECTOR["adminSigningPublicKey"],
        pushto=[wrap_for_user_key(tom.username, tom_hash, tom.user_key_public_key, versions)],
        pullfrom=[PullRecipient("CN=gone/O=interop", username_hash(TENANT, "CN=gone/O=interop"))],
        default_key=key_bag.get(TENANT, "default"),
        comment="why",
    )
    reference = directory_docs[DIST_ID]
    assert set(fields) - {"comment_encrypted", "comment_encrypted_key"} == {
        k for k in reference if not k.startswith("_")
    }
    assert fields["keyVersions"] == reference["keyVersions"]
    doc = AutomergeDoc.new(b"\x03" * 16)
    doc.change(lambda d: apply_key_distribution(d, fields))
    data = doc.to_python()
    dist = parse_key_distribution(data)
    assert dist is not None
    keys = key_bag.get_all(TENANT, "default")
    assert decrypt_text_field(data, "comment_encrypted", keys) == "why"
    assert decrypt_name_list(data, "pullfrom_users_encrypted", keys) == ["CN=gone/O=interop"]
    delivery = keys_for_recipient(dist, username_hash_candidates(TENANT, tom.username), [user_key])
    assert [v.key for v in delivery.versions] == [v.key for v in versions]
    # Republishing without a comment removes it; to devices, the device key opens it.
    devices = wrap_for_devices(tom.username, tom_hash, [tom.encryption_public_key], versions)
    again = key_distribution_fields(
        key_id="default",
        key_versions=key_version_refs(versions),
        prepared_by_public_key=VECTOR["adminSigningPublicKey"],
        pushto=[devices],
        pullfrom=[],
        default_key=key_bag.get(TENANT, "default"),
    )
    doc.change(lambda d: apply_key_distribution(d, again))
    data = doc.to_python()
    assert "comment_encrypted" not in data and "comment_encrypted_key" not in data
    assert decrypt_text_field(data, "title_encrypted", keys) == "default"
    dist = parse_key_distribution(data)
    assert dist is not None
    mine = username_hash_candidates(TENANT, tom.username)
    assert len(keys_for_recipient(dist, mine, [unlocked.encryption_key]).versions) == 1


@pytest.mark.parametrize(
    ("key_id", "versions", "push", "pull", "wraps"),
    [
        ("", ["a"], [], [], {}),
        ("$publicinfos", ["a"], [], [], {}),
        ("k", [], [], [], {}),
        ("k", ["a", "a"], [], [], {}),
        ("k", [""], [], [], {}),
        ("k", ["a"], ["h"], ["h"], {}),
        ("k", ["a", "b"], ["h"], [], {"h|fp": {"a": "w"}}),
        ("k", ["a"], ["h"], [], {"h|fp": {"a": "w", "b": "w"}}),
    ],
)
def test_invalid_distributions_are_refused(
    key_id: str,
    versions: list[str],
    push: list[str],
    pull: list[str],
    wraps: dict[str, dict[str, str]],
) -> None:
    refs = [KeyVersionRef(1, v) for v in versions]
    with pytest.raises(InvalidKeyDistributionError):
        validate_key_distribution(key_id, refs, push, pull, wraps)


def test_damaged_fields_are_dropped_not_fatal() -> None:
    data = {
        "type": "keydistribution",
        "keyId": "k",
        "keyVersions": [None, {"fingerprint": 5}, {"fingerprint": "f", "createdAt": 2.0}],
        "pushto_users_hashes": ["h", 3],
        "pushto_users_keys": {"h|x": {"f": "w", "g": 1}, "bad": "x"},
        "pullfrom_users_hashes": "notalist",
    }
    dist = parse_key_distribution(data)
    assert dist is not None
    assert [(r.created_at, r.fingerprint) for r in dist.key_versions] == [(2, "f")]
    assert dist.pushto_users_hashes == ("h",) and dist.pullfrom_users_hashes == ()
    assert dist.pushto_users_keys == {"h|x": {"f": "w"}}
    assert parse_key_distribution({"type": "grantaccess", "keyId": "k"}) is None
