"""Directory logic: grants, revocation, groups, settings and the trust decisions built on them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from mindood.crypto import decrypt_with_any, encrypt_payload
from mindood.crypto._codec import b64decode, b64encode
from mindood.crypto.signing import generate_signing_keypair, signing_public_pem
from mindood.db import signer_for
from mindood.errors import (
    GroupNotFoundError,
    InvalidNameError,
    KeyNotFoundError,
    NotAdminError,
    UserNotFoundError,
)
from mindood.identity import PublicUserId, unlock
from mindood.keybag import KeyBag
from mindood.storefactory import InMemoryStoreFactory
from mindood.tenant import Tenant, grants, groups
from mindood.tenant.directory_index import DirectoryIndex, parse_record
from mindood.tenant.hashing import username_hash, username_hash_v1
from mindood.tenant.trust import DirectoryTrust, KeyStates, Verdict
from store.entry import EntryMetadata, EntryType
from tests.tenant_helpers import (
    TENANT_ID,
    admin_creds,
    fast_kdf,
    identity,
    new_tenant,
    password,
    username,
)

_fast = pytest.fixture(autouse=True, scope="module")(fast_kdf)


def _pem() -> str:
    return signing_public_pem(generate_signing_keypair())


def _user(name: str, signing: str | None = None) -> PublicUserId:
    base = identity("bob").public
    return PublicUserId(name, signing or _pem(), base.encryption_public_key)


def _meta(author: str, created_at: int) -> EntryMetadata:
    return EntryMetadata(
        entry_type=EntryType.DOC_CHANGE,
        id="x",
        content_hash="0" * 64,
        doc_id="doc",
        dependency_ids=(),
        created_at=created_at,
        created_by_public_key=author,
        decryption_key_id="default",
        original_size=0,
        encrypted_size=0,
    )


# -- grants (pure) ------------------------------------------------------------------------------
def test_new_grant_has_reference_fields_and_no_clear_username() -> None:
    user = _user("CN=Bob/O=Acme")
    data = grants.new_grant_data("acme", user, "laptop", "ENC", 1000)
    assert data["form"] == "useroperation" and data["type"] == "grantaccess"
    assert data["username_hash"] == username_hash("acme", user.username)
    assert data["username_hash_v"] == 3
    assert data["user_details_encrypted"] == "ENC"
    assert data["user_details_encrypted_key"] == "default"
    assert data["userKeyPairs"] == [
        {
            "signingPublicKey": user.signing_public_key,
            "encryptionPublicKey": user.encryption_public_key,
            "label": "laptop",
            "addedAt": 1000,
        }
    ]
    assert data["revokedUserKeyPairs"] == []
    assert data["userSigningPublicKeys"] == [user.signing_public_key]
    assert data["userSigningPublicKey"] == user.signing_public_key
    # The clear name is nowhere (keys are random base64, so "bob" alone may appear in them).
    assert user.username.lower() not in json.dumps(data).lower()


def test_second_device_is_appended_and_duplicates_ignored() -> None:
    first, second = _user("bob"), _user("bob")
    data = grants.new_grant_data("acme", first, "laptop", "ENC", 1)
    pair = grants.key_pair_json(second, "phone", 2)
    assert grants.add_key_pair(data, pair)
    assert not grants.add_key_pair(data, pair)
    grant = grants.parse_grant("g", data)
    assert grant is not None
    assert [p.label for p in grant.active] == ["laptop", "phone"]
    assert data["userSigningPublicKeys"] == [first.signing_public_key, second.signing_public_key]


def test_revoke_moves_pairs_with_timestamp() -> None:
    first, second = _user("bob"), _user("bob")
    data = grants.new_grant_data("acme", first, "laptop", "ENC", 1)
    grants.add_key_pair(data, grants.key_pair_json(second, "phone", 2))
    assert grants.revoke_key_pairs(data, 50, [second.signing_public_key]) == 1
    grant = grants.parse_grant("g", data)
    assert grant is not None
    assert [p.signing_public_key for p in grant.active] == [first.signing_public_key]
    assert [(p.signing_public_key, p.revoked_at) for p in grant.revoked] == [
        (second.signing_public_key, 50)
    ]
    assert grants.revoke_key_pairs(data, 60) == 1
    assert grants.revoke_key_pairs(data, 70) == 0
    assert data["userKeyPairs"] == [] and data["userSigningPublicKey"] is None
    # Re-granting a revoked key makes it active again.
    assert grants.add_key_pair(data, grants.key_pair_json(first, "laptop", 80))
    grant = grants.parse_grant("g", data)
    assert grant is not None and len(grant.active) == 1 and len(grant.revoked) == 1


def test_read_precedence_and_authoritative_empty_list() -> None:
    a, b = _pem(), _pem()
    assert [
        p.signing_public_key for p in grants.read_active_pairs({"userSigningPublicKey": a})
    ] == [a]
    parallel = {"userSigningPublicKeys": [a, b], "userSigningPublicKey": a}
    assert len(grants.read_active_pairs(parallel)) == 2
    assert grants.read_active_pairs({"userKeyPairs": [], "userSigningPublicKeys": [a]}) == []
    legacy: dict[str, Any] = {"userSigningPublicKeys": [a]}
    assert grants.add_key_pair(legacy, {"signingPublicKey": b})
    assert [p["signingPublicKey"] for p in legacy["userKeyPairs"]] == [a, b]


def test_parse_grant_ignores_other_and_damaged_documents() -> None:
    assert grants.parse_grant("x", {"form": "group"}) is None
    assert grants.parse_grant("x", {"form": "useroperation", "type": "grantaccess"}) is None
    damaged = {
        "form": "useroperation",
        "type": "grantaccess",
        "username_hash": "h",
        "userKeyPairs": [None, {"signingPublicKey": 5}, {"signingPublicKey": "pem"}],
    }
    grant = grants.parse_grant("x", damaged)
    assert grant is not None and [p.signing_public_key for p in grant.active] == ["pem"]


# -- trust (pure) -------------------------------------------------------------------------------
def _trust_for(*grant_data: dict[str, Any], admin: str) -> DirectoryTrust:
    parsed = [grants.parse_grant(f"g{i}", d) for i, d in enumerate(grant_data)]
    trust = DirectoryTrust(admin)
    trust.update(KeyStates.from_grants(g for g in parsed if g is not None))
    return trust


def test_trust_decisions() -> None:
    admin, stranger = _pem(), _pem()
    active, revoked = _user("a"), _user("r")
    revoked_data = grants.new_grant_data("acme", revoked, "x", "E", 1)
    grants.revoke_key_pairs(revoked_data, 1000)
    trust = _trust_for(
        grants.new_grant_data("acme", active, "x", "E", 1), revoked_data, admin=admin
    )

    assert trust.verdict(admin, 5) is Verdict.ADMIN
    assert trust.verdict(active.signing_public_key, 5) is Verdict.ACTIVE
    assert trust.verdict(revoked.signing_public_key, 999) is Verdict.BEFORE_REVOCATION
    assert trust.verdict(revoked.signing_public_key, 1000) is Verdict.REVOKED
    assert trust.verdict(stranger, 5) is Verdict.UNKNOWN

    assert trust.applies(_meta(admin, 1)) and trust.refusal(_meta(admin, 1)) is None
    assert trust.applies(_meta(revoked.signing_public_key, 999))
    assert not trust.applies(_meta(revoked.signing_public_key, 1000))
    assert trust.refusal(_meta(revoked.signing_public_key, 1000)) is not None
    assert not trust.applies(_meta(stranger, 1))
    assert trust.refusal(_meta(stranger, 1)) is None  # stored, maybe granted later
    # Whitespace in a PEM does not change who it is.
    assert trust.verdict(active.signing_public_key.replace("\n", "\r\n"), 5) is Verdict.ACTIVE


def test_active_anywhere_beats_revoked_elsewhere_and_earliest_revocation_wins() -> None:
    user = _user("bob")
    revoked_a = grants.new_grant_data("acme", user, "x", "E", 1)
    grants.revoke_key_pairs(revoked_a, 500)
    revoked_b = grants.new_grant_data("acme", user, "x", "E", 1)
    grants.revoke_key_pairs(revoked_b, 300)
    trust = _trust_for(revoked_a, revoked_b, admin=_pem())
    assert trust.verdict(user.signing_public_key, 299) is Verdict.BEFORE_REVOCATION
    assert trust.verdict(user.signing_public_key, 400) is Verdict.REVOKED
    trust = _trust_for(revoked_a, grants.new_grant_data("acme", user, "x", "E", 1), admin=_pem())
    assert trust.verdict(user.signing_public_key, 10_000) is Verdict.ACTIVE


def test_revocation_without_time_refuses_everything() -> None:
    user = _user("bob")
    data = grants.new_grant_data("acme", user, "x", "E", 1)
    data["revokedUserKeyPairs"] = data.pop("userKeyPairs")
    data["userKeyPairs"] = []
    trust = _trust_for(data, admin=_pem())
    assert trust.verdict(user.signing_public_key, 0) is Verdict.REVOKED


def test_generation_moves_only_on_change() -> None:
    trust = DirectoryTrust(_pem())
    states = KeyStates.from_grants([])
    assert not trust.update(states)
    grant = grants.parse_grant("g", grants.new_grant_data("acme", _user("a"), "x", "E", 1))
    assert grant is not None
    assert trust.update(KeyStates.from_grants([grant]))
    assert trust.generation == 1
    assert not trust.update(KeyStates.from_grants([grant]))
    assert trust.generation == 1


# -- groups (pure) ------------------------------------------------------------------------------
def _group_index(*docs: tuple[str, str, list[str]]) -> DirectoryIndex:
    index = DirectoryIndex("acme")
    for doc_id, name, members in docs:
        data = groups.new_group_data(name, [(username_hash("acme", m), "") for m in members])
        index.put(doc_id, parse_record(doc_id, data, 0))
    return index


def test_same_name_group_docs_merge_by_union() -> None:
    index = _group_index(("g1", "sales", ["alice"]), ("g2", "sales", ["bob"]))
    group = index.group("SALES")
    assert group is not None and group.doc_ids == ("g1", "g2")
    assert group.member_hashes == {username_hash("acme", "alice"), username_hash("acme", "bob")}
    assert index.is_group_member("Bob", "Sales")


def test_nested_groups_and_cycles_terminate() -> None:
    index = _group_index(
        ("g1", "a", ["alice", "b"]),
        ("g2", "b", ["bob", "c"]),
        ("g3", "c", ["carol", "a"]),  # a -> b -> c -> a
        ("g4", "d", ["dave"]),
    )
    assert index.user_groups("carol") == {"a", "b", "c"}
    assert index.user_groups("dave") == {"d"}
    assert index.user_groups("nobody") == set()
    everyone = {username_hash("acme", n) for n in ("alice", "bob", "carol")}
    assert index.group_member_hashes("b") == everyone


def test_dn_wildcard_members_and_legacy_hashed_nesting() -> None:
    # The reference's resolveGroupsForUser matches a name's DN variants (*/O=acme, *) and lists
    # a nested group under any of its name's hash versions (v1 here).
    index = DirectoryIndex("acme")
    for doc_id, name, members in (
        ("g1", "org", [username_hash("acme", "*/O=acme")]),
        ("g2", "all", [username_hash("acme", "*")]),
        ("g3", "outer", [username_hash_v1("ORG")]),
    ):
        data = groups.new_group_data(name, [(m, "") for m in members])
        index.put(doc_id, parse_record(doc_id, data, 0))
    assert index.user_groups("CN=Alice/OU=Sales/O=acme") == {"org", "all", "outer"}
    assert index.user_groups("CN=Bob/O=other") == {"all"}
    assert index.is_group_member("CN=Alice/O=acme", "Outer")
    assert not index.is_group_member("CN=Bob/O=other", "org")


def test_add_and_remove_members_keep_lists_aligned() -> None:
    data = groups.new_group_data("g", [("h1", "e1")])
    assert groups.add_members(data, [("h2", "e2"), ("h1", "x")])
    assert not groups.add_members(data, [("h2", "e2")])
    assert data["members_hashes"] == ["h1", "h2"] and data["members_encrypted"] == ["e1", "e2"]
    assert groups.remove_members(data, ["h1"])
    assert not groups.remove_members(data, ["zz"])
    assert data["members_hashes"] == ["h2"] and data["members_encrypted"] == ["e2"]


def test_settings_records_last_writer_wins() -> None:
    index = DirectoryIndex("acme")
    index.put("s1", parse_record("s1", {"form": "tenantsettings", "x": 1}, 10))
    index.put("s2", parse_record("s2", {"form": "tenantsettings", "x": 2}, 20))
    index.put("d1", parse_record("d1", {"form": "dbsettings", "dbid": "todos", "y": 1}, 5))
    assert index.tenant_settings() == {"x": 2}
    assert index.db_settings("todos") == {"y": 1}
    assert index.db_settings("other") is None
    index.retain(["s1"])
    assert index.tenant_settings() == {"x": 1}


# -- the Directory on a real database -------------------------------------------------------------
async def test_register_grant_document_is_publicinfos_encrypted_and_anonymous() -> None:
    created = await new_tenant(InMemoryStoreFactory())
    directory = created.tenant.get_directory()
    assert directory.is_user_registered(username("alice"))
    assert directory.get_usernames() == [username("alice")]
    doc_id = grants.grant_doc_id(username_hash(TENANT_ID, username("alice")))
    doc = await directory.db.get_document(doc_id)
    assert doc.get_decryption_key_id() == "$publicinfos"
    assert "alice" not in json.dumps(doc.get_data()).lower()
    assert doc.get_data()["userKeyPairs"][0]["label"] == "First device"
    assert directory.validate_public_signing_key(identity("alice").signing_public_key)
    assert directory.validate_public_signing_key(identity("admin").signing_public_key)
    assert not directory.validate_public_signing_key(identity("bob").signing_public_key)


async def test_second_device_and_revocation_through_the_directory() -> None:
    created = await new_tenant(InMemoryStoreFactory())
    admin = unlock(created.admin_user, password("admin"))
    directory = created.tenant.get_directory()
    phone = _user(username("alice"))
    await directory.register_user(phone, "phone", admin)
    pairs = directory.get_user_key_pairs(username("alice"))
    assert [p.label for p in pairs] == ["First device", "phone"]
    assert len(directory.index.grants()) == 1
    generation = directory.trust.generation
    assert (
        await directory.revoke_user(
            username("alice"), admin, signing_keys=[phone.signing_public_key]
        )
        == 1
    )
    assert directory.trust.generation > generation
    assert [p.label for p in directory.get_revoked_key_pairs(username("alice"))] == ["phone"]
    assert directory.is_user_registered(username("alice"))
    with pytest.raises(UserNotFoundError):
        await directory.revoke_user("cn=nobody", admin)
    with pytest.raises(InvalidNameError):
        await directory.register_user(phone, "", admin)


async def test_directory_writes_need_the_admin() -> None:
    created = await new_tenant(InMemoryStoreFactory())
    alice = created.tenant.user
    with pytest.raises(NotAdminError):
        await created.tenant.get_directory().register_user(_user("mallory"), "x", alice)
    with pytest.raises(NotAdminError):
        await created.tenant.revoke_user(
            username("alice"), admin_signing_key=identity("alice"), admin_password="x"
        )


async def test_groups_and_settings_through_the_tenant() -> None:
    created = await new_tenant(InMemoryStoreFactory())
    tenant = created.tenant
    creds = admin_creds()
    await tenant.create_group("Sales", [username("alice"), "EMEA"], **creds)
    await tenant.create_group("emea", [username("bob")], **creds)
    directory = tenant.get_directory()
    assert directory.get_groups() == ["emea", "sales"]
    assert directory.get_group_members("sales") == ["EMEA", username("alice")]
    assert directory.get_user_groups(username("bob")) == {"emea", "sales"}
    await tenant.add_users_to_group("SALES", [username("carol")], **creds)
    await tenant.remove_users_from_group("sales", [username("alice")], **creds)
    assert directory.get_group_members("sales") == ["EMEA", username("carol")]
    await tenant.delete_group("emea", **creds)
    assert directory.get_groups() == ["sales"]
    with pytest.raises(GroupNotFoundError):
        directory.get_group_members("emea")

    await tenant.change_tenant_settings(
        lambda d: d.get_data().update(maxAttachmentSize=100_000_000), **creds
    )
    await tenant.change_db_settings(
        "todos", lambda d: d.get_data().update(snapshots=False), **creds
    )
    assert tenant.get_tenant_settings() == {"maxAttachmentSize": 100_000_000}
    assert tenant.get_db_settings("todos") == {"snapshots": False}
    assert tenant.get_db_settings("other") == {}


async def test_group_members_are_bare_text_under_default() -> None:
    # The reference encrypts a member as its UTF-8 name (encryptGroupMemberForTenant) and shows
    # whatever decrypts; a JSON wrapper would reach its users as '{"username": ...}'.
    created = await new_tenant(InMemoryStoreFactory())
    tenant = created.tenant
    await tenant.create_group("team", [username("alice")], **admin_creds())
    directory = tenant.get_directory()
    group = directory.index.group("team")
    assert group is not None
    keys = tenant.key_bag.get_all(TENANT_ID, "default")
    (blob,) = group.encrypted_members
    assert decrypt_with_any(keys, b64decode(blob)) == username("alice").encode()
    # members written as the reference writes them, and as mindood wrote them before, both read
    reference_blob = b64encode(encrypt_payload(keys[0], "CN=Zoë/O=acme".encode()))
    legacy_blob = b64encode(encrypt_payload(keys[0], b'{"username":"CN=old/O=acme"}'))
    extra = [(username_hash(TENANT_ID, "CN=Zoë/O=acme"), reference_blob)]
    extra.append((username_hash(TENANT_ID, "CN=old/O=acme"), legacy_blob))
    writer = directory.db.with_signer(signer_for(unlock(identity("admin"), password("admin"))))
    await writer.change_doc(group.doc_ids[0], lambda d: groups.add_members(d.get_data(), extra))
    await directory.refresh()
    want = sorted(["CN=Zoë/O=acme", "CN=old/O=acme", username("alice")])
    assert directory.get_group_members("team") == want


async def test_keyless_relay_reads_trust_but_not_names_or_settings() -> None:
    factory = InMemoryStoreFactory()
    created = await new_tenant(factory)
    creds = admin_creds()
    await created.tenant.create_group("sales", [username("alice")], **creds)
    await created.tenant.change_tenant_settings(lambda d: d.get_data().update(x=1), **creds)

    relay_bag = KeyBag.for_user(identity("relay"), password("relay"))
    relay_bag.set(TENANT_ID, "$publicinfos", created.key_bag.get(TENANT_ID, "$publicinfos"))
    relay = await Tenant.open(
        tenant_id=TENANT_ID,
        admin_signing_public_key=identity("admin").signing_public_key,
        admin_encryption_public_key=identity("admin").encryption_public_key,
        user=unlock(identity("relay"), password("relay")),
        key_bag=relay_bag,
        store_factory=factory,
    )
    directory = relay.get_directory()
    assert directory.validate_public_signing_key(identity("alice").signing_public_key)
    assert directory.is_group_member(username("alice"), "sales")
    assert directory.get_usernames() == []
    assert directory.get_group_members("sales") == []
    assert directory.get_tenant_settings() == {}
    with pytest.raises(KeyNotFoundError):
        await directory.db.get_document("tenantsettings")
    # Once the relay is given the default key, a full refresh reads what it could not before.
    relay_bag.set(TENANT_ID, "default", created.key_bag.get(TENANT_ID, "default"))
    await relay.refresh_directory(full=True)
    assert directory.get_tenant_settings() == {"x": 1}
    assert directory.get_usernames() == [username("alice")]


async def test_directory_follows_entries_pulled_by_another_path() -> None:
    created = await new_tenant(InMemoryStoreFactory())
    mirror = await Tenant.open(
        tenant_id=TENANT_ID,
        admin_signing_public_key=identity("admin").signing_public_key,
        admin_encryption_public_key=identity("admin").encryption_public_key,
        user=created.tenant.user,
        key_bag=created.key_bag,
        store_factory=InMemoryStoreFactory(),
    )
    directory = mirror.get_directory()
    assert not directory.is_user_registered(username("alice"))
    # Pulling through the database API alone (no refresh call) still updates the directory.
    await directory.db.pull_changes_from(created.tenant.get_directory().db)
    for _ in range(200):
        if directory.is_user_registered(username("alice")):
            break
        await asyncio.sleep(0.005)
    assert directory.is_user_registered(username("alice"))
    await mirror.close()
