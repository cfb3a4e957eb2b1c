"""``OnDiskStore`` behaviour beyond the conformance suite: group commit, several instances and
processes on one file, purge erasure from the database and its WAL, bounded threads, refusals."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path

import pytest

from store.base import StoreState
from store.entry import StoreEntry
from store.errors import StoreFormatError, StoreLockedError, StoreUnavailableError
from store.ondisk import OnDiskStore, OnDiskStoreOptions, writes
from store.ondisk.schema import CHECKPOINT_FORCE_BYTES, DB_NAME
from store.ondisk.workers import THREAD_PREFIX, thread_count
from tests.entries import Author

AUTHOR = Author()
FAST = OnDiskStoreOptions(fsync=False)


def make(count: int, doc: str | None = None, size: int = 100) -> list[StoreEntry]:
    return [AUTHOR.entry(doc, payload=os.urandom(size)) for _ in range(count)]


def file_bytes(root: Path) -> bytes:
    """The database and, if present, its WAL: everything SQLite keeps of the store."""
    return b"".join(
        (root / name).read_bytes() for name in (DB_NAME, f"{DB_NAME}-wal") if (root / name).exists()
    )


async def test_concurrent_puts_are_group_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits = 0
    real_commit = writes.commit_batches

    def counting(conn: sqlite3.Connection, batches: object) -> writes.Committed:
        nonlocal commits
        commits += 1
        return real_commit(conn, batches)  # type: ignore[arg-type]

    monkeypatch.setattr(writes, "commit_batches", counting)
    store = await OnDiskStore.open(tmp_path)  # real fsyncs: that is what groups them
    entries = make(200)
    results = await asyncio.gather(*(store.put_entries([entry]) for entry in entries))
    assert all(result.stored == (entry.id,) for result, entry in zip(results, entries, strict=True))
    assert commits < 50, f"{commits} transactions for 200 concurrent puts"
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


async def test_purge_erases_ciphertext_from_the_database_and_its_wal(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    reader = await OnDiskStore.open(tmp_path, FAST)  # an idle second instance must not stop it
    secret = make(4, "subject", size=500)
    shared_payload = secret[0].encrypted_data
    bystander = [AUTHOR.entry("bystander", payload=shared_payload)]  # the same bytes, kept
    chunk = AUTHOR.chunk("subject", "att1", os.urandom(300_000))  # spills into overflow pages
    await store.put_entries([*secret, *bystander, chunk, *make(3)])
    assert await reader.get_all_ids()
    # pieces of the 300 kB chunk (overflow pages split it, so look for short slices)
    pieces = [chunk.encrypted_data[at : at + 32] for at in range(0, 300_000, 30_011)]
    before = file_bytes(tmp_path)
    assert secret[1].encrypted_data in before
    assert sum(piece in before for piece in pieces) >= len(pieces) - 2
    assert await store.purge_doc_history("subject") == 5
    raw = file_bytes(tmp_path)
    for entry in [*secret[1:], chunk]:
        assert entry.encrypted_data[:64] not in raw
        assert entry.id.encode() not in raw
        assert entry.metadata.signature not in raw
    assert not any(piece in raw for piece in pieces)
    assert shared_payload in raw  # still used by the bystander
    assert (tmp_path / f"{DB_NAME}-wal").stat().st_size == 0  # truncated, not just reset
    again = await store.put_entries(secret[1:2])  # a purged id can come back
    assert again.stored == (secret[1].id,)
    head = (await store.get_store_head()).max_receipt_order
    await reader.close()
    await store.close()
    store = await OnDiskStore.open(tmp_path, FAST)
    assert (await store.get_store_head()).max_receipt_order == head
    assert await store.has_entries([e.id for e in secret]) == [secret[1].id]
    assert (await store.get_entries([secret[1].id]))[0].encrypted_data == secret[1].encrypted_data
    await store.close()


async def test_receipt_orders_never_go_back_after_purging_the_newest(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.put_entries(make(3))
    await store.put_entries(make(2, "last"))
    await store.purge_doc_history("last")
    await store.close()
    store = await OnDiskStore.open(tmp_path, FAST)
    assert (await store.get_store_head()).max_receipt_order == 5
    fresh = make(1)
    await store.put_entries(fresh)
    assert (await store.get_metadata([fresh[0].id]))[0].receipt_order == 6
    await store.close()


async def test_clear_on_startup_and_status(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.put_entries(make(3))
    epoch = (await store.get_store_head()).epoch
    await store.close()
    store = OnDiskStore(tmp_path, OnDiskStoreOptions(fsync=False, clear_local_data_on_startup=True))
    await store.initialize()
    status = await store.await_index_ready()
    assert status.phase == "ready" and status.progress01 == 1.0
    head = await store.get_store_head()
    assert head.epoch != epoch and head.max_receipt_order == 0
    await store.close()
    await store.close()  # twice is fine


async def test_bloom_summary_is_cached_until_ids_change(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    entries = make(5)
    await store.put_entries(entries)
    first = await store.get_id_bloom_summary()
    assert await store.get_id_bloom_summary() is first
    assert all(first.might_contain(e.id) for e in entries)
    await store.put_entries(make(1))
    assert (await store.get_id_bloom_summary()).total_ids == 6
    await store.close()
    # the hashes were stored with the entries: another instance reads the same summary
    store = await OnDiskStore.open(tmp_path, FAST)
    again = await store.get_id_bloom_summary()
    assert again.total_ids == 6 and all(again.might_contain(e.id) for e in entries)
    await store.close()


async def test_threads_are_bounded_per_process_not_per_store(tmp_path: Path) -> None:
    stores = [await OnDiskStore.open(tmp_path / f"db{n}", FAST) for n in range(12)]
    await asyncio.gather(*(s.put_entries(make(20)) for s in stores))
    await asyncio.gather(*(s.scan_entries_since(None, 5) for s in stores))
    ours = [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
    assert 0 < len(ours) <= thread_count()
    for store in stores:
        await store.close()


async def test_a_writer_in_another_process_is_waited_for(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.put_entries(make(1))
    holder = await asyncio.create_subprocess_exec(
        "python3",
        "-c",
        "import sqlite3,sys,time\n"
        f"c=sqlite3.connect({str(tmp_path / DB_NAME)!r}, isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(0.8)\n"
        "c.execute('COMMIT')\n",
        stdout=asyncio.subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert await holder.stdout.readline() == b"locked\n"
    entries = make(3)
    result = await store.put_entries(entries)  # waits for the other writer, then commits
    assert result.stored == tuple(e.id for e in entries)
    assert await holder.wait() == 0
    await store.close()


async def test_a_writer_that_waits_too_long_gets_a_typed_error_and_the_store_lives(
    tmp_path: Path,
) -> None:
    store = await OnDiskStore.open(tmp_path, OnDiskStoreOptions(fsync=False, busy_timeout_s=0.2))
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreLockedError, match="locked"):
        await store.put_entries(make(1))
    other.execute("ROLLBACK")
    other.close()
    assert store.health().state is not StoreState.FAILED
    await store.put_entries(make(1))
    assert len(await store.get_all_ids()) == 1
    await store.close()


async def test_the_old_segment_log_format_is_refused_with_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "00000001.log").write_bytes(b"old records")
    (tmp_path / "index.snap").write_bytes(b"old snapshot")
    with pytest.raises(StoreFormatError, match="segment-log store") as refused:
        await OnDiskStore.open(tmp_path)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / DB_NAME).exists()  # nothing was created next to the old files


async def test_a_store_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "docs"
    path.write_text("not a directory")
    with pytest.raises(StoreUnavailableError, match="not a directory"):
        await OnDiskStore.open(path)


async def test_a_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    foreign = sqlite3.connect(tmp_path / DB_NAME)
    foreign.execute("CREATE TABLE notes (body TEXT)")
    foreign.commit()
    foreign.close()
    with pytest.raises(StoreFormatError, match="not a mindood store"):
        await OnDiskStore.open(tmp_path)


async def test_the_wal_is_checkpointed_in_the_background_and_stays_bounded(
    tmp_path: Path,
) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    wal = tmp_path / f"{DB_NAME}-wal"
    largest = 0
    for _ in range(120):  # about 60 MB of entries, past the forced-checkpoint size
        await store.put_entries(make(100, size=5000))
        largest = max(largest, wal.stat().st_size)
    assert largest < CHECKPOINT_FORCE_BYTES + 8 * 1024 * 1024
    assert (tmp_path / DB_NAME).stat().st_size > 40 * 1024 * 1024  # pages reached the file
    assert len(await store.get_all_ids()) == 12_000
    await store.close()
    assert not wal.exists()


async def test_a_bloom_summary_over_several_hash_blocks_covers_every_id(
    tmp_path: Path,
) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    entries = make(12_000, size=32)  # one put, stored as blocks of at most 4,096 ids' hashes
    await store.put_entries(entries)
    await store.purge_doc_history(entries[7_000].doc_id)
    summary = await store.get_id_bloom_summary()
    assert summary.total_ids == 11_999
    assert all(summary.might_contain(e.id) for e in entries if e is not entries[7_000])
    await store.close()
