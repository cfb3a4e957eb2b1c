"""Known answers for entry signatures: every entry the TypeScript MindooDB made verifies here,
and mindood signs the very bytes it signs (reference-formats §1.9)."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from store.entry import EntryType
from store.errors import EntryFormatError, EntrySignatureError
from store.json_codec import entry_from_json, entry_to_json
from store.signing import check_entry, signing_bytes
from tests.interop import reference_tenant, store_entries

STORES = sorted(name for name, entries in reference_tenant()["stores"].items() if entries)


def _all_raw() -> list[tuple[str, dict[str, object]]]:
    return [(s, raw) for s in STORES for raw in reference_tenant()["stores"][s]]


def test_the_vectors_cover_every_kind_of_entry_the_reference_writes() -> None:
    kinds = {raw["entryType"] for _, raw in _all_raw()}
    assert {"doc_create", "doc_change", "attachment_chunk"} <= kinds
    assert any(raw.get("attachmentRefs") for _, raw in _all_raw())
    assert {raw["decryptionKeyId"] for _, raw in _all_raw()} >= {"default", "$publicinfos"}


@pytest.mark.parametrize("store", STORES)
def test_every_reference_entry_passes_the_gate(store: str) -> None:
    for entry in store_entries(store):
        check_entry(entry)


@pytest.mark.parametrize("store", STORES)
def test_signing_bytes_are_the_bytes_the_reference_signed(store: str) -> None:
    """The metadataSignature verifies over our bytes alone, the legacy one over the payload."""
    for entry in store_entries(store):
        meta = entry.metadata
        key = load_pem_public_key(meta.created_by_public_key.encode())
        assert isinstance(key, Ed25519PublicKey)
        key.verify(meta.metadata_signature, signing_bytes(meta))
        key.verify(meta.signature, entry.encrypted_data)
        extended = signing_bytes(meta) + b"\x04"
        with pytest.raises(InvalidSignature):
            key.verify(meta.metadata_signature, extended)


def test_the_json_form_round_trips_to_the_same_object() -> None:
    """Field for field, but ``receiptOrder``: it is the sending store's, ignored on input."""
    for _, raw in _all_raw():
        back = entry_to_json(entry_from_json(raw))
        assert back == {k: v for k, v in raw.items() if k != "receiptOrder"}


def test_a_reference_entry_with_a_changed_signed_field_is_refused() -> None:
    entry = store_entries("contacts/docs")[1]
    for change in (
        {"created_at": entry.metadata.created_at + 1},
        {"decryption_key_id": "secret"},
        {"dependency_ids": ()},
    ):
        forged = dataclasses.replace(entry.metadata, **change)  # type: ignore[arg-type]
        with pytest.raises(EntrySignatureError):
            check_entry(dataclasses.replace(entry, metadata=forged))


def test_a_chunk_without_attachment_id_takes_it_from_its_id() -> None:
    raw = dict(reference_tenant()["stores"]["contacts/attachments"][0])
    expected = raw.pop("attachmentId")
    entry = entry_from_json(raw)
    assert entry.entry_type is EntryType.ATTACHMENT_CHUNK
    assert entry.metadata.attachment_id == expected
    check_entry(entry)


def test_signed_fields_mindood_cannot_keep_are_refused_not_dropped() -> None:
    raw = dict(reference_tenant()["stores"]["contacts/docs"][0])
    with pytest.raises(EntryFormatError, match="provenance"):
        entry_from_json({**raw, "provenance": {"sourceTenantId": "t"}})
    with pytest.raises(EntryFormatError, match="recipients"):
        entry_from_json({**raw, "recipients": {"epoch": 1, "wraps": [{"kind": "x"}]}})
    with pytest.raises(EntryFormatError, match="base64"):
        entry_from_json({**raw, "metadataSignature": "not base64!"})
    assert base64.b64decode(raw["metadataSignature"])  # the original is fine
