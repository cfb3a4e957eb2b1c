"""User-Keys and key distribution end to end: createTenant, joins, a second device.

The directory documents mindood writes are compared field for field with the ones the
reference wrote in the vector tenant, and ``default`` must reach a joined device only through
``acl_keydistribution_default``, as in the reference (the join response carries
``$publicinfos`` alone).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from automerge.core import Document, extract

from mindood.crypto import decrypt_with_any, kdf
from mindood.crypto.fingerprint import rsa_key_fingerprint
from mindood.db import KeyBagKeys, MindooDB, MindooDoc, OpenTrust, signer_for
from mindood.errors import AccessRevokedError
from mindood.identity import PrivateUserId, create_user_id, unlock
from mindood.storefactory import InMemoryStoreFactory
from mindood.tenant import CreatedTenant, Tenant, TenantFactory
from mindood.tenant.joinresponse import DeviceJoinBootstrap, JoinResponse
from mindood.tenant.userkeys import USER_DIRECTORY_DB_ID, parse_user_key_document
from store.entry import EntryType
from tests.interop import reference_documents, vector
from tests.tenant_helpers import (
    admin_creds,
    fast_kdf,
    identity,
    in_memory_tenant_fixture,
    password,
    username,
)

DEFAULT = "default"
PUBLIC = "$publicinfos"


@pytest.fixture(autouse=True, scope="module")
def _fast_kdf() -> Iterator[None]:
    yield from fast_kdf()


created = in_memory_tenant_fixture()


def _fields(doc: dict[str, Any]) -> set[str]:
    """Field names but the system fields (``get_data`` leaves those out)."""
    return set(doc) - {"_attachments", "_lastModified"}


async def _doc_data(tenant: Tenant, db: str, doc_id: str) -> dict[str, Any]:
    handle = await tenant.open_db(db)
    data: dict[str, Any] = (await handle.get_document(doc_id)).get_data()
    return data


async def _create_values(tenant: Tenant, db_name: str, doc_id: str) -> dict[str, Any]:
    """The values of a document's ``doc_create`` entry alone."""
    db = await tenant.open_db(db_name)
    store = db.get_store()
    metas = await store.find_new_entries_for_doc([], doc_id)
    entries = await store.get_entries([m.id for m in metas])
    [create] = [e for e in entries if e.metadata.entry_type == EntryType.DOC_CREATE]
    keys = tenant.key_bag.get_all(tenant.tenant_id, create.metadata.decryption_key_id)
    values: dict[str, Any] = extract(Document.load(decrypt_with_any(keys, create.encrypted_data)))
    return values


async def test_create_tenant_writes_the_documents_the_reference_writes(
    created: CreatedTenant,
) -> None:
    tenant = created.tenant
    ref_dir = reference_documents("directory/docs")
    ref_users = reference_documents("userdirectory/docs")
    for doc_id in ("acl_keydistribution_default", "acl_defaultpolicy", "tenantsetup"):
        ours = await _doc_data(tenant, "directory", doc_id)
        assert _fields(ours) == _fields(ref_dir[doc_id]), doc_id
    grant = tenant.get_directory().index.grants_of(created.app_user.username)[0]
    ours_grant = await _doc_data(tenant, "directory", grant.doc_id)
    assert _fields(ours_grant) == _fields(ref_dir["6b0f48c5ab6cfc0036d72ea6"])

    user_docs = await (await tenant.open_db(USER_DIRECTORY_DB_ID)).get_all_document_ids()
    assert len(user_docs) == 1
    ours_key = await _doc_data(tenant, USER_DIRECTORY_DB_ID, user_docs[0])
    assert _fields(ours_key) == _fields(ref_users["userkey_6b0f48c5ab6cfc0036d72ea6"])
    parsed = parse_user_key_document(ours_key)
    assert parsed is not None and not parsed.is_pending
    current = parsed.current
    assert current is not None
    assert current.public_key == created.app_user.user_key_public_key
    device = rsa_key_fingerprint(created.app_user.encryption_public_key)
    assert current.wrap_for(device) is not None

    # One create carries the payload, as the reference writes it (assumeUniqueId): its server's
    # userdirectory rule reads username_hash from the create, and its readers skip a document
    # whose create is the convergent seed signed by someone else.
    create = await _create_values(tenant, USER_DIRECTORY_DB_ID, user_docs[0])
    assert create["username_hash"] == grant.username_hash
    assert create["userKeys"]

    dist = tenant.get_directory().index.key_distributions()
    assert [d.key_id for d in dist] == [DEFAULT]
    assert grant.username_hash in dist[0].pushto_users_hashes
    assert tenant.get_directory().metadata_signature_floor() is not None


