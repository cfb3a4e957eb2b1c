"""``FailedStore``: what a store factory hands out for a store whose files cannot be opened.

A damaged or misplaced file must cost its database, never the caller that merely opens every
database of a tenant (unlock, the sync layer watching them all). So instead of raising at open,
the factory returns this stand-in: opening succeeds, every operation raises the same typed
``StoreUnavailableError`` naming the store and the reason, and ``health()`` reports it failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NoReturn

from store.base import (
    ContentAddressedStore,
    PutResult,
    ResolveOptions,
    ScanCursor,
    ScanFilters,
    ScanPage,
    StoreHead,
    StoreHealth,
    StoreState,
)
from store.bloom import BloomSummary
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.errors import StoreUnavailableError


class FailedStore(ContentAddressedStore):
    """A store that could not be opened: every call raises why; nothing is held to close."""

    def __init__(self, store_id: str, problem: str) -> None:
        self._id = store_id
        self.problem = problem

    def get_id(self) -> str:
        return self._id

    def _refuse(self) -> NoReturn:
        named = "" if self._id in self.problem else f" {self._id}"  # name the store once
        raise StoreUnavailableError(f"store{named} out of service: {self.problem}")

    def health(self) -> StoreHealth:
        return StoreHealth(StoreState.FAILED, problem=self.problem)

    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        self._refuse()

    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        self._refuse()

    async def get_metadata(self, ids: Sequence[str]) -> list[EntryMetadata]:
        self._refuse()

    async def has_entries(self, ids: Sequence[str]) -> list[str]:
        self._refuse()

    async def get_all_ids(self) -> list[str]:
        self._refuse()

    async def find_new_entries(self, known_ids: Iterable[str]) -> list[EntryMetadata]:
        self._refuse()

    async def find_new_entries_for_doc(
        self, known_ids: Iterable[str], doc_id: str
    ) -> list[EntryMetadata]:
        self._refuse()

    async def find_entries(
        self, entry_type: EntryType, created_from: int | None, created_until: int | None
    ) -> list[EntryMetadata]:
        self._refuse()

    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        self._refuse()

    async def get_store_head(self) -> StoreHead:
        self._refuse()

    async def get_id_bloom_summary(self) -> BloomSummary:
        self._refuse()

    async def resolve_dependencies(
        self, start_id: str, options: ResolveOptions | None = None
    ) -> list[str]:
        self._refuse()

    async def purge_doc_history(self, doc_id: str) -> int:
        self._refuse()

    async def clear_all_local_data(self) -> None:
        self._refuse()


__all__ = ["FailedStore"]
