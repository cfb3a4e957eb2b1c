"""Backends of the store conformance suite, and the entry shapes its tests build.

``tests/test_store_conformance.py`` runs one suite against every backend listed in
``BACKENDS``. A backend is a ``StoreFactory``: calling it opens a fresh, empty store;
``reopen(store)`` closes a store and opens the same one again (a persistent backend reads it
back from disk; the in-memory backend hands back the same instance, and tests that only make
sense for persistent backends call ``require_persistent``).

To put a new backend under the suite, add a ``StoreFactory`` subclass and one line to
``BACKENDS``; its builder may ``pytest.skip`` when the backend cannot run here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from store.base import ContentAddressedStore, ScanCursor, ScanFilters
from store.chained import ChainedStore
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.memory import InMemoryStore
from store.ondisk import OnDiskStore
from tests.entries import Author


class StoreFactory:
    """Opens fresh stores of one backend; closes whatever it opened at teardown."""

    name = "abstract"
    #: Whether a reopened store reads its state back from storage.
    persistent = False

    def __init__(self) -> None:
        self._opened: list[ContentAddressedStore] = []

    async def __call__(self) -> ContentAddressedStore:
        store = await self._open_fresh()
        self._opened.append(store)
        return store

    async def reopen(self, store: ContentAddressedStore) -> ContentAddressedStore:
        """Close ``store`` and open the same store again (see the module docstring)."""
        reopened = await self._reopen(store)
        self._opened.append(reopened)
        return reopened

    async def aclose(self) -> None:
        for store in reversed(self._opened):
            await store.close()
        self._opened.clear()

    async def _open_fresh(self) -> ContentAddressedStore:
        raise NotImplementedError

    async def _reopen(self, store: ContentAddressedStore) -> ContentAddressedStore:
        raise NotImplementedError


class MemoryFactory(StoreFactory):
    name = "memory"
    persistent = False

    async def _open_fresh(self) -> ContentAddressedStore:
        return InMemoryStore(store_id=f"memory-{len(self._opened)}")

    async def _reopen(self, store: ContentAddressedStore) -> ContentAddressedStore:
        return store  # nothing to read back: the same instance is the same store


class OnDiskFactory(StoreFactory):
    """``store.ondisk.OnDiskStore`` in a fresh directory per store under ``tmp_path``."""

    name = "ondisk"
    persistent = True

    def __init__(self, tmp_path: Path, store_class: Any) -> None:
        super().__init__()
        self._root = tmp_path
        self._store_class = store_class
        self._paths: dict[int, Path] = {}

    async def _open_fresh(self) -> ContentAddressedStore:
        path = self._root / f"store-{len(self._paths)}"
        path.mkdir(parents=True)
        store: ContentAddressedStore = await self._store_class.open(path)
        self._paths[id(store)] = path
        return store

    async def _reopen(self, store: ContentAddressedStore) -> ContentAddressedStore:
        path = self._paths[id(store)]
        await store.close()
        reopened: ContentAddressedStore = await self._store_class.open(path)
        self._paths[id(reopened)] = path
        return reopened


class ChainedFactory(StoreFactory):
    """``store.chained.ChainedStore``: an in-memory local store in front of an upstream one.

    The upstream is a second in-memory store, so every pass-through and every fill path runs.
    """

    name = "chained"
    persistent = False

    async def _open_fresh(self) -> ContentAddressedStore:
        upstream = InMemoryStore(store_id="upstream")
        return ChainedStore(InMemoryStore(store_id=f"local-{len(self._opened)}"), lambda: upstream)

    async def _reopen(self, store: ContentAddressedStore) -> ContentAddressedStore:
        return store


def _memory(_tmp_path: Path) -> StoreFactory:
    return MemoryFactory()


def _ondisk(tmp_path: Path) -> StoreFactory:
    return OnDiskFactory(tmp_path, OnDiskStore)


def _chained(_tmp_path: Path) -> StoreFactory:
    return ChainedFactory()


#: Every backend the suite runs against, by name.
BACKENDS: dict[str, Callable[[Path], StoreFactory]] = {
    "memory": _memory,
    "ondisk": _ondisk,
    "chained": _chained,
}


def require_persistent(factory: StoreFactory) -> None:
    if not factory.persistent:
        pytest.skip(f"the {factory.name} backend keeps nothing across a reopen")


# -- entry shapes ----------------------------------------------------------------------------


@dataclass
class Dag:
    """A document history with a branch, a merge, a snapshot and a shortcut edge::

    create <- a <- merge <- snap <- c6 <- c7
       ^---- b <-'
       ^------------------------------------- x (deps: merge, create)
    """

    doc_id: str
    create: StoreEntry
    a: StoreEntry
    b: StoreEntry
    merge: StoreEntry
    snap: StoreEntry
    c6: StoreEntry
    c7: StoreEntry
    x: StoreEntry

    @property
    def entries(self) -> list[StoreEntry]:
        return [self.create, self.a, self.b, self.merge, self.snap, self.c6, self.c7, self.x]


def build_dag(author: Author, doc_id: str) -> Dag:
    create = author.entry(doc_id, entry_type=EntryType.DOC_CREATE, created_at=1000)
    a = author.entry(doc_id, deps=[create.id], created_at=1001)
    b = author.entry(doc_id, deps=[create.id], created_at=1002)
    merge = author.entry(doc_id, deps=[a.id, b.id], created_at=1003)
    snap = author.entry(doc_id, entry_type=EntryType.DOC_SNAPSHOT, deps=[merge.id], created_at=1004)
    c6 = author.entry(doc_id, deps=[snap.id], created_at=1005)
    c7 = author.entry(doc_id, deps=[c6.id], created_at=1006)
    x = author.entry(doc_id, deps=[merge.id, create.id], created_at=1007)
    return Dag(doc_id, create, a, b, merge, snap, c6, c7, x)


def ids(items: Sequence[StoreEntry | EntryMetadata]) -> list[str]:
    return [item.id if isinstance(item, EntryMetadata) else item.metadata.id for item in items]


async def scan_all(
    store: ContentAddressedStore,
    limit: int,
    filters: ScanFilters | None = None,
    cursor: ScanCursor | None = None,
) -> list[EntryMetadata]:
    """Page through a scan to its end, checking the paging rules on every page."""
    collected: list[EntryMetadata] = []
    for _ in range(10_000):
        page = await store.scan_entries_since(cursor, limit, filters)
        assert len(page.entries) <= limit
        if page.entries:
            last = page.entries[-1]
            assert page.next_cursor == ScanCursor(last.receipt_order, last.id)
            first = page.entries[0]
            assert cursor is None or ScanCursor(first.receipt_order, first.id) > cursor
        else:
            assert page.next_cursor == cursor
        if page.has_more:
            assert len(page.entries) == limit, "a page short of the limit must be the last"
        collected.extend(page.entries)
        cursor = page.next_cursor
        if not page.has_more:
            return collected
    raise AssertionError("scan did not finish")
