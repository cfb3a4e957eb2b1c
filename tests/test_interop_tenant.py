"""A tenant made by the TypeScript MindooDB, opened by mindood from its keys alone.

Every entry goes through the same admission a peer's entries do (integrity, signature, trust
by the reference's own directory documents), then every document and the attachment must read
exactly what the reference reads (``expected`` in the vector).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from mindood.crypto import kdf
from mindood.db import MindooDB
from mindood.errors import KeyNotFoundError
from mindood.identity import PrivateUserId
from mindood.keybag import KeyBag
from mindood.storefactory import InMemoryStoreFactory
from mindood.tenant import Tenant, TenantFactory
from tests.interop import reference_key_bag, reference_tenant, store_entries

VECTOR = reference_tenant()


async def _admit(db: MindooDB, name: str) -> None:
    """Let one vector store in through the database's own admission, as sync would."""
    for kind, store in (("docs", db.get_store()), ("attachments", db.get_attachment_store())):
        entries = store_entries(f"{name}/{kind}")
        batch = await db.admit_entries(entries)
        assert batch.rejected == () and batch.deferred == (), (name, kind, batch)
        assert len(batch.accepted) == len(entries)
        assert store is not None
        await store.put_entries(list(batch.accepted))
    await db.sync_store_changes()


@pytest.fixture(scope="module")
def user() -> PrivateUserId:
    return PrivateUserId.from_json(VECTOR["user"])


@pytest.fixture(scope="module")
def key_bag() -> KeyBag:
    return reference_key_bag()


async def _open(user: PrivateUserId, key_bag: KeyBag) -> Tenant:
    tenant = await TenantFactory(InMemoryStoreFactory()).open_tenant(
        VECTOR["tenantId"],
        VECTOR["adminSigningPublicKey"],
        VECTOR["adminEncryptionPublicKey"],
        user,
        VECTOR["userPassword"],
        key_bag,
    )
    await _admit(tenant.get_directory().db, "directory")
    await tenant.refresh_directory(full=True)
    return tenant


async def test_the_reference_tenant_opens_and_reads_exactly_what_the_reference_reads(
    user: PrivateUserId, key_bag: KeyBag
) -> None:
    tenant = await _open(user, key_bag)
    try:
        directory = tenant.get_directory()
        user_key = VECTOR["user"]["userSigningKeyPair"]["publicKey"]
        assert directory.validate_public_signing_key(user_key)
        assert VECTOR["user"]["username"] in directory.get_usernames()
        assert directory.metadata_signature_floor() is not None
        await _admit(await tenant.open_db("userdirectory"), "userdirectory")
        contacts = await tenant.open_db("contacts")
        await _admit(contacts, "contacts")
        expected: dict[str, Any] = VECTOR["expected"]
        assert sorted(await contacts.get_all_document_ids()) == sorted(expected)
        for doc_id, value in expected.items():
            doc = await contacts.get_document(doc_id)
            assert doc.get_data() == value, doc_id
        attachment = VECTOR["attachment"]
        doc = await contacts.get_document(attachment["docId"])
        data = await doc.get_attachment(attachment["attachmentId"])
        assert hashlib.sha256(data).hexdigest() == attachment["sha256"]
    finally:
        await tenant.close()


async def test_a_document_under_the_named_key_needs_that_key(
    user: PrivateUserId, key_bag: KeyBag
) -> None:
    """The vector's ``secret`` document stays closed to a bag without the named key."""
    with kdf.lowered_pbkdf2_iterations(kdf.DEFAULT_PBKDF2_ITERATIONS):
        bag = KeyBag.load(key_bag.save(), user, VECTOR["userPassword"])
    assert bag.delete(VECTOR["tenantId"], VECTOR["namedKeyId"])
    tenant = await _open(user, bag)
    try:
        contacts = await tenant.open_db("contacts")
        await _admit(contacts, "contacts")
        secret = [d for d, v in VECTOR["expected"].items() if v.get("name") == "Secret Sam"]
        assert len(secret) == 1
        for doc_id, value in VECTOR["expected"].items():
            if doc_id in secret:
                with pytest.raises(KeyNotFoundError):
                    await contacts.get_document(doc_id)
            else:
                assert (await contacts.get_document(doc_id)).get_data() == value
    finally:
        await tenant.close()
