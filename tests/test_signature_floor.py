"""The tenant's ``requireMetadataSignatureSince`` decides which entries a sync admits with only
the legacy signature over the ciphertext, as the reference's ``requiresMetadataSignature`` does
(reference-formats §1.9): a legacy entry from before the floor passes, one from after it, a
versioned one without ``metadataSignature`` and any when no policy is known are refused."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from mindood.db import MindooDB
from mindood.tenant import CreatedTenant
from store.entry import StoreEntry
from tests.tenant_helpers import fast_kdf, in_memory_tenant_fixture


@pytest.fixture(autouse=True, scope="module")
def _fast_kdf() -> Iterator[None]:
    yield from fast_kdf()


created = in_memory_tenant_fixture()


async def _entries(db: MindooDB) -> list[StoreEntry]:
    store = db.get_store()
    metas = await store.find_new_entries([])
    return await store.get_entries([m.id for m in metas])


def _legacy(entry: StoreEntry, *, created_at: int, entry_version: int = 0) -> StoreEntry:
    """The entry as an older writer made it: no metadataSignature, its own createdAt (the legacy
    signature covers the ciphertext only, so it still verifies)."""
    meta = dataclasses.replace(
        entry.metadata,
        metadata_signature=b"",
        entry_version=entry_version,
        created_at=created_at,
    )
    return StoreEntry(meta, entry.encrypted_data)


async def test_legacy_entries_pass_only_before_the_policy_floor(created: CreatedTenant) -> None:
    tenant = created.tenant
    floor = tenant.get_directory().metadata_signature_floor()
    assert floor is not None
    source = await tenant.open_db("notes")
    await source.create_document({"title": "field report"})
    [entry] = await _entries(source)
    target = await tenant.open_db("notes-copy")

    before = await target.admit_entries([_legacy(entry, created_at=floor - 1)])
    assert [e.id for e in before.accepted] == [entry.id]

    after = await target.admit_entries([_legacy(entry, created_at=floor)])
    assert after.accepted == ()
    assert "metadataSignature" in after.rejected[0][1]

    versioned = await target.admit_entries([_legacy(entry, created_at=floor - 1, entry_version=2)])
    assert versioned.accepted == ()

    # A forged legacy signature is refused on either side of the floor.
    forged = _legacy(entry, created_at=floor - 1)
    forged = StoreEntry(
        dataclasses.replace(forged.metadata, signature=bytes(64)), forged.encrypted_data
    )
    assert (await target.admit_entries([forged])).accepted == ()


async def test_without_a_known_policy_every_entry_needs_its_metadata_signature(
    created: CreatedTenant,
) -> None:
    tenant = created.tenant
    source = await tenant.open_db("notes")
    await source.create_document({"title": "field report"})
    [entry] = await _entries(source)
    tenant.get_directory().trust.set_signature_floor(0)  # what a node holds before the policy
    target = await tenant.open_db("notes-copy")
    result = await target.admit_entries([_legacy(entry, created_at=1)])
    assert result.accepted == ()
    assert "metadataSignature" in result.rejected[0][1]
    # The entry as written (with its metadataSignature) is admitted.
    assert [e.id for e in (await target.admit_entries([entry])).accepted] == [entry.id]
