"""Store chaining: misses fetched from the upstream and checked, writes forwarded, purges kept."""

from __future__ import annotations

from collections.abc import Sequence

from store.chained import ChainedStore
from store.entry import StoreEntry
from store.memory import InMemoryStore
from tests.entries import Author, tampered

AUTHOR = Author()


async def test_reads_fill_misses_from_the_upstream_and_keep_them() -> None:
    upstream, local = InMemoryStore("up"), InMemoryStore("local")
    entries = [AUTHOR.entry(doc_id="doc") for _ in range(5)]
    await upstream.put_entries(entries)
    chained = ChainedStore(local, lambda: upstream)
    wanted = [e.id for e in entries[:3]]
    assert [e.id for e in await chained.get_entries(wanted)] == wanted
    assert chained.fetched_from_upstream == 3
    assert await local.has_entries(wanted) == wanted  # kept: the next read is local
    await chained.get_entries(wanted)
    assert chained.fetched_from_upstream == 3


async def test_forged_upstream_entries_are_not_cached_or_returned() -> None:
    class Forging(InMemoryStore):
        async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
            found = await super().get_entries(ids)
            return [tampered(e, created_at=e.metadata.created_at + 1) for e in found]

    upstream = Forging("evil")
    entry = AUTHOR.entry()
    await upstream.put_entries([entry])
    chained = ChainedStore(InMemoryStore("local"), lambda: upstream)
    assert await chained.get_entries([entry.id]) == []
    assert await chained.local.get_all_ids() == []


async def test_writes_are_forwarded_and_work_offline() -> None:
    upstream = InMemoryStore("up")
    connected: list[InMemoryStore] = []
    chained = ChainedStore(InMemoryStore("local"), lambda: connected[0] if connected else None)
    offline = AUTHOR.entry()
    await chained.put_entries([offline])  # no upstream yet: stored locally only
    assert await chained.has_entries([offline.id]) == [offline.id]
    connected.append(upstream)
    online = AUTHOR.entry()
    await chained.put_entries([online])
    assert await upstream.get_all_ids() == [online.id]
    assert chained.forwarded_upstream == 1


async def test_a_purged_document_is_never_fetched_again() -> None:
    upstream = InMemoryStore("up")
    entry = AUTHOR.entry(doc_id="private")
    await upstream.put_entries([entry])
    chained = ChainedStore(InMemoryStore("local"), lambda: upstream)
    assert await chained.get_entries([entry.id])
    assert await chained.purge_doc_history("private") == 1
    assert await chained.get_entries([entry.id]) == []
