"""Coordinated purge: an admin's request erases history on every node that syncs the directory."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mindood import InMemoryStoreFactory, OnDiskStoreFactory, TenantFactory
from mindood.db import DocumentPurgedError, MindooDB, MindooDoc, OpenTrust
from mindood.errors import NotAdminError
from mindood.tenant import Tenant
from mindood.tenant.purge import REGISTRY_META_NAME, PurgeRegistry
from store.memory import InMemoryStore
from tests.db_helpers import KeySigner, StaticKeys
from tests.tenant_helpers import TENANT_ID, admin_creds, fast_kdf, identity, new_tenant, password

_fast = pytest.fixture(autouse=True, scope="module")(fast_kdf)


async def _join(factory: TenantFactory, admin_side: Tenant, name: str) -> Tenant:
    request = factory.create_join_request(identity(name), label=f"{name}'s laptop")
    response = await admin_side.approve_join_request(request, **admin_creds())
    joined = await factory.join_tenant(response, user=identity(name), password=password(name))
    return joined.tenant


async def _sync_directory(into: Tenant, source: Tenant) -> None:
    await into.get_directory().db.pull_changes_from(source.get_directory().db)
    await into.refresh_directory()


def _bystander() -> MindooDB:
    """A peer that copied the database before the purge and never syncs the directory."""
    return MindooDB(
        tenant_id=TENANT_ID,
        db_id="crm",
        store=InMemoryStore("stale-docs"),
        attachment_store=InMemoryStore("stale-files"),
        signer=KeySigner(),
        keys=StaticKeys(),
        trust=OpenTrust(),
    )


async def _entries(db: MindooDB, doc_id: str) -> int:
    docs = await db.get_store().find_new_entries_for_doc([], doc_id)
    files = db.get_attachment_store()
    chunks = await files.find_new_entries_for_doc([], doc_id) if files else []
    return len(docs) + len(chunks)


async def test_a_purge_request_erases_history_on_a_second_node_and_stays_erased(
    tmp_path: Path,
) -> None:
    created = await new_tenant(InMemoryStoreFactory())
    alice = created.tenant
    bob_factory = TenantFactory(OnDiskStoreFactory(tmp_path / "bob"))
    try:
        await _second_node_flow(alice, bob_factory, tmp_path)
    finally:
        await bob_factory.store_factory.close()


async def _second_node_flow(alice: Tenant, bob_factory: TenantFactory, tmp_path: Path) -> None:
    bob = await _join(bob_factory, alice, "bob")
    await _sync_directory(bob, alice)

    alice_crm = await alice.open_db("crm")
    jane = await alice_crm.create_document({"name": "Jane Doe", "email": "jane@example.com"})

    async def attach(d: MindooDoc) -> None:
        await d.add_attachment(b"scan of an ID card" * 1000, "id.png", "image/png")

    jane = await alice_crm.change_doc(jane, attach)
    await alice_crm.change_doc(jane, lambda d: d.get_data().update(phone="555-0100"))
    keep = await alice_crm.create_document({"name": "Keep Me"})
    stale = _bystander()
    await stale.pull_changes_from(alice_crm)
    bob_crm = await bob.open_db("crm")
    await bob_crm.pull_changes_from(alice_crm)
    held = await _entries(bob_crm, jane.get_id())
    assert held == 3 + 1  # create and two changes, one attachment chunk
    bob_copy = await bob_crm.get_document(jane.get_id())
    assert await bob_copy.get_attachment(bob_copy.get_attachments()[0].attachment_id)

    with pytest.raises(NotAdminError):
        await alice.publish_purge_request(
            "crm", [jane.get_id()], admin_signing_key=identity("bob"), admin_password="bob-pw"
        )
    request = await alice.publish_purge_request(
        "crm", [jane.get_id()], reason="GDPR art. 17 request #42", **admin_creds()
    )
    # The issuing node applied it at once.
    assert await _entries(alice_crm, jane.get_id()) == 0
    with pytest.raises(DocumentPurgedError):
        await alice_crm.get_document(jane.get_id())

    # The second node still has everything until its directory syncs; then it is gone there too.
    assert await _entries(bob_crm, jane.get_id()) == held
    await _sync_directory(bob, alice)
    assert await _entries(bob_crm, jane.get_id()) == 0
    assert (await bob_crm.get_document(keep.get_id())).get_data() == {"name": "Keep Me"}
    assert await bob_crm.find_document(jane.get_id()) is None
    [record] = bob.get_purge_records()
    assert (record.request_id, record.db_id, record.doc_ids) == (
        request.request_id,
        "crm",
        (jane.get_id(),),
    )
    assert record.entries_removed == held and record.skipped is None
    assert bob.get_directory().get_purge_reason(bob.get_requested_purges()[0]) == (
        "GDPR art. 17 request #42"
    )

    # A peer offering the entries again is refused, pulled from or pushing, docs and chunks.
    pulled = await bob_crm.pull_changes_from(stale)
    assert pulled.transferred == 0
    assert len(pulled.rejected) == held
    assert all("purged" in reason for _, reason in pulled.rejected)
    pushed = await stale.push_changes_to(bob_crm)
    assert pushed.transferred == 0 and len(pushed.rejected) == held
    assert await _entries(bob_crm, jane.get_id()) == 0
    with pytest.raises(DocumentPurgedError):
        await bob_crm.change_doc(jane.get_id(), lambda d: d.get_data().update(name="back"))

    # After a restart the node still knows what it purged, and still refuses it.
    await bob.save_session(password("bob"))
    await bob.close()
    await bob_factory.store_factory.close()
    reopened_factory = TenantFactory(OnDiskStoreFactory(tmp_path / "bob"))
    try:
        await _after_restart(reopened_factory, stale, jane.get_id(), keep.get_id(), held)
    finally:
        await reopened_factory.store_factory.close()


async def _after_restart(
    factory: TenantFactory, stale: MindooDB, jane_id: str, keep_id: str, held: int
) -> None:
    reopened = await factory.load_session(TENANT_ID, password("bob"))
    assert reopened is not None
    blob = await factory.store_factory.read_meta(TENANT_ID, REGISTRY_META_NAME)
    assert blob is not None and json.loads(blob)["purgedDocIds"] == {"crm": [jane_id]}
    crm = await reopened.open_db("crm")
    again = await crm.pull_changes_from(await _copy(stale))
    assert again.transferred == 0 and len(again.rejected) == held
    assert await _entries(crm, jane_id) == 0
    assert (await crm.get_document(keep_id)).get_data() == {"name": "Keep Me"}
    await reopened.close()


async def _copy(source: MindooDB) -> MindooDB:
    copy = _bystander()
    await copy.pull_changes_from(source)
    return copy


async def test_the_directory_follower_applies_purges_without_being_asked() -> None:
    factory = TenantFactory(InMemoryStoreFactory())
    created = await new_tenant(factory.store_factory)
    alice = created.tenant
    bob_factory = TenantFactory(InMemoryStoreFactory())
    bob = await _join(bob_factory, alice, "bob")
    await _sync_directory(bob, alice)
    alice_crm, bob_crm = await alice.open_db("crm"), await bob.open_db("crm")
    doc = await alice_crm.create_document({"secret": True})
    await bob_crm.pull_changes_from(alice_crm)
    await alice.publish_purge_request("crm", [doc.get_id()], **admin_creds())

    # Only the directory entries move; bob's directory notices them on its own.
    purged = asyncio.Event()
    bob_crm.on_change(lambda ids: purged.set() if doc.get_id() in ids else None)
    await bob.get_directory().db.pull_changes_from(alice.get_directory().db)
    async with asyncio.timeout(10):
        await purged.wait()
    assert await _entries(bob_crm, doc.get_id()) == 0
    assert len(bob.get_purge_records()) == 1
    assert bob.get_purged_doc_ids("crm") == {doc.get_id()}
    await bob.close()
    await alice.close()


async def test_requests_are_validated() -> None:
    created = await new_tenant(InMemoryStoreFactory())
    tenant = created.tenant
    for db_id, doc_ids in (("", ["a"]), ("crm", []), ("crm", "abc"), ("crm", ["bad id"])):
        with pytest.raises(ValueError):
            await tenant.publish_purge_request(db_id, doc_ids, **admin_creds())
    # A request for a database this node never opened is applied too (it may sync it later).
    request = await tenant.publish_purge_request("archive", ["gone_doc"], **admin_creds())
    assert [r.request_id for r in tenant.get_purge_records()] == [request.request_id]
    archive = await tenant.open_db("archive")
    assert archive.is_purged("gone_doc")
    with pytest.raises(DocumentPurgedError):
        await archive.create_document({"x": 1}, doc_id="gone_doc")


async def test_a_damaged_registry_is_rebuilt_from_the_directory() -> None:
    factory = InMemoryStoreFactory()
    created = await new_tenant(factory)
    tenant = created.tenant
    request = await tenant.publish_purge_request("crm", ["some_doc"], **admin_creds())
    await factory.write_meta(TENANT_ID, REGISTRY_META_NAME, b"\x00not json")
    registry = PurgeRegistry(factory, TENANT_ID)
    await registry.load()
    assert registry.records() == []
    # A tenant opened on that state applies the request again (harmless) and records it.
    again = await TenantFactory(factory).open_tenant(
        TENANT_ID,
        tenant.admin_signing_public_key,
        tenant.admin_encryption_public_key,
        tenant.user,
        None,
        created.key_bag,
    )
    assert [r.request_id for r in again.get_purge_records()] == [request.request_id]
    assert (await again.open_db("crm")).is_purged("some_doc")
