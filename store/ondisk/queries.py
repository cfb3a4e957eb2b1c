"""The metadata queries of ``OnDiskStore``, answered from a ``LogIndex`` (no I/O here).

``_view()`` supplies the index: the live one after a cheap freshness check, or in scan mode
one built by scanning the segments for this call only. Semantics match ``InMemoryStore``
(the shared ``scan`` and ``dag`` helpers do the paging and the DAG walk).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence

from store import dag, scan
from store.base import (
    ContentAddressedStore,
    ResolveOptions,
    ScanCursor,
    ScanFilters,
    ScanPage,
    StoreHead,
)
from store.bloom import BloomSummary
from store.entry import EntryMetadata, EntryType
from store.ondisk.index import LogIndex


class IndexQueries(ContentAddressedStore):
    """Every metadata query of the store contract, given ``_view`` and ``_epoch``."""

    _epoch: str

    @abc.abstractmethod
    async def _view(self) -> LogIndex:
        """The index to answer one query from."""

    async def get_metadata(self, ids: Sequence[str]) -> list[EntryMetadata]:
        index = await self._view()
        return [meta for meta in map(index.meta, ids) if meta is not None]

    async def has_entries(self, ids: Sequence[str]) -> list[str]:
        index = await self._view()
        return [entry_id for entry_id in ids if entry_id in index.entries]

    async def get_all_ids(self) -> list[str]:
        index = await self._view()
        return [entry_id for _order, entry_id in index.order]

    # -- sync --------------------------------------------------------------------------------
    async def find_new_entries(self, known_ids: Iterable[str]) -> list[EntryMetadata]:
        index = await self._view()
        return _unknown(index, index.order, known_ids)

    async def find_new_entries_for_doc(
        self, known_ids: Iterable[str], doc_id: str
    ) -> list[EntryMetadata]:
        index = await self._view()
        return _unknown(index, index.doc_order.get(doc_id, ()), known_ids)

    async def find_entries(
        self, entry_type: EntryType, created_from: int | None, created_until: int | None
    ) -> list[EntryMetadata]:
        index = await self._view()
        filters = ScanFilters(created_from=created_from, created_until=created_until)
        keys = index.type_order.get(entry_type, ())
        metas = (index.entries[entry_id].meta for _order, entry_id in keys)
        return [meta for meta in metas if filters.matches(meta)]

    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        index = await self._view()
        return scan.scan_page(
            index.order,
            index.meta,
            cursor,
            limit,
            filters,
            doc_keys=index.doc_order,
            type_keys=index.type_order,
        )

    async def get_store_head(self) -> StoreHead:
        index = await self._view()
        return StoreHead(self._epoch, index.max_receipt_order)

    async def get_id_bloom_summary(self) -> BloomSummary:
        index = await self._view()
        return index.bloom()

    async def resolve_dependencies(
        self, start_id: str, options: ResolveOptions | None = None
    ) -> list[str]:
        index = await self._view()
        return dag.resolve(start_id, index.meta, options)


def _unknown(
    index: LogIndex, keys: Sequence[scan.OrderKey], known_ids: Iterable[str]
) -> list[EntryMetadata]:
    known = known_ids if isinstance(known_ids, set | frozenset) else set(known_ids)
    return [index.entries[entry_id].meta for _order, entry_id in keys if entry_id not in known]
