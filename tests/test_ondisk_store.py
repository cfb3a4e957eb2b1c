"""``OnDiskStore`` behaviour beyond the conformance suite: group commit, several instances on
one directory, scan mode, purge erasure, snapshots, segment rolling."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from store.base import ScanCursor, ScanFilters
from store.entry import EntryType, StoreEntry
from store.ids import generate_doc_id
from store.ondisk import OnDiskStore, OnDiskStoreOptions, RecoveryProgress
from store.ondisk.log import SegmentLog
from tests.entries import Author

AUTHOR = Author()
FAST = OnDiskStoreOptions(fsync=False)


def make(count: int, doc: str | None = None, size: int = 100) -> list[StoreEntry]:
    return [AUTHOR.entry(doc, payload=os.urandom(size)) for _ in range(count)]


def all_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


async def test_concurrent_puts_are_group_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    appends = 0
    real_append = SegmentLog.append

    def counting(
        self: SegmentLog, data: bytes, segment_max: int
    ) -> tuple[int, int, dict[int, int]]:
        nonlocal appends
        appends += 1
        return real_append(self, data, segment_max)

    monkeypatch.setattr(SegmentLog, "append", counting)
    store = await OnDiskStore.open(tmp_path)  # real fsyncs: that is what groups them
    entries = make(200)
    results = await asyncio.gather(*(store.put_entries([entry]) for entry in entries))
    assert all(result.stored == (entry.id,) for result, entry in zip(results, entries, strict=True))
    assert appends < 50, f"{appends} appends for 200 concurrent puts"
    metas = await store.get_metadata([entry.id for entry in entries])
    assert sorted(meta.receipt_order for meta in metas) == list(range(1, 201))
    await store.close()


async def test_two_instances_on_one_directory_see_each_other(tmp_path: Path) -> None:
    first = await OnDiskStore.open(tmp_path, FAST)
    second = await OnDiskStore.open(tmp_path, FAST)
    a = make(3, "doca")
    await first.put_entries(a)
    assert await second.has_entries([e.id for e in a]) == [e.id for e in a]
    assert (await second.get_store_head()).max_receipt_order == 3
    b = make(2)
    result = await second.put_entries(b + a[:1])  # a[0] exists already, written by `first`
    assert result.existing == (a[0].id,)
    orders = [m.receipt_order for m in await first.get_metadata([e.id for e in b])]
    assert orders == [4, 5]
    assert await second.purge_doc_history("doca") == 3
    assert await first.get_entries([e.id for e in a]) == []
    assert (await first.get_store_head()).max_receipt_order == 5
    epoch = (await first.get_store_head()).epoch
    await first.clear_all_local_data()
    head = await second.get_store_head()
    assert head.epoch != epoch and head.max_receipt_order == 0
    assert await second.get_all_ids() == []
    await second.put_entries(a)
    assert await first.get_all_ids() == [e.id for e in a]
    await first.close()
    await second.close()


async def test_other_instance_follows_across_segments(tmp_path: Path) -> None:
    options = OnDiskStoreOptions(fsync=False, segment_max_bytes=4096)
    writer = await OnDiskStore.open(tmp_path, options)
    reader = await OnDiskStore.open(tmp_path, options)
    written: list[str] = []
    for _ in range(20):
        batch = make(4, size=300)
        await writer.put_entries(batch)
        written += [e.id for e in batch]
        assert await reader.get_all_ids() == written
    assert len(list((tmp_path / "segments").iterdir())) > 5
    await writer.close()
    await reader.close()
    store = await OnDiskStore.open(tmp_path, options)
    assert await store.get_all_ids() == written
    assert len(await store.get_entries(written)) == len(written)
    await store.close()


async def test_purge_erases_ciphertext_and_metadata_from_every_file(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    secret = make(4, "subject", size=500)
    shared_payload = secret[0].encrypted_data
    other = [AUTHOR.entry("bystander", payload=shared_payload)]  # shares one payload
    await store.put_entries(secret + other + make(3))
    await store.compact()  # a snapshot now holds the subject's metadata too
    assert await store.purge_doc_history("subject") == 4
    raw = all_bytes(tmp_path)
    for entry in secret[1:]:
        assert entry.encrypted_data not in raw
    assert shared_payload in raw  # still used by the bystander
    snapshot = (tmp_path / "index.snap").read_bytes()
    assert b"subject_d_" not in snapshot
    again = await store.put_entries(secret[1:2])  # a purged id can come back
    assert again.stored == (secret[1].id,)
    head = (await store.get_store_head()).max_receipt_order
    await store.close()
    store = await OnDiskStore.open(tmp_path, FAST)
    assert (await store.get_store_head()).max_receipt_order == head
    assert await store.has_entries([e.id for e in secret]) == [secret[1].id]
    assert (await store.get_entries([secret[1].id]))[0].encrypted_data == secret[1].encrypted_data
    await store.close()


async def test_snapshot_thresholds_bound_the_replay(tmp_path: Path) -> None:
    options = OnDiskStoreOptions(fsync=False, compaction_min_records=20, snapshot_on_close=False)
    store = await OnDiskStore.open(tmp_path, options)
    for _ in range(12):
        await store.put_entries(make(3))  # 6 records per batch (payload + entry)
    status = await store.get_compaction_status()
    assert status.enabled and status.total_compactions >= 2
    assert status.total_compacted_files >= 40 and status.last_compaction_at is not None
    await store.close()
    reports: list[RecoveryProgress] = []
    store = await OnDiskStore.open(tmp_path, options, reports.append)
    assert "rebuild" not in [r.phase for r in reports]
    assert len(await store.get_all_ids()) == 36
    assert store.stats.since_records < 20  # only the tail after the last snapshot was replayed
    await store.close()


async def test_compaction_off_switch(tmp_path: Path) -> None:
    options = OnDiskStoreOptions(
        fsync=False, compaction_enabled=False, compaction_min_records=1, snapshot_on_close=False
    )
    store = await OnDiskStore.open(tmp_path, options)
    await store.put_entries(make(10))
    status = await store.get_compaction_status()
    assert not status.enabled and status.total_compactions == 0
    await store.close()
    assert not (tmp_path / "index.snap").exists()


async def test_clear_on_startup_and_status(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.put_entries(make(3))
    epoch = (await store.get_store_head()).epoch
    await store.close()
    store = OnDiskStore(tmp_path, OnDiskStoreOptions(fsync=False, clear_local_data_on_startup=True))
    assert store.get_index_build_status().phase == "idle"
    await store.initialize()
    status = await store.await_index_ready()
    assert status.phase == "ready" and status.progress01 == 1.0
    head = await store.get_store_head()
    assert head.epoch != epoch and head.max_receipt_order == 0
    await store.close()
    await store.close()  # twice is fine


async def test_bloom_summary_is_cached_until_ids_change(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.put_entries(make(5))
    first = await store.get_id_bloom_summary()
    assert await store.get_id_bloom_summary() is first
    await store.put_entries(make(1))
    assert (await store.get_id_bloom_summary()).total_ids == 6
    await store.close()


async def answers(store: OnDiskStore, docs: list[str]) -> list[object]:
    """Every query's answer, for comparing two stores."""
    ids = await store.get_all_ids()
    out: list[object] = [ids, await store.get_metadata(ids), await store.has_entries([*ids, "x"])]
    out.append([(e.metadata, e.encrypted_data) for e in await store.get_entries(ids)])
    out.append(await store.find_new_entries(ids[::3]))
    out.append(await store.get_id_bloom_summary())
    out.append((await store.get_store_head()).max_receipt_order)
    for entry_type in EntryType:
        out.append(await store.find_entries(entry_type, None, None))
    for doc in docs:
        out.append(await store.find_new_entries_for_doc(ids[::2], doc))
        page = await store.scan_entries_since(ScanCursor(2, ""), 3, ScanFilters(doc_id=doc))
        out.append(page)
    if ids:
        out.append(await store.resolve_dependencies(ids[-1]))
    return out


