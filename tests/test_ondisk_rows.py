"""Rows of the entries table: what ``decode`` builds is the metadata that was written.

``decode`` fills ``EntryMetadata`` slot by slot instead of through its ``__init__``; the result
must be indistinguishable from a normally built instance (equal, hashable, frozen), for every
kind of entry and every optional field.
"""

from __future__ import annotations

import dataclasses

import pytest

from store.entry import AttachmentRef, EntryMetadata, EntryType, StoreEntry, content_hash
from store.ondisk.rows import Built, DamagedRow, decode

_PAYLOAD = b"\x01" * 40

_METAS = [
    EntryMetadata(
        EntryType.DOC_CREATE,
        "doc1_d_0_" + "ab" * 32,
        content_hash(_PAYLOAD),
        "doc1",
        (),
        1_700_000_000_000,
        "pk",
        "default",
        12,
        40,
    ),
    EntryMetadata(
        EntryType.DOC_SNAPSHOT,
        "doc1_d_ff_" + "cd" * 32,
        content_hash(_PAYLOAD),
        "doc1",
        ("doc1_d_0_" + "ab" * 32,),
        -5,
        "pk2",
        "key-b",
        0,
        40,
        signature=b"s" * 64,
        metadata_signature=b"m" * 64,
        snapshot_head_hashes=("ab" * 32,),
        snapshot_head_entry_ids=("doc1_d_0_" + "ab" * 32,),
        attachment_refs=(AttachmentRef("att1", "last", 99), AttachmentRef("att2", "l2", 1)),
        entry_version=0,
    ),
    EntryMetadata(
        EntryType.ATTACHMENT_CHUNK,
        "doc1_a_att1_c1",
        content_hash(_PAYLOAD),
        "doc1",
        ("doc1_a_att1_c0", "x"),
        2**62,
        "pk",
        "default",
        7,
        40,
        attachment_id="att1",
    ),
]


@pytest.mark.parametrize("meta", _METAS, ids=lambda m: m.entry_type.value)
def test_a_row_decodes_to_the_metadata_that_was_written(meta: EntryMetadata) -> None:
    built = Built()
    built.add(StoreEntry(meta, _PAYLOAD), 17)
    (row,) = built.entries
    got = decode(row)
    want = dataclasses.replace(meta, receipt_order=17)
    assert got == want and hash(got) == hash(want) and repr(got) == repr(want)
    assert type(got) is EntryMetadata
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.id = "other"  # type: ignore[misc]


def test_a_damaged_row_is_reported_not_decoded() -> None:
    built = Built()
    built.add(StoreEntry(_METAS[0], _PAYLOAD), 3)
    (row,) = built.entries
    flipped = bytearray(row[6])
    flipped[-1] ^= 1
    damaged = decode((*row[:6], bytes(flipped), row[7]))
    assert isinstance(damaged, DamagedRow) and damaged.reason == "metadata checksum mismatch"
    moved = decode((*row[:2], "doc2", *row[3:]))
    assert isinstance(moved, DamagedRow) and moved.reason == "index columns disagree"
