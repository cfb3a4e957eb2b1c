"""The bytes an author signs, and checking an entry with public keys only.

Every entry carries two Ed25519 signatures by ``createdByPublicKey``, exactly as the TypeScript
MindooDB makes them (reference-formats §1.9), because the reference rebuilds the signed bytes
from the fields and any byte of our own would make every mindood entry unverifiable there:

* ``metadataSignature`` over these bytes (all integers big-endian, ``str(x) = u32(len) ||
  UTF-8``)::

    0x01
    str(entryType) str(id) str(docId) str(decryptionKeyId)
    int64(createdAt)
    u32(len(dependencyIds)) str(dep)...            (array order)
    str(contentHash) str(createdByPublicKey)
    -- only when attachmentRefs is non-empty, sorted by attachmentId:
    u32(n) then per ref: str(attachmentId) str(lastChunkId) int64(size)

  (The reference's provenance ``0x02`` and recipients ``0x03`` blocks follow only when those
  fields are set; mindood writes neither.)
* ``signature``, the legacy one, over the ciphertext alone.

Verification follows the reference: ``metadataSignature`` when present; without it the entry
is refused once the tenant's floor (``requireMetadataSignatureSince``) covers it, and checked
against the legacy signature otherwise. Fields outside the layout are checked, not signed:
``encryptedSize`` must equal the ciphertext's length, the content hash covers the ciphertext,
and the rest (sizes, snapshot heads, the chunk's attachment id, which its id repeats) is
advisory. ``receipt_order`` is store-local.
"""

from __future__ import annotations

import dataclasses
import hashlib
import operator
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from store.entry import AttachmentRef, EntryMetadata, EntryType, StoreEntry
from store.errors import EntryFormatError, EntryIntegrityError, EntrySignatureError
from store.ids import check_id, parse_attachment_chunk_id, parse_doc_entry_id

ENTRY_SIGNATURE_LAYOUT_VERSION = 0x01
#: ``requireMetadataSignatureSince`` when a tenant sets none: every entry needs one.
REQUIRED_SINCE_ALWAYS = 0
ED25519_SIGNATURE_LENGTH = 64

#: What follows ``<docId>_d_`` in a doc entry id (``store.ids``): fingerprint, "_", change hash.
_DOC_ENTRY_REST = re.compile(r"[0-9a-f]+_.+", re.DOTALL)
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return _U32.pack(len(raw)) + raw


def _i64(value: int) -> bytes:
    try:
        return _I64.pack(value)
    except struct.error as exc:
        raise EntryFormatError(f"integer out of int64 range: {value}") from exc


_VERSION = bytes([ENTRY_SIGNATURE_LAYOUT_VERSION])


def signing_bytes(meta: EntryMetadata) -> bytes:
    """The exact bytes the author's Ed25519 key signs for this metadata."""
    return signing_bytes_of(
        meta.entry_type,
        meta.id,
        meta.doc_id,
        meta.decryption_key_id,
        meta.created_at,
        meta.dependency_ids,
        meta.content_hash,
        meta.created_by_public_key,
        meta.attachment_refs,
    )


def signing_bytes_of(
    entry_type: EntryType,
    entry_id: str,
    doc_id: str,
    decryption_key_id: str,
    created_at: int,
    dependency_ids: Sequence[str],
    content_hash: str,
    created_by_public_key: str,
    attachment_refs: Sequence[AttachmentRef] = (),
) -> bytes:
    """``signing_bytes`` of metadata with these fields, for an author who signs before the
    metadata is built (``mindood.db.entries``): one layout, so both give the same bytes."""
    parts = [
        _VERSION,
        _str(str(entry_type)),
        _str(entry_id),
        _str(doc_id),
        _str(decryption_key_id),
        _i64(created_at),
        _U32.pack(len(dependency_ids)),
        *map(_str, dependency_ids),
        _str(content_hash),
        _str(created_by_public_key),
    ]
    if attachment_refs:
        refs = sorted(attachment_refs, key=lambda ref: ref.attachment_id)
        parts.append(_U32.pack(len(refs)))
        for ref in refs:
            parts += (_str(ref.attachment_id), _str(ref.last_chunk_id), _i64(ref.size))
    return b"".join(parts)


#: ``EntryMetadata``'s fields in order, and where the two signatures sit among them.
_FIELDS = tuple(f.name for f in dataclasses.fields(EntryMetadata))
_FIELD_VALUES = operator.attrgetter(*_FIELDS)
_SIGNATURE_AT = _FIELDS.index("signature")
_METADATA_SIGNATURE_AT = _FIELDS.index("metadata_signature")


def sign_entry(meta: EntryMetadata, data: bytes, sign: Callable[[bytes], bytes]) -> StoreEntry:
    """The entry with both of its author's signatures (module docstring)."""
    return with_signatures(meta, data, sign(signing_bytes(meta)), sign(data))


def with_signatures(
    meta: EntryMetadata, data: bytes, metadata_signature: bytes, signature: bytes
) -> StoreEntry:
    """``meta`` carrying the two signatures, with its payload.

    The same as ``dataclasses.replace``, at half its cost: every entry a node writes passes here.
    """
    values = list(_FIELD_VALUES(meta))
    values[_METADATA_SIGNATURE_AT] = metadata_signature
    values[_SIGNATURE_AT] = signature
    return StoreEntry(EntryMetadata(*values), data)


