"""The store entry: signed, encrypted metadata plus ciphertext (spec §3, reference-formats §2).

An entry is immutable. Its ``receipt_order`` is the only field a store may change, and it is
store-local: it is assigned on arrival, never signed, and ignored on input.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from enum import StrEnum


class EntryType(StrEnum):
    """What an entry carries (reference-formats §2.1)."""

    DOC_CREATE = "doc_create"
    DOC_CHANGE = "doc_change"
    DOC_SNAPSHOT = "doc_snapshot"
    DOC_DELETE = "doc_delete"
    DOC_UNDELETE = "doc_undelete"
    PENDING_ATTACHMENT_UPLOAD = "pending_attachment_upload"
    ATTACHMENT_CHUNK = "attachment_chunk"

    @property
    def is_doc_entry(self) -> bool:
        """Doc entries carry ids of the ``<docId>_d_<fp>_<hash>`` form."""
        return self in _DOC_ENTRY_TYPES


_DOC_ENTRY_TYPES = frozenset(
    {
        EntryType.DOC_CREATE,
        EntryType.DOC_CHANGE,
        EntryType.DOC_SNAPSHOT,
        EntryType.DOC_DELETE,
        EntryType.DOC_UNDELETE,
    }
)

#: Entry types replayed to materialise a document (everything but snapshots and attachments).
REPLAY_ENTRY_TYPES = frozenset(
    {EntryType.DOC_CREATE, EntryType.DOC_CHANGE, EntryType.DOC_DELETE, EntryType.DOC_UNDELETE}
)

#: Layout version of the entry format this module reads and writes.
CURRENT_ENTRY_VERSION = 2


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """A signed pointer from a document entry to the tail of one attachment's chunk chain."""

    attachment_id: str
    last_chunk_id: str
    size: int


@dataclass(frozen=True, slots=True)
class EntryMetadata:
    """Everything about an entry except its ciphertext.

    ``metadata_signature`` covers the fields of the reference's signing layout and
    ``signature`` the ciphertext (``store.signing``), so a relay that holds no content key can
    still prove the author's fields were not altered on the way. ``entry_version`` 0 means the
    field was absent (the reference omits it on snapshots and chunks).
    """

    entry_type: EntryType
    id: str
    content_hash: str
    doc_id: str
    dependency_ids: tuple[str, ...]
    created_at: int
    created_by_public_key: str
    decryption_key_id: str
    original_size: int
    encrypted_size: int
    signature: bytes = b""
    metadata_signature: bytes = b""
    snapshot_head_hashes: tuple[str, ...] = ()
    snapshot_head_entry_ids: tuple[str, ...] = ()
    attachment_id: str | None = None
    attachment_refs: tuple[AttachmentRef, ...] = ()
    entry_version: int = CURRENT_ENTRY_VERSION
    receipt_order: int = 0

    def with_receipt_order(self, receipt_order: int) -> EntryMetadata:
        """Return a copy stamped with a store-local arrival order."""
        return dataclasses.replace(self, receipt_order=receipt_order)


@dataclass(frozen=True, slots=True)
class StoreEntry:
    """Metadata plus the encrypted payload it describes."""

    metadata: EntryMetadata
    encrypted_data: bytes

    @property
    def id(self) -> str:
        return self.metadata.id

    @property
    def doc_id(self) -> str:
        return self.metadata.doc_id

    @property
    def entry_type(self) -> EntryType:
        return self.metadata.entry_type

    def with_receipt_order(self, receipt_order: int) -> StoreEntry:
        """Return a copy whose metadata is stamped with a store-local arrival order."""
        return StoreEntry(self.metadata.with_receipt_order(receipt_order), self.encrypted_data)


#: The slot setters of ``EntryMetadata``, in field order, for ``assemble_metadata``.
(
    _set_entry_type,
    _set_id,
    _set_content_hash,
    _set_doc_id,
    _set_dependency_ids,
    _set_created_at,
    _set_created_by_public_key,
    _set_decryption_key_id,
    _set_original_size,
    _set_encrypted_size,
    _set_signature,
    _set_metadata_signature,
    _set_snapshot_head_hashes,
    _set_snapshot_head_entry_ids,
    _set_attachment_id,
    _set_attachment_refs,
    _set_entry_version,
    _set_receipt_order,
) = tuple(getattr(EntryMetadata, f.name).__set__ for f in dataclasses.fields(EntryMetadata))
_new = object.__new__


def assemble_metadata(
    entry_type: EntryType,
    entry_id: str,
    chash: str,
    doc_id: str,
    dependency_ids: tuple[str, ...],
    created_at: int,
    created_by_public_key: str,
    decryption_key_id: str,
    original_size: int,
    encrypted_size: int,
    signature: bytes,
    metadata_signature: bytes,
    snapshot_head_hashes: tuple[str, ...],
    snapshot_head_entry_ids: tuple[str, ...],
    attachment_id: str | None,
    attachment_refs: tuple[AttachmentRef, ...],
    entry_version: int,
    receipt_order: int,
) -> EntryMetadata:
    """``EntryMetadata(...)`` of fields already checked, by position, at half the cost.

    Every entry a store reads or a peer sends is built once; the frozen dataclass's
    ``__init__`` sets each field with ``object.__setattr__`` by name, while this fills the
    slots through their setters (``EntryMetadata`` has no ``__post_init__`` to skip).
    """
    meta: EntryMetadata = _new(EntryMetadata)
    _set_entry_type(meta, entry_type)
    _set_id(meta, entry_id)
    _set_content_hash(meta, chash)
    _set_doc_id(meta, doc_id)
    _set_dependency_ids(meta, dependency_ids)
    _set_created_at(meta, created_at)
    _set_created_by_public_key(meta, created_by_public_key)
    _set_decryption_key_id(meta, decryption_key_id)
    _set_original_size(meta, original_size)
    _set_encrypted_size(meta, encrypted_size)
    _set_signature(meta, signature)
    _set_metadata_signature(meta, metadata_signature)
    _set_snapshot_head_hashes(meta, snapshot_head_hashes)
    _set_snapshot_head_entry_ids(meta, snapshot_head_entry_ids)
    _set_attachment_id(meta, attachment_id)
    _set_attachment_refs(meta, attachment_refs)
    _set_entry_version(meta, entry_version)
    _set_receipt_order(meta, receipt_order)
    return meta


def content_hash(encrypted_data: bytes) -> str:
    """SHA-256 of the ciphertext, lowercase hex, no prefix (reference-formats §2.2)."""
    return hashlib.sha256(encrypted_data).hexdigest()
