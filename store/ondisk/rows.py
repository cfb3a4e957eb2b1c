"""Entries as table rows, and the check that a row read back is the row that was written.

The metadata is kept whole in the codec's msgpack layout (with receipt order 0: the row's
``receipt_order`` is the truth) next to the columns the indexes need. ``checksum`` is a CRC-32
of that blob seeded with the receipt order, so a damaged blob or rowid is caught on read; the
columns are then compared with the decoded blob, so a damaged index column is caught too.
Metadata was fully validated before it was written, so decoding a row whose checksum holds can
skip the codec's strict field checks (about twice as fast).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import msgpack

from store.codec import ENTRY_TYPE_TEXT, METADATA_FORMAT, metadata_fields
from store.entry import AttachmentRef, EntryMetadata, EntryType, StoreEntry, assemble_metadata

#: The columns every metadata query selects, in ``decode`` order.
COLUMNS = "receipt_order, id, doc_id, entry_type, created_at, content_hash, metadata, checksum"
_FIELDS = 19
#: The one entry type whose payloads are shared by content hash (the ``chunks`` table).
CHUNK_TYPE = EntryType.ATTACHMENT_CHUNK.value

EntryRow = tuple[int, str, str, str, int, bytes, bytes, int]


@dataclass(frozen=True, slots=True)
class DamagedRow:
    """A row whose bytes do not match what was written; it is quarantined, never served."""

    receipt_order: int
    id: str
    doc_id: str
    reason: str


def checksum(blob: bytes, receipt_order: int) -> int:
    return zlib.crc32(blob, receipt_order & 0xFFFFFFFF)


def encode_stored(meta: EntryMetadata) -> bytes:
    """The codec's metadata array (``store.codec``) with receipt order 0: the row has it."""
    blob: bytes = msgpack.packb(metadata_fields(meta, 0), use_bin_type=True)
    return blob


@dataclass(slots=True)
class Built:
    """The rows of one write: entries, their own payloads, and shared attachment chunks.

    Attachment chunks carry a deterministic IV, so equal chunks are equal ciphertext and are
    kept once (``chunks``, counted by reference); every other payload is encrypted with a
    random IV, can never equal another, and is kept under its entry's receipt order
    (``payloads``), an append at the end of a rowid table with no index to update.
    """

    entries: list[EntryRow] = field(default_factory=list)
    payloads: list[tuple[int, bytes]] = field(default_factory=list)
    chunks: list[tuple[bytes, bytes]] = field(default_factory=list)

    def add(self, entry: StoreEntry, receipt_order: int) -> None:
        meta = entry.metadata
        blob = encode_stored(meta)
        digest = bytes.fromhex(meta.content_hash)
        entry_type = ENTRY_TYPE_TEXT[meta.entry_type]
        self.entries.append(
            (
                receipt_order,
                meta.id,
                meta.doc_id,
                entry_type,
                meta.created_at,
                digest,
                blob,
                checksum(blob, receipt_order),
            )
        )
        if entry_type == CHUNK_TYPE:
            self.chunks.append((digest, entry.encrypted_data))
        else:
            self.payloads.append((receipt_order, entry.encrypted_data))


def decode(row: tuple[Any, ...]) -> EntryMetadata | DamagedRow:
    """Metadata from a row selected with ``COLUMNS``, or why the row cannot be trusted."""
    receipt_order, entry_id, doc_id, entry_type, created_at, digest, blob, crc = row[:8]
    if not isinstance(blob, bytes) or checksum(blob, receipt_order) != crc:
        return DamagedRow(receipt_order, str(entry_id), str(doc_id), "metadata checksum mismatch")
    try:
        meta = _build(msgpack.unpackb(blob, raw=False, use_list=False), receipt_order)
    except (ValueError, TypeError, IndexError, msgpack.ExtraData, msgpack.FormatError) as exc:
        return DamagedRow(receipt_order, str(entry_id), str(doc_id), f"metadata unreadable: {exc}")
    if (
        meta.id != entry_id
        or meta.doc_id != doc_id
        or ENTRY_TYPE_TEXT[meta.entry_type] != entry_type
        or meta.created_at != created_at
        or not isinstance(digest, bytes)
        or meta.content_hash != digest.hex()
    ):
        return DamagedRow(receipt_order, str(entry_id), str(doc_id), "index columns disagree")
    return meta


#: Entry types by their stored text (a dict lookup is several times cheaper than the enum's).
_ENTRY_TYPES = {entry_type.value: entry_type for entry_type in EntryType}


def _build(obj: Any, receipt_order: int) -> EntryMetadata:
    """The metadata of a record unpacked with ``use_list=False`` (its arrays are tuples).

    Every read decodes each row it returns, so the fields go in by position, straight into
    the slots (``assemble_metadata``).
    """
    if type(obj) is not tuple or len(obj) != _FIELDS or obj[0] != METADATA_FORMAT:
        raise ValueError("not a stored metadata record")
    entry_type = _ENTRY_TYPES.get(obj[1])
    if entry_type is None:
        raise ValueError(f"unknown entry type {obj[1]!r}")
    refs = obj[16]
    return assemble_metadata(
        entry_type,
        obj[2],
        obj[3],
        obj[4],
        obj[5],
        obj[6],
        obj[7],
        obj[8],
        obj[9],
        obj[10],
        obj[11],
        obj[12],
        obj[13],
        obj[14],
        obj[15],
        tuple(AttachmentRef(a, b, c) for a, b, c in refs) if refs else (),
        obj[17],
        receipt_order,
    )