class PublicKeyCache:
    """Parsed Ed25519 public keys by PEM text: parsing costs more than verifying."""

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[str, Ed25519PublicKey] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, pem: str) -> Ed25519PublicKey:
        with self._lock:
            key = self._keys.get(pem)
            if key is not None:
                self._keys.move_to_end(pem)
                return key
        try:
            loaded = load_pem_public_key(pem.encode("ascii"))
        except (ValueError, UnicodeEncodeError, TypeError) as exc:
            raise EntryFormatError("createdByPublicKey is not a PEM public key") from exc
        if not isinstance(loaded, Ed25519PublicKey):
            raise EntryFormatError("createdByPublicKey is not an Ed25519 key")
        with self._lock:
            self._keys[pem] = loaded
            if len(self._keys) > self._capacity:
                self._keys.popitem(last=False)
        return loaded


_DEFAULT_KEYS = PublicKeyCache()


def _verify(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def needs_metadata_signature(meta: EntryMetadata, required_since: int | None) -> bool:
    """Whether the tenant's floor covers this entry (reference: ``requiresMetadataSignature``).

    A versioned entry's trusted time is "now" (it cannot claim a past slot), which is past any
    floor already set; only a legacy entry (no ``entryVersion``) may predate the floor.
    """
    if required_since is None:
        return False
    return meta.entry_version > 0 or meta.created_at >= required_since


def verify_signature(
    meta: EntryMetadata,
    data: bytes,
    keys: PublicKeyCache | None = None,
    *,
    required_since: int | None = REQUIRED_SINCE_ALWAYS,
) -> None:
    """Raise ``EntrySignatureError`` unless the entry's author signature verifies.

    ``required_since`` is the tenant's ``requireMetadataSignatureSince`` (None: not required).
    """
    key = (keys or _DEFAULT_KEYS).get(meta.created_by_public_key)
    if meta.metadata_signature:
        if len(meta.metadata_signature) != ED25519_SIGNATURE_LENGTH or not _verify(
            key, meta.metadata_signature, signing_bytes(meta)
        ):
            raise EntrySignatureError(
                f"entry {meta.id[:80]!r} has an invalid author signature (metadataSignature)"
            )
        return
    if needs_metadata_signature(meta, required_since):
        raise EntrySignatureError(
            f"entry {meta.id[:80]!r} has no metadataSignature, which this tenant requires "
            "(entries of mindood before 0.2 signed another layout and are not accepted)"
        )
    if len(meta.signature) != ED25519_SIGNATURE_LENGTH or not _verify(key, meta.signature, data):
        raise EntrySignatureError(
            f"entry {meta.id[:80]!r} has an invalid author signature (legacy signature)"
        )


def _names_doc(entry_id: str, doc_id: str) -> bool:
    """``parse_doc_entry_id(entry_id).doc_id == doc_id``, without the parse in the usual case.

    Every stored and every received entry passes here. When the id is ``<doc_id>_d_<rest>``
    and no later ``_d_`` could start another split (none from the separator's ``d`` on), the
    parser's greedy split is this one, so only ``<rest>``'s shape needs checking.
    """
    split = len(doc_id)
    if (
        entry_id.startswith(doc_id)
        and entry_id[split : split + 3] == "_d_"
        and "_d_" not in entry_id[split + 1 :]
        and _DOC_ENTRY_REST.fullmatch(entry_id, split + 3)
    ):
        return True
    return parse_doc_entry_id(entry_id).doc_id == doc_id


def check_metadata_consistency(meta: EntryMetadata) -> None:
    """The checks that need neither payload nor key: the id must agree with type and doc id."""
    check_id(meta.id)
    check_id(meta.doc_id)
    if meta.entry_type.is_doc_entry:
        if not _names_doc(meta.id, meta.doc_id):
            raise EntryIntegrityError(f"entry {meta.id[:80]!r}: id names another document")
        if meta.attachment_id is not None:
            raise EntryIntegrityError(f"entry {meta.id[:80]!r}: doc entries carry no attachment id")
    elif meta.entry_type is EntryType.ATTACHMENT_CHUNK:
        parsed_chunk = parse_attachment_chunk_id(meta.id)
        if parsed_chunk.doc_id != meta.doc_id or parsed_chunk.attachment_id != meta.attachment_id:
            raise EntryIntegrityError(f"chunk {meta.id[:80]!r}: id disagrees with its metadata")
    if meta.entry_type is not EntryType.DOC_SNAPSHOT and (
        meta.snapshot_head_hashes or meta.snapshot_head_entry_ids
    ):
        raise EntryIntegrityError(f"entry {meta.id[:80]!r}: only snapshots carry snapshot heads")
    if meta.original_size < 0 or meta.encrypted_size < 0:
        raise EntryIntegrityError(f"entry {meta.id[:80]!r}: negative size")


def check_entry(
    entry: StoreEntry,
    keys: PublicKeyCache | None = None,
    *,
    required_since: int | None = REQUIRED_SINCE_ALWAYS,
) -> None:
    """The one gate every entry from outside passes: consistency, content hash, signature."""
    meta = entry.metadata
    check_metadata_consistency(meta)
    if meta.encrypted_size != len(entry.encrypted_data):
        raise EntryIntegrityError(f"entry {meta.id[:80]!r}: encryptedSize does not match payload")
    if hashlib.sha256(entry.encrypted_data).hexdigest() != meta.content_hash:
        raise EntryIntegrityError(f"entry {meta.id[:80]!r}: contentHash does not match payload")
    verify_signature(meta, entry.encrypted_data, keys, required_since=required_since)