async def test_scan_mode_gives_the_same_answers(tmp_path: Path) -> None:
    rng = random.Random(7)
    indexed = await OnDiskStore.open(tmp_path / "a", FAST)
    scanning = await OnDiskStore.open(
        tmp_path / "b", OnDiskStoreOptions(fsync=False, indexing_enabled=False)
    )
    assert not scanning.get_index_build_status().indexing_enabled
    docs = [generate_doc_id() for _ in range(4)]
    heads: dict[str, str] = {}
    for step in range(40):
        doc = rng.choice(docs)
        if step % 9 == 8:
            for store in (indexed, scanning):
                await store.purge_doc_history(doc)
            heads.pop(doc, None)
            continue
        deps = [heads[doc]] if doc in heads else []
        entry_type = EntryType.DOC_CHANGE if deps else EntryType.DOC_CREATE
        batch = [AUTHOR.entry(doc, entry_type=entry_type, deps=deps, payload=os.urandom(50))]
        heads[doc] = batch[0].id
        for store in (indexed, scanning):
            await store.put_entries(batch)
    assert await answers(indexed, docs) == await answers(scanning, docs)
    await scanning.close()
    # scan mode over the indexed store's directory answers the same too
    other = await OnDiskStore.open(
        tmp_path / "a", OnDiskStoreOptions(fsync=False, indexing_enabled=False)
    )
    assert (await answers(indexed, docs))[:4] == (await answers(other, docs))[:4]
    await other.close()
    await indexed.close()


async def test_scan_mode_instances_follow_a_clear_by_another(tmp_path: Path) -> None:
    scan = OnDiskStoreOptions(fsync=False, indexing_enabled=False)
    first = await OnDiskStore.open(tmp_path, scan)
    second = await OnDiskStore.open(tmp_path, FAST)
    await first.put_entries(make(3))
    await second.clear_all_local_data()
    fresh = make(2)
    await first.put_entries(fresh)  # must land in the new files, not the deleted ones
    assert await second.get_all_ids() == [e.id for e in fresh]
    assert await first.get_all_ids() == [e.id for e in fresh]
    await first.close()
    await second.close()
