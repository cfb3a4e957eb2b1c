"""The website's examples, translated line by line into snake_case, run as written."""

from __future__ import annotations

from mindood import InMemoryStoreFactory, TenantFactory
from mindood.db import MindooDB, MindooDoc
from tests.tenant_helpers import new_tenant


async def test_contacts_sync_example_converges() -> None:
    """Website "Sync code": pull, change, push between two databases, then both converge."""
    tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    other_side = await TenantFactory(InMemoryStoreFactory()).open_tenant(
        tenant.tenant_id,
        tenant.admin_signing_public_key,
        tenant.admin_encryption_public_key,
        tenant.user,
        None,
        tenant.key_bag,
    )
    await other_side.get_directory().db.pull_changes_from(tenant.get_directory().db)
    await other_side.refresh_directory()
    contacts_db1: MindooDB = await tenant.open_db("contacts")
    contacts_db2: MindooDB = await other_side.open_db("contacts")

    doc = await contacts_db1.create_document()

    def fill(d: MindooDoc) -> None:
        data = d.get_data()
        data["name"] = "John Doe"
        data["email"] = "john.doe@example.com"

    await contacts_db1.change_doc(doc, fill)
    await contacts_db2.pull_changes_from(contacts_db1.get_store())

    def rename(d: MindooDoc) -> None:
        d.get_data()["name"] = "John Smith"

    await contacts_db2.change_doc(await contacts_db2.get_document(doc.get_id()), rename)
    await contacts_db2.push_changes_to(contacts_db1.get_store())
    await contacts_db1.sync_store_changes()

    expected = {"name": "John Smith", "email": "john.doe@example.com"}
    assert (await contacts_db1.get_document(doc.get_id())).get_data() == expected
    assert (await contacts_db2.get_document(doc.get_id())).get_data() == expected
