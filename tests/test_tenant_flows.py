"""End-to-end tenant flows: quick start, joining, concurrent editing, relays, revocation, errors."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

import pytest

from mindood import InMemoryStoreFactory, KeyBag, TenantFactory
from mindood.db import KeyBagKeys, MindooDB, OpenTrust
from mindood.errors import (
    AccessRevokedError,
    InvalidUriError,
    JoinResponseDeviceMismatchError,
    KeyNotFoundError,
    SharePasswordRequiredError,
    WrongPasswordError,
    WrongSharePasswordError,
)
from mindood.tenant import Tenant
from mindood.tenant.uri import decode_uri
from tests.tenant_helpers import TENANT_ID, fast_kdf, identity, new_tenant, password, username

_fast = pytest.fixture(autouse=True, scope="module")(fast_kdf)

SHARE = "one-time-secret"


async def test_quick_start_as_written() -> None:
    factory = TenantFactory(InMemoryStoreFactory())
    created = await factory.create_tenant(
        tenant_id="acme",
        admin_name="cn=admin/o=acme",
        admin_password="admin-pw",
        user_name="cn=alice/o=acme",
        user_password="alice-pw",
    )
    tenant = created.tenant  # also created.admin_user, created.app_user, created.key_bag
    db = await tenant.open_db("todos")
    doc = await db.create_document()
    await db.change_doc(doc, lambda d: d.get_data().update(title="Buy milk", done=False))
    loaded = await db.get_document(doc.get_id())
    assert loaded.get_data() == {"title": "Buy milk", "done": False}
    assert created.admin_user.username == "cn=admin/o=acme"
    assert created.app_user.username == "cn=alice/o=acme"
    assert created.key_bag.has("acme", "default") and created.key_bag.has("acme", "$publicinfos")
    assert await tenant.open_db("todos") is db


@dataclass
class Pair:
    """Alice's tenant (she created it) and Bob's (he joined), on one shared store factory."""

    alice: Tenant
    bob: Tenant
    factory: TenantFactory


async def _join_bob(
    factory: TenantFactory, alice: Tenant, *, share_password: str | None = None
) -> Tenant:
    request = factory.create_join_request(identity("bob"), format="uri", label="Bob's laptop")
    response = await alice.approve_join_request(
        request,
        admin_signing_key=identity("admin"),
        admin_password=password("admin"),
        share_password=share_password,
    )
    joined = await factory.join_tenant(
        response, user=identity("bob"), password=password("bob"), share_password=share_password
    )
    return joined.tenant


@pytest.fixture
async def pair() -> Pair:
    factory = TenantFactory(InMemoryStoreFactory())
    created = await new_tenant(factory.store_factory)
    bob = await _join_bob(factory, created.tenant)
    return Pair(created.tenant, bob, factory)


async def test_join_response_v3_carries_only_publicinfos_as_the_reference(pair: Pair) -> None:
    """``default`` reaches the joiner through acl_keydistribution_default (test_user_key_flows)."""
    request = pair.factory.create_join_request(identity("carol"))
    response = await pair.alice.approve_join_request(
        request, admin_signing_key=identity("admin"), admin_password=password("admin")
    )
    payload = decode_uri(response, expected_type="join-response").payload
    assert payload["v"] == 3
    assert payload["username"] == username("carol")
    assert {k["keyId"] for k in payload["encryptedDocKeys"]} == {"$publicinfos", "default"}
    assert all("wrappedKey" in v for k in payload["encryptedDocKeys"] for v in k["versions"])


async def test_two_users_edit_one_document_concurrently_and_converge(pair: Pair) -> None:
    assert pair.bob.get_directory().is_user_registered(username("bob"))
    alice_db = await pair.alice.open_db("todos")
    bob_db = await pair.bob.open_db("todos")
    doc = await alice_db.create_document({"title": "Plan"})
    await bob_db.sync_store_changes()
    assert (await bob_db.get_document(doc.get_id())).get_data() == {"title": "Plan"}

    await asyncio.gather(
        alice_db.change_doc(doc.get_id(), lambda d: d.get_data().update(alice=1)),
        bob_db.change_doc(doc.get_id(), lambda d: d.get_data().update(bob=2)),
    )
    await alice_db.sync_store_changes()
    await bob_db.sync_store_changes()
    expected = {"title": "Plan", "alice": 1, "bob": 2}
    assert (await alice_db.get_document(doc.get_id())).get_data() == expected
    assert (await bob_db.get_document(doc.get_id())).get_data() == expected


async def test_two_users_on_separate_stores_converge_by_pull_and_push() -> None:
    alice_factory = TenantFactory(InMemoryStoreFactory())
    created = await new_tenant(alice_factory.store_factory)
    bob_factory = TenantFactory(InMemoryStoreFactory())
    bob = await _join_bob(bob_factory, created.tenant)
    # Bob's device starts empty: he syncs the directory first, then the data.
    await bob.get_directory().db.pull_changes_from(created.tenant.get_directory().db)
    await bob.refresh_directory()
    alice_db, bob_db = await created.tenant.open_db("notes"), await bob.open_db("notes")
    doc = await alice_db.create_document({"n": 0}, doc_id="shared_note")
    await bob_db.pull_changes_from(alice_db)
    await alice_db.change_doc("shared_note", lambda d: d.get_data().update(a=True))
    await bob_db.change_doc("shared_note", lambda d: d.get_data().update(b=True))
    await bob_db.push_changes_to(alice_db)
    await bob_db.pull_changes_from(alice_db)
    expected = {"n": 0, "a": True, "b": True}
    assert (await alice_db.get_document(doc.get_id())).get_data() == expected
    assert (await bob_db.get_document(doc.get_id())).get_data() == expected


async def test_legacy_share_password_join(pair: Pair) -> None:
    request = pair.factory.create_join_request(identity("carol"))
    response = await pair.alice.approve_join_request(
        request,
        admin_signing_key=identity("admin"),
        admin_password=password("admin"),
        share_password=SHARE,
        format="object",
    )
    assert response["v"] == 2
    assert all("encryptedKey" in v for k in response["encryptedDocKeys"] for v in k["versions"])
    with pytest.raises(SharePasswordRequiredError):
        await pair.factory.join_tenant(response, user=identity("carol"), password=password("carol"))
    with pytest.raises(WrongSharePasswordError):
        await pair.factory.join_tenant(
            response, user=identity("carol"), password=password("carol"), share_password="nope"
        )
    joined = await pair.factory.join_tenant(
        response, user=identity("carol"), password=password("carol"), share_password=SHARE
    )
    assert joined.key_bag.get(TENANT_ID, "default") == pair.alice.key_bag.get(TENANT_ID, "default")
    db = await joined.tenant.open_db("todos")
    doc = await db.create_document({"by": "carol"})
    alice_db = await pair.alice.open_db("todos")
    await alice_db.sync_store_changes()
    assert (await alice_db.get_document(doc.get_id())).get_data() == {"by": "carol"}


async def test_join_errors_are_typed(pair: Pair) -> None:
    request = pair.factory.create_join_request(identity("carol"))
    response = await pair.alice.approve_join_request(
        request, admin_signing_key=identity("admin"), admin_password=password("admin")
    )
    with pytest.raises(WrongPasswordError):
        await pair.factory.join_tenant(response, user=identity("carol"), password="wrong")
    with pytest.raises(JoinResponseDeviceMismatchError):
        await pair.factory.join_tenant(response, user=identity("bob"), password=password("bob"))
    for bad in ("mdb://join-response/!!!", "https://example.com", response[:-7], request):
        with pytest.raises(InvalidUriError):
            await pair.factory.join_tenant(bad, user=identity("carol"), password=password("carol"))
    with pytest.raises(InvalidUriError):
        await pair.alice.approve_join_request(
            "mdb://join-request/e30", admin_signing_key=identity("admin"), admin_password="x"
        )
    with pytest.raises(WrongPasswordError):
        await pair.alice.approve_join_request(
            request, admin_signing_key=identity("admin"), admin_password="wrong"
        )


async def test_relay_without_default_key_passes_entries_intact() -> None:
    alice_side = await new_tenant(InMemoryStoreFactory())
    alice = alice_side.tenant
    relay = await _relay_of(alice, InMemoryStoreFactory())
    bob = await _join_bob(TenantFactory(InMemoryStoreFactory()), alice)

    alice_db = await alice.open_db("todos")
    doc = await alice_db.create_document({"secret": "plans"})
    await alice_db.change_doc(doc, lambda d: d.get_data().update(step=2))

    # Alice -> relay: directory first (so the relay knows Alice), then the data.
    await _hop(alice, relay, "todos")
    relay_db = await relay.open_db("todos")
    assert await relay_db.get_store().get_all_ids() == await alice_db.get_store().get_all_ids()
    with pytest.raises(KeyNotFoundError):
        await relay_db.get_document(doc.get_id())
    assert relay.get_directory().validate_public_signing_key(identity("alice").signing_public_key)

    # relay -> Bob: Bob's device reads everything.
    await _hop(relay, bob, "todos")
    bob_db = await bob.open_db("todos")
    assert (await bob_db.get_document(doc.get_id())).get_data() == {"secret": "plans", "step": 2}


async def _relay_of(tenant: Tenant, store_factory: InMemoryStoreFactory) -> Tenant:
    bag = KeyBag.for_user(identity("relay"), password("relay"))
    bag.set(TENANT_ID, "$publicinfos", tenant.key_bag.get(TENANT_ID, "$publicinfos"))
    assert not bag.has(TENANT_ID, "default")
    return await TenantFactory(store_factory).open_tenant(
        TENANT_ID,
        tenant.admin_signing_public_key,
        tenant.admin_encryption_public_key,
        identity("relay"),
        password("relay"),
        bag,
    )


async def _hop(source: Tenant, target: Tenant, db_name: str) -> None:
    await target.get_directory().db.pull_changes_from(source.get_directory().db)
    await target.refresh_directory()
    target_db: MindooDB = await target.open_db(db_name)
    result = await target_db.pull_changes_from(await source.open_db(db_name))
    assert result.rejected == ()


async def _wait_past(ms: int) -> None:
    """Wait (bounded) until the wall clock is past ``ms``, so later entries are strictly newer."""
    for _ in range(1000):
        if time.time_ns() // 1_000_000 > ms:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the clock did not advance")


async def test_revoked_user_new_changes_are_not_applied_anywhere(pair: Pair) -> None:
    alice_db, bob_db = await pair.alice.open_db("todos"), await pair.bob.open_db("todos")
    doc = await bob_db.create_document({"v": "before"})
    await alice_db.sync_store_changes()
    assert (await alice_db.get_document(doc.get_id())).get_data() == {"v": "before"}

    await _wait_past(doc.get_last_modified())
    revoked = await pair.alice.revoke_user(
        username("bob"), admin_signing_key=identity("admin"), admin_password=password("admin")
    )
    assert revoked == 1
    revoked_at = pair.alice.get_directory().get_revoked_key_pairs(username("bob"))[0].revoked_at
    assert revoked_at is not None
    await pair.bob.refresh_directory()
    await _wait_past(revoked_at)

    # Bob's own handle knows of the revocation and refuses to write at all.
    with pytest.raises(AccessRevokedError):
        await bob_db.change_doc(doc.get_id(), lambda d: d.get_data().update(v="after"))
    # A client that has not heard of it (or ignores it) still holds the keys and can write,
    # but nobody applies the change: not Alice, and not a fresh view of Bob's own tenant.
    rogue = MindooDB(
        tenant_id=TENANT_ID,
        db_id="todos",
        store=bob_db.get_store(),
        signer=bob_db.get_signer(),
        keys=KeyBagKeys(pair.bob.key_bag, TENANT_ID),
        trust=OpenTrust(),
    )
    await rogue.change_doc(doc.get_id(), lambda d: d.get_data().update(v="after"))
    await alice_db.sync_store_changes()
    assert (await alice_db.get_document(doc.get_id())).get_data() == {"v": "before"}
    bob_again = await pair.factory.open_tenant(
        TENANT_ID,
        pair.bob.admin_signing_public_key,
        pair.bob.admin_encryption_public_key,
        pair.bob.user,
        None,
        pair.bob.key_bag,
    )
    bob_view = await (await bob_again.open_db("todos")).get_document(doc.get_id())
    assert bob_view.get_data() == {"v": "before"}

    # And a sync into another replica refuses the entry outright.
    other = await TenantFactory(InMemoryStoreFactory()).open_tenant(
        TENANT_ID,
        pair.alice.admin_signing_public_key,
        pair.alice.admin_encryption_public_key,
        pair.alice.user,
        None,
        pair.alice.key_bag,
    )
    await other.get_directory().db.pull_changes_from(pair.alice.get_directory().db)
    await other.refresh_directory()
    result = await (await other.open_db("todos")).pull_changes_from(bob_db)
    assert len(result.rejected) == 1
    assert "revoked" in result.rejected[0][1]
    other_doc = await (await other.open_db("todos")).get_document(doc.get_id())
    assert other_doc.get_data() == {"v": "before"}


async def test_untrusted_author_is_stored_but_applied_only_once_granted() -> None:
    factory = TenantFactory(InMemoryStoreFactory())
    created = await new_tenant(factory.store_factory)
    alice = created.tenant
    # Dave holds the keys (given out of band) but is not in the directory yet.
    dave = await factory.open_tenant(
        TENANT_ID,
        alice.admin_signing_public_key,
        alice.admin_encryption_public_key,
        identity("dave"),
        password("dave"),
        alice.key_bag,
    )
    dave_db, alice_db = await dave.open_db("todos"), await alice.open_db("todos")
    doc = await alice_db.create_document({"title": "t"})
    await dave_db.sync_store_changes()
    await dave_db.change_doc(doc.get_id(), lambda d: d.get_data().update(dave=True))
    await alice_db.sync_store_changes()
    store_ids = await alice_db.get_store().get_all_ids()
    assert len(store_ids) == 2  # the create and Dave's change: stored
    assert (await alice_db.get_document(doc.get_id())).get_data() == {"title": "t"}
    new_doc = await dave_db.create_document({"by": "dave"})
    assert new_doc.get_id() not in await alice_db.get_all_document_ids()

    await alice.register_user(
        identity("dave").public,
        label="dave's laptop",
        admin_signing_key=identity("admin"),
        admin_password=password("admin"),
    )
    assert (await alice_db.get_document(doc.get_id())).get_data() == {"title": "t", "dave": True}
    assert new_doc.get_id() in await alice_db.get_all_document_ids()


async def test_named_key_round_trip(pair: Pair) -> None:
    exported = await pair.alice.create_doc_encryption_key("hr", "hr-pw")
    assert set(exported) >= {"ciphertext", "iv", "tag", "salt", "iterations"}
    json.dumps(exported)
    alice_db, bob_db = await pair.alice.open_db("hr"), await pair.bob.open_db("hr")
    doc = await alice_db.create_encrypted_document("hr", {"salary": 1})
    await bob_db.sync_store_changes()
    with pytest.raises(KeyNotFoundError):
        await bob_db.get_document(doc.get_id())
    pair.bob.key_bag.decrypt_and_import_key(TENANT_ID, "hr", exported, "hr-pw")
    assert (await bob_db.get_document(doc.get_id())).get_data() == {"salary": 1}
    with pytest.raises(WrongPasswordError):
        pair.bob.key_bag.decrypt_and_import_key(TENANT_ID, "hr", exported, "bad")