async def _join(
    created: CreatedTenant, joiner: PrivateUserId, joiner_password: str, **approve: Any
) -> tuple[Tenant, JoinResponse, InMemoryStoreFactory]:
    """Approve ``joiner`` on the creator's tenant; join on separate stores and sync to it."""
    request = TenantFactory.create_join_request(joiner, label="second")
    response = await created.tenant.approve_join_request(
        request, **admin_creds(), format="object", **approve
    )
    parsed = JoinResponse.parse(response)
    stores = InMemoryStoreFactory()
    joined = await TenantFactory(stores).join_tenant(
        response, user=joiner, password=joiner_password
    )
    await _sync(created.tenant, joined.tenant)
    return joined.tenant, parsed, stores


async def _sync(source: Tenant, target: Tenant, *dbs: str) -> None:
    await target.get_directory().db.pull_changes_from(source.get_directory().db)
    for name in (USER_DIRECTORY_DB_ID, *dbs):
        await (await target.open_db(name)).pull_changes_from(await source.open_db(name))
    await target.refresh_directory()


async def test_a_new_person_is_enrolled_and_reads_through_the_directory(
    created: CreatedTenant,
) -> None:
    contacts = await created.tenant.open_db("contacts")
    await contacts.create_document({"name": "Ada"})
    bob = identity("bob")
    bob_tenant, response, _ = await _join(created, bob, password("bob"))
    try:
        assert sorted(response.key_ids()) == sorted([PUBLIC, DEFAULT])
        assert bob_tenant.key_bag.has(bob_tenant.tenant_id, DEFAULT)
        await _sync(created.tenant, bob_tenant, "contacts")
        bob_contacts = await bob_tenant.open_db("contacts")
        [doc_id] = await bob_contacts.get_all_document_ids()
        assert (await bob_contacts.get_document(doc_id)).get_data() == {"name": "Ada"}
        # His device's key pair is the reference's, join bootstrap included.
        grant = created.tenant.get_directory().index.grants_of(bob.username)[0]
        [pair] = grant.active
        ref_pair = reference_documents("directory/docs")["6b0f48caab6cfc0036d72eac"]
        assert set(pair.raw) == set(ref_pair["userKeyPairs"][0])
        bootstrap = DeviceJoinBootstrap.open(pair.raw["joinResponseWrapped"], bob_tenant.user)
        assert bootstrap.username == bob.username
        assert bootstrap.tenant_label == created.tenant.get_directory().get_tenant_label()
        # Bob's own device published his User-Key wrap, so the reference sees him as enrolled.
        found = await bob_tenant.user_keys.document_of(bob.username)
        assert found is not None and not found[1].is_pending
    finally:
        await bob_tenant.close()


async def test_the_reference_join_request_is_approved_and_its_keys_work(
    created: CreatedTenant,
) -> None:
    data = vector("reference-join-request")
    joiner = PrivateUserId.from_json(data["identity"])
    response = await created.tenant.approve_join_request(
        data["uri"], **admin_creds(), format="object"
    )
    assert sorted(JoinResponse.parse(response).key_ids()) == sorted([PUBLIC, DEFAULT])
    with kdf.lowered_pbkdf2_iterations(kdf.DEFAULT_PBKDF2_ITERATIONS):  # the vector's KeyBag
        joined = await TenantFactory(InMemoryStoreFactory()).join_tenant(
            response, user=joiner, password=data["password"]
        )
    try:
        await _sync(created.tenant, joined.tenant)
        assert joined.tenant.key_bag.has(joined.tenant.tenant_id, DEFAULT)
        assert joined.tenant.get_directory().validate_public_signing_key(joiner.signing_public_key)
    finally:
        await joined.tenant.close()


async def test_a_second_device_of_the_same_person_opens_the_user_key_from_its_wrap(
    created: CreatedTenant,
) -> None:
    """Alice's second device has its own identity (and User-Key); the published one wins and
    reaches it as a device wrap written by her first device on approval."""
    second = create_user_id(username("alice"), "alice-2-pw", with_user_key=True)
    tenant, response, _ = await _join(created, second, "alice-2-pw")
    try:
        assert sorted(response.key_ids()) == sorted([PUBLIC, DEFAULT])
        keys = await tenant.user_keys.own_user_keys()
        published = await tenant.user_keys.published_user_key(username("alice"))
        assert published is not None
        assert rsa_key_fingerprint(published) in {rsa_key_fingerprint(k) for k in keys}
        assert tenant.key_bag.get(tenant.tenant_id, DEFAULT) == created.key_bag.get(
            tenant.tenant_id, DEFAULT
        )
    finally:
        await tenant.close()


