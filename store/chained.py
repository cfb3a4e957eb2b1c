"""Store chaining: a local store in front of an upstream store (an edge cache).

Reads are served locally; ids the local store lacks are fetched from the upstream, checked like
any incoming entry, kept locally and returned (``has_entries`` is the local inventory, so a sync
into the cache still brings everything). Writes are stored locally and forwarded upstream
at once, so the upstream sees a client's change without waiting for the next sync round. The
change feed (scan, head) is the local one: peers of the cache follow what it holds.

The upstream may be absent (not connected yet): the store then works from its local data alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from store.base import (
    CompactionStatus,
    ContentAddressedStore,
    IndexBuildStatus,
    PutResult,
    ResolveOptions,
    ScanCursor,
    ScanFilters,
    ScanPage,
    StoreHead,
    StoreHealth,
)
from store.bloom import BloomSummary
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.replicate import Admission
from store.verify import verify_entries

log = logging.getLogger("mindood.store.chained")

UpstreamResolver = Callable[[], ContentAddressedStore | None]


class ChainedStore(ContentAddressedStore):
    def __init__(
        self,
        local: ContentAddressedStore,
        upstream: UpstreamResolver,
        *,
        admit: Admission = verify_entries,
    ) -> None:
        self._local = local
        self._upstream = upstream
        self._admit = admit
        self.fetched_from_upstream = 0
        #: Entries handed to the upstream that it holds now: stored by the forward, or already
        #: there (the upstream's own pull from us may have been quicker).
        self.forwarded_upstream = 0
        #: Documents purged here: never fetched again from the upstream (GDPR).
        self._purged: set[str] = set()

    @property
    def local(self) -> ContentAddressedStore:
        return self._local

    def get_id(self) -> str:
        return f"chained({self._local.get_id()})"

    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        result = await self._local.put_entries(entries)
        upstream = self._upstream()
        if upstream is not None and result.stored:
            stored = set(result.stored)
            try:
                forwarded = await upstream.put_entries([e for e in entries if e.id in stored])
                self.forwarded_upstream += len(forwarded.stored) + len(forwarded.existing)
            except Exception as exc:  # the upstream's own sync will pick the entries up later
                log.warning("forwarding upstream failed", extra={"reason": str(exc)})
        return result

    async def _fill(self, missing: Sequence[str]) -> None:
        """Fetch ``missing`` from the upstream, check and keep them locally."""
        upstream = self._upstream()
        if upstream is None or not missing:
            return
        try:
            fetched = await upstream.get_entries(missing)
        except Exception as exc:
            log.warning("upstream fetch failed", extra={"reason": str(exc)})
            return
        verdict = await self._admit([e for e in fetched if e.doc_id not in self._purged])
        for entry_id, reason in verdict.rejected:
            log.warning("upstream entry refused", extra={"entry_id": entry_id, "reason": reason})
        if verdict.accepted:
            result = await self._local.put_entries(verdict.accepted)
            self.fetched_from_upstream += len(result.stored)

    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        present = set(await self._local.has_entries(ids))
        await self._fill([i for i in ids if i not in present])
        return await self._local.get_entries(ids)

    async def get_metadata(self, ids: Sequence[str]) -> list[EntryMetadata]:
        present = set(await self._local.has_entries(ids))
        await self._fill([i for i in ids if i not in present])
        return await self._local.get_metadata(ids)

    async def has_entries(self, ids: Sequence[str]) -> list[str]:
        """The cache's own inventory: what a sync into this store still needs to bring."""
        return await self._local.has_entries(ids)

    # The change feed and queries are the local store's: peers follow what the cache holds.
    async def get_all_ids(self) -> list[str]:
        return await self._local.get_all_ids()

    async def find_new_entries(self, known_ids: Iterable[str]) -> list[EntryMetadata]:
        return await self._local.find_new_entries(known_ids)

    async def find_new_entries_for_doc(
        self, known_ids: Iterable[str], doc_id: str
    ) -> list[EntryMetadata]:
        return await self._local.find_new_entries_for_doc(known_ids, doc_id)

    async def find_entries_for_docs(self, doc_ids: Sequence[str]) -> dict[str, list[EntryMetadata]]:
        return await self._local.find_entries_for_docs(doc_ids)

    async def find_entries(
        self, entry_type: EntryType, created_from: int | None, created_until: int | None
    ) -> list[EntryMetadata]:
        return await self._local.find_entries(entry_type, created_from, created_until)

    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        return await self._local.scan_entries_since(cursor, limit, filters)

    async def get_store_head(self) -> StoreHead:
        return await self._local.get_store_head()

    async def get_id_bloom_summary(self) -> BloomSummary:
        return await self._local.get_id_bloom_summary()

    async def resolve_dependencies(
        self, start_id: str, options: ResolveOptions | None = None
    ) -> list[str]:
        return await self._local.resolve_dependencies(start_id, options)

    async def purge_doc_history(self, doc_id: str) -> int:
        self._purged.add(doc_id)
        return await self._local.purge_doc_history(doc_id)

    async def clear_all_local_data(self) -> None:
        await self._local.clear_all_local_data()

    async def await_index_ready(self) -> IndexBuildStatus:
        return await self._local.await_index_ready()

    def get_index_build_status(self) -> IndexBuildStatus:
        return self._local.get_index_build_status()

    async def get_compaction_status(self) -> CompactionStatus:
        return await self._local.get_compaction_status()

    def health(self) -> StoreHealth:
        return self._local.health()

    async def quarantined_ids(self) -> list[str]:
        return await self._local.quarantined_ids()

    async def close(self) -> None:
        await self._local.close()
