"""Turning put and purge requests into log records (pure functions, run in a worker thread).

A group commit plans every queued request against the caught-up index at once: ids already
stored (or stored by an earlier request of the same group) are skipped, refused entries are
reported, receipt orders continue from the true maximum, and a payload is written only if its
content hash is not stored yet. The result is one byte string appended with one fsync.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import msgpack

from store.admission import BatchAdmission
from store.base import PutResult
from store.codec import encode_metadata
from store.entry import EntryMetadata, StoreEntry
from store.ondisk.index import LogIndex, Region
from store.ondisk.records import RecordType, encode_payload, encode_record


@dataclass(slots=True)
class PlannedPut:
    """What one group commit appends, and what each request gets back."""

    results: list[PutResult] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    #: per record: a payload digest (hex) or the stamped metadata, and the record length
    ops: list[tuple[str | EntryMetadata, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(length for _op, length in self.ops)


def plan_put(index: LogIndex, requests: Sequence[Sequence[StoreEntry]]) -> PlannedPut:
    """Plan the records of several ``put_entries`` calls against ``index``."""
    plan = PlannedPut()
    next_order = index.max_receipt_order + 1
    new_payloads: set[str] = set()
    admitted: set[str] = set()

    def exists(entry_id: str) -> bool:
        return entry_id in index.entries or entry_id in admitted

    for entries in requests:
        admission = BatchAdmission(exists)
        for entry in admission.admit(entries):
            admitted.add(entry.id)
            meta = entry.metadata.with_receipt_order(next_order)
            next_order += 1
            digest = meta.content_hash
            if digest not in index.payloads and digest not in new_payloads:
                new_payloads.add(digest)
                record = encode_payload(bytes.fromhex(digest), entry.encrypted_data)
                plan.chunks.append(record)
                plan.ops.append((digest, len(record)))
            record = encode_record(RecordType.ENTRY, encode_metadata(meta))
            plan.chunks.append(record)
            plan.ops.append((meta, len(record)))
        plan.results.append(admission.result())
    return plan


def apply_put(index: LogIndex, plan: PlannedPut, seg: int, offset: int) -> None:
    """Index the records of ``plan`` once they are durable at ``(seg, offset)``."""
    for op, length in plan.ops:
        if isinstance(op, str):
            index.add_payload(op, seg, offset, length)
        else:
            problem = index.add_entry(op, seg, offset, length)
            assert problem is None, problem  # planned against this very index
        offset += length


def purge_record(doc_id: str, ids: list[str], max_order: int, regions: list[Region]) -> bytes:
    body = msgpack.packb([doc_id, ids, max_order, [list(r) for r in regions]], use_bin_type=True)
    return encode_record(RecordType.PURGE, body)