async def test_a_request_without_user_key_still_joins_with_default_in_the_response(
    created: CreatedTenant,
) -> None:
    legacy = create_user_id(username("dave"), "dave-pw")
    assert not legacy.has_user_key
    tenant, response, _ = await _join(created, legacy, "dave-pw")
    try:
        assert sorted(response.key_ids()) == sorted([PUBLIC, DEFAULT])
        assert tenant.key_bag.has(tenant.tenant_id, DEFAULT)
    finally:
        await tenant.close()


async def test_a_rotated_key_reaches_every_recipient(created: CreatedTenant) -> None:
    bob_tenant, _, _ = await _join(created, identity("bob"), password("bob"))
    try:
        admin = await created.tenant._unlock_admin(
            admin_creds()["admin_signing_key"], admin_creds()["admin_password"]
        )
        bag = created.tenant.key_bag
        bag.create_and_store_symmetric_key(created.tenant.tenant_id, DEFAULT)
        assert await created.tenant.user_keys.distribute(admin, username("alice"))
        await _sync(created.tenant, bob_tenant)
        assert len(bob_tenant.key_bag.versions(bob_tenant.tenant_id, DEFAULT)) == 2
    finally:
        await bob_tenant.close()


async def test_only_the_person_writes_their_user_key_document(created: CreatedTenant) -> None:
    """The reference's builtin userdirectory rule: a member cannot swap another person's
    User-Key, the admin cannot change one after creating it, and only the admin deletes.
    Each is refused at the writer and, from a client that ignores the rule, on receipt."""
    alice = created.tenant
    bob = identity("bob")
    bob_tenant, _, _ = await _join(created, bob, password("bob"))
    try:
        alice_users = await alice.open_db(USER_DIRECTORY_DB_ID)
        bob_users = await bob_tenant.open_db(USER_DIRECTORY_DB_ID)
        alice_doc, _ = await _user_key_doc(alice, created.app_user.username)
        bob_doc, _ = await _user_key_doc(bob_tenant, bob.username)
        admin = signer_for(unlock(identity("admin"), password("admin")))

        def plant(d: MindooDoc) -> None:
            d.get_data().update(planted="yes")

        # Bob plants a key in Alice's document.
        with pytest.raises(AccessRevokedError, match="only the person"):
            await bob_users.change_doc(alice_doc, plant)
        await _rogue(bob_tenant, bob_users).change_doc(alice_doc, plant)
        assert await _refused(alice_users, bob_users) == [
            "userdirectory: only the person a User-Key document is for may write it"
        ]
        assert "planted" not in (await alice_users.get_document(alice_doc)).get_data()

        # The admin rewrites Bob's document.
        with pytest.raises(AccessRevokedError, match="administrator cannot change"):
            await alice_users.with_signer(admin).change_doc(bob_doc, plant)
        await _rogue(alice, alice_users).with_signer(admin).change_doc(bob_doc, plant)
        assert await _refused(bob_users, alice_users) == [
            "userdirectory: the administrator cannot change a person's User-Key"
        ]
        assert "planted" not in (await bob_users.get_document(bob_doc)).get_data()

        # Bob deletes his own document.
        with pytest.raises(AccessRevokedError, match="only the administrator deletes"):
            await bob_users.delete_document(bob_doc)
        await _rogue(bob_tenant, bob_users).delete_document(bob_doc)
        assert await _refused(alice_users, bob_users) == [
            "userdirectory: only the administrator deletes User-Key documents"
        ]
        assert await alice_users.find_document(bob_doc) is not None
    finally:
        await bob_tenant.close()


def _rogue(tenant: Tenant, db: MindooDB) -> MindooDB:
    """A handle on ``db``'s store that applies no rule (a client that ignores it)."""
    return MindooDB(
        tenant_id=tenant.tenant_id,
        db_id=USER_DIRECTORY_DB_ID,
        store=db.get_store(),
        signer=db.get_signer(),
        keys=KeyBagKeys(tenant.key_bag, tenant.tenant_id),
        trust=OpenTrust(),
    )


async def _refused(target: MindooDB, source: MindooDB) -> list[str]:
    result = await target.pull_changes_from(source)
    return [reason for _, reason in result.rejected]


async def _user_key_doc(tenant: Tenant, name: str) -> tuple[str, dict[str, Any]]:
    found = await tenant.user_keys.document_of(name)
    assert found is not None
    db = await tenant.open_db(USER_DIRECTORY_DB_ID)
    return found[0], (await db.get_document(found[0])).get_data()
