"""The msgpack codec of entries, shared by disk and wire.

A record is a msgpack array with a format tag first, so a reader can refuse a record from a
future layout with a clear message instead of misreading it::

    metadata = [2, type, id, contentHash, docId, [deps], createdAt, author, keyId,
                originalSize, encryptedSize, signature, metadataSignature, [snapHashes],
                [snapIds], attachmentId | nil, [[attachmentId, lastChunkId, size]...],
                entryVersion, receiptOrder]
    entry    = [metadata, encryptedData]

Decoding is strict: every field's type and size is checked, unknown tags, trailing bytes and
oversized records are refused with ``EntryFormatError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from store.entry import AttachmentRef, EntryMetadata, EntryType, StoreEntry, assemble_metadata
from store.errors import EntryFormatError
from store.ids import MAX_ID_LENGTH

#: 2 since entries carry the reference's two signatures (1 signed a layout of mindood's own).
METADATA_FORMAT = 2
_METADATA_FIELDS = 19


@dataclass(frozen=True, slots=True)
class CodecLimits:
    """Upper bounds a decoder enforces; a record past any of them is refused, not truncated."""

    max_payload_bytes: int = 64 * 1024 * 1024
    max_dependencies: int = 4096
    max_attachment_refs: int = 4096
    max_key_text: int = 8192
    max_short_text: int = 256
    max_hash_text: int = 128

    @property
    def max_record_bytes(self) -> int:
        """The largest encoded entry these limits allow (payload plus generous metadata)."""
        return self.max_payload_bytes + 4 * 1024 * 1024


DEFAULT_LIMITS = CodecLimits()
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


#: Entry types as plain ``str``: an enum's ``.value`` is a slow descriptor, and the fields
#: below are built for every entry a store keeps or a peer sends.
ENTRY_TYPE_TEXT = {entry_type: entry_type.value for entry_type in EntryType}


def metadata_fields(meta: EntryMetadata, receipt_order: int) -> tuple[Any, ...]:
    """The metadata array's fields in order (module docstring), ``receipt_order`` last.

    Sequences stay tuples (msgpack packs them as arrays, like lists), so nothing is copied.
    """
    refs = meta.attachment_refs
    return (
        METADATA_FORMAT,
        ENTRY_TYPE_TEXT[meta.entry_type],
        meta.id,
        meta.content_hash,
        meta.doc_id,
        meta.dependency_ids,
        meta.created_at,
        meta.created_by_public_key,
        meta.decryption_key_id,
        meta.original_size,
        meta.encrypted_size,
        meta.signature,
        meta.metadata_signature,
        meta.snapshot_head_hashes,
        meta.snapshot_head_entry_ids,
        meta.attachment_id,
        [(r.attachment_id, r.last_chunk_id, r.size) for r in refs] if refs else (),
        meta.entry_version,
        receipt_order,
    )


def metadata_to_wire(meta: EntryMetadata) -> list[Any]:
    """The msgpack-ready array form of metadata (see module docstring)."""
    return list(metadata_fields(meta, meta.receipt_order))


def entry_to_wire(entry: StoreEntry) -> list[Any]:
    """The msgpack-ready array form of an entry."""
    return [metadata_to_wire(entry.metadata), entry.encrypted_data]


def encode_metadata(meta: EntryMetadata) -> bytes:
    return _pack(metadata_to_wire(meta))


def encode_entry(entry: StoreEntry) -> bytes:
    return _pack(entry_to_wire(entry))


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def decode_metadata(data: bytes, limits: CodecLimits = DEFAULT_LIMITS) -> EntryMetadata:
    """Parse one encoded metadata record; raise ``EntryFormatError`` on anything malformed."""
    return metadata_from_wire(_unpack(data, limits, max_bin=1024), limits)


def decode_entry(data: bytes, limits: CodecLimits = DEFAULT_LIMITS) -> StoreEntry:
    """Parse one encoded entry; raise ``EntryFormatError`` on anything malformed."""
    return entry_from_wire(_unpack(data, limits, max_bin=limits.max_payload_bytes), limits)


def _unpack(data: bytes, limits: CodecLimits, max_bin: int) -> Any:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EntryFormatError("an encoded record must be bytes")
    if len(data) > limits.max_record_bytes:
        raise EntryFormatError(f"record of {len(data)} bytes exceeds the limit")
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=max_bin,
            max_str_len=max(limits.max_key_text, MAX_ID_LENGTH),
            max_array_len=max(limits.max_dependencies, limits.max_attachment_refs, 32),
            max_map_len=0,
            max_ext_len=0,
        )
    except (
        ValueError,
        TypeError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        raise EntryFormatError(f"not a valid msgpack record: {exc}") from exc


def entry_from_wire(obj: Any, limits: CodecLimits = DEFAULT_LIMITS) -> StoreEntry:
    """Validate the array form of an entry (as decoded from msgpack) and build it."""
    if not isinstance(obj, list) or len(obj) != 2:
        raise EntryFormatError("an entry must be a 2-element array [metadata, data]")
    meta = metadata_from_wire(obj[0], limits)
    data = _bytes(obj[1], "encryptedData", limits.max_payload_bytes)
    return StoreEntry(meta, data)


def metadata_from_wire(obj: Any, limits: CodecLimits = DEFAULT_LIMITS) -> EntryMetadata:
    """Validate the array form of metadata (as decoded from msgpack) and build it."""
    if not isinstance(obj, list) or not obj:
        raise EntryFormatError("metadata must be a non-empty array")
    if obj[0] == 1 and not isinstance(obj[0], bool):
        raise EntryFormatError(
            "metadata format 1 (an earlier mindood, signed in a layout MindooDB cannot verify) "
            "is no longer accepted"
        )
    if obj[0] != METADATA_FORMAT or isinstance(obj[0], bool):
        raise EntryFormatError(f"unknown metadata format tag {obj[0]!r}")
    if len(obj) != _METADATA_FIELDS:
        raise EntryFormatError(f"metadata must have {_METADATA_FIELDS} fields, got {len(obj)}")
    return _plain_metadata(obj, limits) or _checked_metadata(obj, limits)


def _checked_metadata(obj: list[Any], limits: CodecLimits) -> EntryMetadata:
    """Every field checked by its helper, which names what is wrong (any record)."""
    (
        _tag,
        entry_type,
        entry_id,
        chash,
        doc_id,
        deps,
        created_at,
        author,
        key_id,
        original_size,
        encrypted_size,
        signature,
        metadata_signature,
        snap_hashes,
        snap_ids,
        attachment_id,
        refs,
        entry_version,
        receipt_order,
    ) = obj
    try:
        etype = EntryType(_text(entry_type, "entryType", 64))
    except ValueError as exc:
        raise EntryFormatError(f"unknown entry type {entry_type!r}") from exc
    return EntryMetadata(
        entry_type=etype,
        id=_text(entry_id, "id", MAX_ID_LENGTH),
        content_hash=_text(chash, "contentHash", limits.max_hash_text),
        doc_id=_text(doc_id, "docId", MAX_ID_LENGTH),
        dependency_ids=_texts(deps, "dependencyIds", limits.max_dependencies, MAX_ID_LENGTH),
        created_at=_int(created_at, "createdAt"),
        created_by_public_key=_text(author, "createdByPublicKey", limits.max_key_text),
        decryption_key_id=_text(key_id, "decryptionKeyId", limits.max_short_text),
        original_size=_size(original_size, "originalSize"),
        encrypted_size=_size(encrypted_size, "encryptedSize"),
        signature=_bytes(signature, "signature", 1024),
        metadata_signature=_bytes(metadata_signature, "metadataSignature", 1024),
        snapshot_head_hashes=_texts(
            snap_hashes, "snapshotHeadHashes", limits.max_dependencies, limits.max_hash_text
        ),
        snapshot_head_entry_ids=_texts(
            snap_ids, "snapshotHeadEntryIds", limits.max_dependencies, MAX_ID_LENGTH
        ),
        attachment_id=None
        if attachment_id is None
        else _text(attachment_id, "attachmentId", limits.max_short_text),
        attachment_refs=_refs(refs, limits),
        entry_version=_size(entry_version, "entryVersion"),
        receipt_order=_size(receipt_order, "receiptOrder"),
    )


#: Entry types by their text, for the fast path (an enum call costs more than a lookup).
_ENTRY_TYPES = {entry_type.value: entry_type for entry_type in EntryType}


def _plain_metadata(obj: list[Any], limits: CodecLimits) -> EntryMetadata | None:
    """The common record (exact ``str``/``int``/``bytes`` fields, no snapshot heads, no
    attachment refs), checked with the same bounds as the field helpers but without a call
    per field; None for anything else, which the helpers then check one by one (and explain).
    Every entry a sync moves is decoded here, twice (scan page, then the entry itself)."""
    (
        _tag,
        entry_type,
        entry_id,
        chash,
        doc_id,
        deps,
        created_at,
        author,
        key_id,
        original_size,
        encrypted_size,
        signature,
        metadata_signature,
        snap_hashes,
        snap_ids,
        attachment_id,
        refs,
        entry_version,
        receipt_order,
    ) = obj
    etype = _ENTRY_TYPES.get(entry_type) if type(entry_type) is str else None
    if (
        etype is None
        or type(entry_id) is not str
        or len(entry_id) > MAX_ID_LENGTH
        or type(chash) is not str
        or len(chash) > limits.max_hash_text
        or type(doc_id) is not str
        or len(doc_id) > MAX_ID_LENGTH
        or type(deps) is not list
        or len(deps) > limits.max_dependencies
        or type(created_at) is not int
        or not _INT64_MIN <= created_at <= _INT64_MAX
        or type(author) is not str
        or len(author) > limits.max_key_text
        or type(key_id) is not str
        or len(key_id) > limits.max_short_text
        or type(original_size) is not int
        or not 0 <= original_size <= _INT64_MAX
        or type(encrypted_size) is not int
        or not 0 <= encrypted_size <= _INT64_MAX
        or type(signature) is not bytes
        or len(signature) > 1024
        or type(metadata_signature) is not bytes
        or len(metadata_signature) > 1024
        or snap_hashes != []
        or snap_ids != []
        or refs != []
        or not (
            attachment_id is None
            or (type(attachment_id) is str and len(attachment_id) <= limits.max_short_text)
        )
        or type(entry_version) is not int
        or not 0 <= entry_version <= _INT64_MAX
        or type(receipt_order) is not int
        or not 0 <= receipt_order <= _INT64_MAX
    ):
        return None
    for dep in deps:
        if type(dep) is not str or len(dep) > MAX_ID_LENGTH:
            return None
    return assemble_metadata(
        etype,
        entry_id,
        chash,
        doc_id,
        tuple(deps),
        created_at,
        author,
        key_id,
        original_size,
        encrypted_size,
        signature,
        metadata_signature,
        (),
        (),
        attachment_id,
        (),
        entry_version,
        receipt_order,
    )


def _text(value: Any, field: str, max_len: int) -> str:
    if not isinstance(value, str):
        raise EntryFormatError(f"{field} must be a string")
    if len(value) > max_len:
        raise EntryFormatError(f"{field} is longer than {max_len} characters")
    return value


def _texts(value: Any, field: str, max_items: int, max_len: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise EntryFormatError(f"{field} must be an array")
    if len(value) > max_items:
        raise EntryFormatError(f"{field} has more than {max_items} items")
    return tuple(_text(item, field, max_len) for item in value)


def _int(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise EntryFormatError(f"{field} must be an integer")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise EntryFormatError(f"{field} is out of the int64 range")
    return value


def _size(value: Any, field: str) -> int:
    number = _int(value, field)
    if number < 0:
        raise EntryFormatError(f"{field} must not be negative")
    return number


def _bytes(value: Any, field: str, max_len: int) -> bytes:
    if not isinstance(value, bytes):
        raise EntryFormatError(f"{field} must be binary")
    if len(value) > max_len:
        raise EntryFormatError(f"{field} is longer than {max_len} bytes")
    return value


def _refs(value: Any, limits: CodecLimits) -> tuple[AttachmentRef, ...]:
    if not isinstance(value, list) or len(value) > limits.max_attachment_refs:
        raise EntryFormatError("attachmentRefs must be an array within the limit")
    refs: list[AttachmentRef] = []
    for item in value:
        if not isinstance(item, list) or len(item) != 3:
            raise EntryFormatError("an attachment ref must be [attachmentId, lastChunkId, size]")
        refs.append(
            AttachmentRef(
                _text(item[0], "attachmentRefs.attachmentId", limits.max_short_text),
                _text(item[1], "attachmentRefs.lastChunkId", MAX_ID_LENGTH),
                _size(item[2], "attachmentRefs.size"),
            )
        )
    return tuple(refs)


def encode_metadata_list(items: Sequence[EntryMetadata]) -> list[list[Any]]:
    """Array forms of many metadata records, for embedding in a larger msgpack message."""
    return [metadata_to_wire(meta) for meta in items]
