"""Keyless store-to-store replication: completeness, cursors, epochs, bad entries, verification."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from store.base import (
    ContentAddressedStore,
    IdPage,
    PutResult,
    ScanCursor,
    ScanFilters,
    ScanPage,
)
from store.entry import StoreEntry
from store.errors import StoreError
from store.memory import InMemoryStore
from store.replicate import ReplicationCursor, ReplicationProgress, replicate
from store.verify import verify_entries
from tests.entries import Author, tampered

AUTHOR = Author()


class CountingStore(InMemoryStore):
    """An in-memory store that counts scan calls, to prove an idle re-sync does no scanning."""

    def __init__(self) -> None:
        super().__init__("counting")
        self.scans = 0

    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        self.scans += 1
        return await super().scan_entries_since(cursor, limit, filters)


def _entries(count: int) -> list[StoreEntry]:
    return [AUTHOR.entry(doc_id=f"doc{i % 7}") for i in range(count)]


async def _ids(store: ContentAddressedStore) -> set[str]:
    return set(await store.get_all_ids())


async def test_replication_copies_everything_once_in_pages() -> None:
    source, target = CountingStore(), InMemoryStore()
    await source.put_entries(_entries(250))
    progress: list[ReplicationProgress] = []
    result = await replicate(
        source, target, page_size=40, batch_size=16, on_progress=progress.append
    )
    assert await _ids(target) == await _ids(source)
    assert result.transferred == 250 and result.scanned == 250 and not result.rejected
    assert source.scans == 7  # ceil(250 / 40) pages, no more
    assert progress[-1].transferred == 250 and progress[-1].position == progress[-1].bound
    again = await replicate(source, target, state=None)
    assert again.transferred == 0  # without a cursor it rescans but copies nothing twice


async def test_idle_resync_scans_nothing_and_delta_scans_only_the_delta() -> None:
    source, target = CountingStore(), InMemoryStore()
    await source.put_entries(_entries(100))
    first = await replicate(source, target)
    scans = source.scans
    idle = await replicate(source, target, state=first.state)
    assert idle.idle and idle.scanned == 0 and source.scans == scans
    await source.put_entries(_entries(10))
    delta = await replicate(source, target, state=idle.state)
    assert delta.scanned == 10 and delta.transferred == 10
    assert await _ids(target) == await _ids(source)


async def test_an_epoch_change_falls_back_to_full_reconciliation() -> None:
    source, target = InMemoryStore(), InMemoryStore()
    await source.put_entries(_entries(30))
    first = await replicate(source, target)
    await target.clear_all_local_data()  # target wiped: new epoch, the old cursor is void
    result = await replicate(source, target, state=first.state)
    assert result.transferred == 30 and not result.idle
    assert await _ids(target) == await _ids(source)


async def test_interrupted_replication_resumes_from_its_cursor() -> None:
    source, target = InMemoryStore(), InMemoryStore()
    await source.put_entries(_entries(90))
    first = await replicate(source, target, page_size=30)
    await source.put_entries(_entries(45))
    seen: list[int] = []
    result = await replicate(
        source,
        target,
        state=first.state,
        page_size=30,
        on_progress=lambda p: seen.append(p.scanned),
    )
    assert result.scanned == 45 and seen == [30, 45]


class ForgingStore(InMemoryStore):
    """A source that hands out tampered copies of some entries (a hostile peer)."""

    def __init__(self, forged: dict[str, StoreEntry]) -> None:
        super().__init__("forging")
        self.forged = forged

    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        return [self.forged.get(e.id, e) for e in await super().get_entries(ids)]


async def test_forged_entries_are_rejected_and_valid_ones_still_arrive() -> None:
    good = _entries(20)
    bad_sig = good[3]
    bad_hash = good[7]
    forged = {
        bad_sig.id: tampered(bad_sig, created_at=bad_sig.metadata.created_at + 1),
        # Flipped, not overwritten: a payload already starting with 0x00 would stay intact.
        bad_hash.id: StoreEntry(
            bad_hash.metadata,
            bytes([bad_hash.encrypted_data[0] ^ 0xFF]) + bad_hash.encrypted_data[1:],
        ),
    }
    source, target = ForgingStore(forged), InMemoryStore()
    await source.put_entries(good)
    result = await replicate(source, target)
    assert {i for i, _ in result.rejected} == {bad_sig.id, bad_hash.id}
    assert await _ids(target) == {e.id for e in good} - {bad_sig.id, bad_hash.id}


async def test_bloom_prefilter_never_skips_a_missing_entry() -> None:
    source, target = InMemoryStore(), InMemoryStore()
    entries = _entries(300)
    await source.put_entries(entries)
    await target.put_entries(entries[:150])
    result = await replicate(source, target, use_target_bloom=True)
    assert result.transferred == 150
    assert await _ids(target) == await _ids(source)


async def test_parallel_verification_matches_serial_checks() -> None:
    entries = _entries(200)
    broken = [
        dataclasses.replace(e, encrypted_data=e.encrypted_data + b"x") if i % 9 == 0 else e
        for i, e in enumerate(entries)
    ]
    verdict = await verify_entries(broken)
    assert len(verdict.accepted) + len(verdict.rejected) == 200
    assert {i for i, _ in verdict.rejected} == {e.id for i, e in enumerate(entries) if i % 9 == 0}
    assert [e.id for e in verdict.accepted] == [e.id for i, e in enumerate(entries) if i % 9]


class DyingStore(InMemoryStore):
    """A source whose connection dies after a number of fetches (a peer killed mid-sync)."""

    def __init__(self, fetches_before_death: int) -> None:
        super().__init__("dying")
        self.left = fetches_before_death

    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        if self.left == 0:
            raise ConnectionError("peer went away")
        self.left -= 1
        return await super().get_entries(ids)


async def test_a_run_cut_short_resumes_from_its_last_checkpoint() -> None:
    source, target = DyingStore(fetches_before_death=3), InMemoryStore()
    await source.put_entries(_entries(100))
    checkpoints: list[ReplicationCursor] = []

    async def keep(state: ReplicationCursor) -> None:
        checkpoints.append(state)

    with pytest.raises(ConnectionError):
        await replicate(source, target, page_size=20, batch_size=20, on_checkpoint=keep)
    assert len(checkpoints) == 3 and len(await target.get_all_ids()) == 60
    source.left = -1  # the peer is back
    resumed = await replicate(source, target, checkpoints[-1], page_size=20)
    assert resumed.scanned == 40 and resumed.transferred == 40
    assert await _ids(target) == await _ids(source)


class FailingTarget(InMemoryStore):
    """A target whose disk fails on a given write (the writes before it are kept)."""

    def __init__(self, fail_on_write: int) -> None:
        super().__init__("failing")
        self.writes = 0
        self.fail_on_write = fail_on_write

    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        self.writes += 1
        if self.writes == self.fail_on_write:
            raise StoreError("disk full")
        return await super().put_entries(entries)


async def test_a_failing_write_ends_the_run_and_only_stored_pages_are_checkpointed() -> None:
    # pages of 40 in batches of 10: the 6th write (page 2, batch 2) fails while batch 3 of
    # that page is being checked and the next scan page is read ahead
    source, target = CountingStore(), FailingTarget(fail_on_write=6)
    await source.put_entries(_entries(120))
    checkpoints: list[ReplicationCursor] = []

    async def keep(state: ReplicationCursor) -> None:
        checkpoints.append(state)

    with pytest.raises(StoreError, match="disk full"):
        await replicate(source, target, page_size=40, batch_size=10, on_checkpoint=keep)
    assert len(checkpoints) == 1  # page 1 only: page 2 was never wholly stored
    assert len(await target.get_all_ids()) == 50  # 5 writes of 10 made it
    target.fail_on_write = 0
    resumed = await replicate(source, target, checkpoints[-1], page_size=40, batch_size=10)
    assert resumed.scanned == 80 and resumed.transferred == 70  # 10 of page 2 were there
    assert await _ids(target) == await _ids(source)


async def test_overlapped_batches_are_stored_in_the_source_order() -> None:
    source, target = CountingStore(), InMemoryStore()
    await source.put_entries(_entries(90))
    await replicate(source, target, page_size=30, batch_size=7)
    order_in = [m.id for m in (await source.scan_entries_since(None, 1000)).entries]
    order_out = [m.id for m in (await target.scan_entries_since(None, 1000)).entries]
    assert order_out == order_in
    assert source.scans == 4  # 3 full pages read (two of them ahead) and one empty end page


class CallOrderStore(InMemoryStore):
    """Notes each id page asked for and each entry fetch, in the order they were started."""

    def __init__(self) -> None:
        super().__init__("call-order")
        self.calls: list[str] = []

    async def scan_ids_since(
        self, cursor: ScanCursor | None, limit: int = 1000, *, scanner_epoch: str | None = None
    ) -> IdPage:
        self.calls.append("scan")
        return await super().scan_ids_since(cursor, limit, scanner_epoch=scanner_epoch)

    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        self.calls.append("get")
        await asyncio.sleep(0.01)  # on the network for a while, as a peer's store is
        entries = await super().get_entries(ids)
        self.calls.append("got")
        return entries


class PutOrderStore(InMemoryStore):
    """A target that notes its puts in the source's call list."""

    def __init__(self, calls: list[str]) -> None:
        super().__init__("put-order")
        self.calls = calls

    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        self.calls.append("put")
        return await super().put_entries(entries)


async def test_the_next_id_page_is_asked_for_while_this_pages_entries_are_fetched() -> None:
    source = CallOrderStore()
    target = PutOrderStore(source.calls)
    await source.put_entries(_entries(120))
    result = await replicate(source, target, page_size=40, batch_size=40)
    assert result.transferred == 120 and await _ids(target) == await _ids(source)
    # Page 2 is on its way before page 1's entries arrived, and page 2's entries are asked
    # for before page 1's are stored (no pause at a page boundary); nothing after the end.
    calls = source.calls
    assert calls.index("scan", 1) < calls.index("got")
    assert calls.index("get", calls.index("get") + 1) < calls.index("put")
    assert calls.count("scan") == 3 and calls.count("get") == 3 and calls.count("put") == 3
