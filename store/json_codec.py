"""The TypeScript MindooDB's JSON form of an entry (``SerializedEntry``, reference-formats §2.5).

The reference moves entries as JSON: every metadata field under its camelCase name, the three
signatures and the payload as standard base64, absent fields left out. This is the form of its
HTTP API and of the interop vectors; mindood's own disk and wire form is the msgpack codec
(``store.codec``), so this module only translates, with the same strict checks.

Two reference fields have no place in mindood yet and are refused rather than dropped, because
they are signed (blocks 0x02 and 0x03 of the layout) and an entry without them could never
verify again: ``provenance`` (copy replay) and non-empty ``recipients`` (sealed documents).
Witness receipts (``receivedAt`` and friends) are not signed by the author and are not kept.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from store.codec import DEFAULT_LIMITS, CodecLimits, metadata_from_wire
from store.codec import METADATA_FORMAT as _FORMAT
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.errors import EntryFormatError
from store.ids import parse_attachment_chunk_id

_UNSUPPORTED = ("provenance",)


def _b64(value: Any, field: str, max_bytes: int) -> bytes:
    if value is None:
        return b""
    if not isinstance(value, str) or len(value) > (max_bytes * 4) // 3 + 4:
        raise EntryFormatError(f"{field} must be base64 text of at most {max_bytes} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EntryFormatError(f"{field} is not valid base64") from exc


def _b64_text(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def metadata_from_json(obj: Any, limits: CodecLimits = DEFAULT_LIMITS) -> EntryMetadata:
    """Build metadata from a ``SerializedEntryMetadata`` object; ``EntryFormatError`` if bad."""
    if not isinstance(obj, Mapping):
        raise EntryFormatError("an entry's metadata must be a JSON object")
    for name in _UNSUPPORTED:
        if obj.get(name) is not None:
            raise EntryFormatError(f"entries with {name!r} are not supported by mindood")
    recipients = obj.get("recipients")
    if isinstance(recipients, Mapping) and recipients.get("wraps"):
        raise EntryFormatError("sealed entries (recipients) are not supported by mindood")
    attachment_id = obj.get("attachmentId")
    if attachment_id is None and obj.get("entryType") == EntryType.ATTACHMENT_CHUNK.value:
        entry_id = obj.get("id")
        if isinstance(entry_id, str):
            attachment_id = parse_attachment_chunk_id(entry_id).attachment_id
    refs = obj.get("attachmentRefs") or []
    if not isinstance(refs, list) or not all(isinstance(r, Mapping) for r in refs):
        raise EntryFormatError("attachmentRefs must be a list of objects")
    wire = [
        _FORMAT,
        obj.get("entryType"),
        obj.get("id"),
        obj.get("contentHash"),
        obj.get("docId"),
        obj.get("dependencyIds"),
        obj.get("createdAt"),
        obj.get("createdByPublicKey"),
        obj.get("decryptionKeyId"),
        obj.get("originalSize"),
        obj.get("encryptedSize"),
        _b64(obj.get("signature"), "signature", 1024),
        _b64(obj.get("metadataSignature"), "metadataSignature", 1024),
        obj.get("snapshotHeadHashes") or [],
        obj.get("snapshotHeadEntryIds") or [],
        attachment_id,
        [[r.get("attachmentId"), r.get("lastChunkId"), r.get("size")] for r in refs],
        obj.get("entryVersion") or 0,
        0,
    ]
    return metadata_from_wire(wire, limits)


def entry_from_json(obj: Any, limits: CodecLimits = DEFAULT_LIMITS) -> StoreEntry:
    """Build an entry from a ``SerializedEntry`` object (metadata plus ``encryptedData``)."""
    meta = metadata_from_json(obj, limits)
    data = _b64(obj.get("encryptedData"), "encryptedData", limits.max_payload_bytes)
    return StoreEntry(meta, data)


def metadata_to_json(meta: EntryMetadata) -> dict[str, Any]:
    """The ``SerializedEntryMetadata`` object of ``meta``, absent fields left out as JS does."""
    out: dict[str, Any] = {
        "entryType": meta.entry_type.value,
        "id": meta.id,
        "contentHash": meta.content_hash,
        "docId": meta.doc_id,
        "dependencyIds": list(meta.dependency_ids),
        "createdAt": meta.created_at,
        "createdByPublicKey": meta.created_by_public_key,
        "decryptionKeyId": meta.decryption_key_id,
        "signature": _b64_text(meta.signature),
        "originalSize": meta.original_size,
        "encryptedSize": meta.encrypted_size,
    }
    if meta.receipt_order:
        out["receiptOrder"] = meta.receipt_order
    if meta.metadata_signature:
        out["metadataSignature"] = _b64_text(meta.metadata_signature)
    if meta.entry_type is EntryType.DOC_SNAPSHOT:
        out["snapshotHeadHashes"] = list(meta.snapshot_head_hashes)
        out["snapshotHeadEntryIds"] = list(meta.snapshot_head_entry_ids)
    if meta.attachment_id is not None:
        out["attachmentId"] = meta.attachment_id
    if meta.attachment_refs:
        out["attachmentRefs"] = [
            {"attachmentId": r.attachment_id, "lastChunkId": r.last_chunk_id, "size": r.size}
            for r in meta.attachment_refs
        ]
    if meta.entry_version:
        out["entryVersion"] = meta.entry_version
    return out


def entry_to_json(entry: StoreEntry) -> dict[str, Any]:
    """The ``SerializedEntry`` object of ``entry``."""
    out = metadata_to_json(entry.metadata)
    out["encryptedData"] = _b64_text(entry.encrypted_data)
    return out
