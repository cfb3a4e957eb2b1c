"""``InMemoryStore``: the complete store contract held in dicts and sorted lists.

Used by tests, by relays that keep nothing, and as the model the on-disk store is checked
against (one conformance suite runs on both). Everything lives in process memory; nothing
survives the process.

Layout:

- ``_meta``: id -> metadata stamped with its ``receipt_order`` (the source of truth);
- ``_payloads`` / ``_payload_refs``: content hash -> ciphertext, kept once, and how many
  entries use it, so a purge frees exactly the payloads no other entry shares;
- ``_order``: every ``(receipt_order, id)`` in order, plus the same keys per document and per
  entry type. Receipt orders only grow, so a put appends to these lists and they stay sorted
  without sorting; a purge filters them;
- ``_hash_pairs``: each id's Bloom base hashes, computed once; the summary built from them is
  cached until the next change.

Every method runs to completion without awaiting, so on one event loop each call is atomic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from store import dag, scan
from store.admission import BatchAdmission
from store.base import (
    ContentAddressedStore,
    PutResult,
    ResolveOptions,
    ScanCursor,
    ScanFilters,
    ScanPage,
    StoreHead,
)
from store.bloom import BloomSummary, id_hash_arrays
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.errors import StoreClosedError
from store.ids import uuid7
from store.scan import OrderKey


class InMemoryStore(ContentAddressedStore):
    """A store that keeps every entry in memory; see the module docstring for the layout."""

    def __init__(self, store_id: str = "memory") -> None:
        self._store_id = store_id
        self._closed = False
        self._reset()

    def _reset(self) -> None:
        self._epoch = uuid7()
        self._next_order = 1
        self._meta: dict[str, EntryMetadata] = {}
        self._payloads: dict[str, bytes] = {}
        self._payload_refs: dict[str, int] = {}
        self._order: list[OrderKey] = []
        self._doc_order: dict[str, list[OrderKey]] = {}
        self._type_order: dict[EntryType, list[OrderKey]] = {}
        self._hash_pairs: dict[str, tuple[int, int]] = {}
        self._bloom: BloomSummary | None = None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"store {self._store_id!r} is closed")

    def get_id(self) -> str:
        return self._store_id

    # -- write -------------------------------------------------------------------------------
    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        self._check_open()
        admission = BatchAdmission(self._meta.__contains__)
        orders: list[int] = []
        for entry in admission.admit(entries):
            orders.append(self._next_order)
            self._add(entry)
        return admission.result(orders)

    def _add(self, entry: StoreEntry) -> None:
        meta = entry.metadata.with_receipt_order(self._next_order)
        self._next_order += 1
        digest = meta.content_hash
        if digest in self._payloads:
            self._payload_refs[digest] += 1
        else:
            self._payloads[digest] = entry.encrypted_data
            self._payload_refs[digest] = 1
        self._meta[meta.id] = meta
        key = scan.order_key(meta)
        self._order.append(key)
        self._doc_order.setdefault(meta.doc_id, []).append(key)
        self._type_order.setdefault(meta.entry_type, []).append(key)
        self._bloom = None

    # -- read --------------------------------------------------------------------------------
    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        self._check_open()
        found: list[StoreEntry] = []
        for entry_id in ids:
            meta = self._meta.get(entry_id)
            if meta is not None:
                found.append(StoreEntry(meta, self._payloads[meta.content_hash]))
        return found

    async def get_metadata(self, ids: Sequence[str]) -> list[EntryMetadata]:
        self._check_open()
        return [meta for meta in map(self._meta.get, ids) if meta is not None]

    async def has_entries(self, ids: Sequence[str]) -> list[str]:
        self._check_open()
        return [entry_id for entry_id in ids if entry_id in self._meta]

    async def get_all_ids(self) -> list[str]:
        self._check_open()
        return [entry_id for _order, entry_id in self._order]

    # -- sync --------------------------------------------------------------------------------
    async def find_new_entries(self, known_ids: Iterable[str]) -> list[EntryMetadata]:
        self._check_open()
        return self._unknown(self._order, known_ids)

    async def find_new_entries_for_doc(
        self, known_ids: Iterable[str], doc_id: str
    ) -> list[EntryMetadata]:
        self._check_open()
        return self._unknown(self._doc_order.get(doc_id, ()), known_ids)

    def _unknown(self, keys: Sequence[OrderKey], known_ids: Iterable[str]) -> list[EntryMetadata]:
        known = known_ids if isinstance(known_ids, set | frozenset) else set(known_ids)
        return [self._meta[entry_id] for _order, entry_id in keys if entry_id not in known]

    async def find_entries(
        self, entry_type: EntryType, created_from: int | None, created_until: int | None
    ) -> list[EntryMetadata]:
        self._check_open()
        filters = ScanFilters(created_from=created_from, created_until=created_until)
        candidates = (self._meta[entry_id] for _o, entry_id in self._type_order.get(entry_type, ()))
        return [meta for meta in candidates if filters.matches(meta)]

    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        self._check_open()
        return scan.scan_page(
            self._order,
            self._meta.get,
            cursor,
            limit,
            filters,
            doc_keys=self._doc_order,
            type_keys=self._type_order,
        )

    async def get_store_head(self) -> StoreHead:
        self._check_open()
        return StoreHead(self._epoch, self._next_order - 1)

    async def get_id_bloom_summary(self) -> BloomSummary:
        self._check_open()
        if self._bloom is None:
            pairs = self._hash_pairs
            new = [entry_id for entry_id in self._meta if entry_id not in pairs]
            if new:
                h1, h2 = id_hash_arrays(new)
                pairs.update(zip(new, zip(h1.tolist(), h2.tolist(), strict=True), strict=True))
            self._bloom = BloomSummary.build(pairs.values(), len(pairs))
        return self._bloom

    # -- DAG ---------------------------------------------------------------------------------
    async def resolve_dependencies(
        self, start_id: str, options: ResolveOptions | None = None
    ) -> list[str]:
        self._check_open()
        return dag.resolve(start_id, self._meta.get, options)

    # -- lifecycle ---------------------------------------------------------------------------
    async def purge_doc_history(self, doc_id: str) -> int:
        self._check_open()
        keys = self._doc_order.pop(doc_id, None)
        if not keys:
            return 0
        purged: set[str] = set()
        touched_types: set[EntryType] = set()
        for _order, entry_id in keys:
            meta = self._meta.pop(entry_id)
            purged.add(entry_id)
            touched_types.add(meta.entry_type)
            self._hash_pairs.pop(entry_id, None)
            digest = meta.content_hash
            remaining = self._payload_refs[digest] - 1
            if remaining:
                self._payload_refs[digest] = remaining
            else:
                del self._payload_refs[digest]
                del self._payloads[digest]
        self._order = [key for key in self._order if key[1] not in purged]
        for entry_type in touched_types:
            kept = [key for key in self._type_order[entry_type] if key[1] not in purged]
            if kept:
                self._type_order[entry_type] = kept
            else:
                del self._type_order[entry_type]
        self._bloom = None
        return len(purged)

    async def clear_all_local_data(self) -> None:
        self._check_open()
        self._reset()

    async def close(self) -> None:
        self._closed = True

    # -- introspection for tests and metrics ---------------------------------------------------
    def payload_count(self) -> int:
        """How many distinct payloads are held (entries sharing a content hash share one)."""
        return len(self._payloads)
