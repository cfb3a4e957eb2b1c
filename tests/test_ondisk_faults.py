"""Fault injection on the files of a store: each fault ends in a clear refusal, a visible
recovery or a quarantined entry, never in wrong or silently missing data.

Faults: a damaged metadata row, a damaged payload, zeroed pages, a truncated database file,
a deleted or torn WAL (committed transactions lost), a database put back from before a
clear, a stray ``-shm``, a missing database beside its WAL, a deleted database, and garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from pathlib import Path

import pytest

from store.base import StoreState
from store.entry import EntryType, StoreEntry
from store.errors import StoreCorruptionError, StoreError, StoreUnavailableError
from store.ondisk import CheckOnOpen, OnDiskStore, OnDiskStoreOptions
from store.ondisk.schema import DB_NAME, WITNESS_NAME
from tests.entries import Author

AUTHOR = Author()
FAST = OnDiskStoreOptions(fsync=False)
CHECKED = OnDiskStoreOptions(fsync=False, check_on_open=CheckOnOpen.BLOCKING)
PAGE = 4096


def make_entries(count: int, doc: str | None = None) -> list[StoreEntry]:
    return [AUTHOR.entry(doc, payload=os.urandom(200)) for _ in range(count)]


async def populate(path: Path, batches: int = 6) -> list[StoreEntry]:
    """A closed store (its WAL folded into the database) holding 5 entries per batch."""
    store = await OnDiskStore.open(path, FAST)
    written: list[StoreEntry] = []
    for _ in range(batches):
        batch = make_entries(5)
        await store.put_entries(batch)
        written += batch
    await store.close()
    assert not (path / f"{DB_NAME}-wal").exists(), "a clean close leaves no WAL"
    return written


def flip(path: Path, needle: bytes, at: int = 5) -> int:
    data = bytearray(path.read_bytes())
    where = data.find(needle)
    assert where >= 0 and data.count(needle) == 1, "the bytes to damage must be unique"
    data[where + at] ^= 0x55
    path.write_bytes(bytes(data))
    return where


def ids(entries: list[StoreEntry]) -> list[str]:
    return [entry.id for entry in entries]


async def test_a_damaged_metadata_row_costs_that_entry_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    written = await populate(tmp_path)
    victim = written[12]
    flip(tmp_path / DB_NAME, victim.metadata.signature)  # inside the row's metadata blob only
    store = await OnDiskStore.open(tmp_path, CHECKED)  # the file's structure is intact
    with caplog.at_level(logging.WARNING, logger="store.ondisk"):
        metas = await store.get_metadata(ids(written))
    survivors = [e for e in written if e.id != victim.id]
    assert [m.id for m in metas] == ids(survivors)
    assert [m.signature for m in metas] == [e.metadata.signature for e in survivors]
    warned = [r for r in caplog.records if r.getMessage() == "damaged entry quarantined"]
    assert [r.entry_id for r in warned] == [victim.id]  # type: ignore[attr-defined]
    assert store.health().quarantined == 1 and store.health().state is StoreState.OK
    assert store.health().quarantined_ids == (victim.id,)  # status names it
    assert await store.get_all_ids() == ids(survivors)  # no longer listed: peers resend it
    assert await store.has_entries([victim.id]) == []
    assert await store.quarantined_ids() == [victim.id]  # sync asks peers for these
    result = await store.put_entries([victim])  # a good copy from a peer is taken again
    assert result.stored == (victim.id,)
    assert (await store.get_entries([victim.id]))[0].metadata.signature == victim.metadata.signature
    # The good copy lifts the quarantine: nothing is missing any more (the log says it healed).
    assert store.health().quarantined == 0 and store.health().quarantined_ids == ()
    await store.close()
    store = await OnDiskStore.open(tmp_path, CHECKED)
    assert store.health().quarantined == 0 and await store.quarantined_ids() == []
    assert len(await store.get_entries(ids(written))) == len(written)
    await store.close()


async def test_a_damaged_payload_is_never_served_and_is_fetched_again(tmp_path: Path) -> None:
    written = await populate(tmp_path)
    victim = written[3]
    flip(tmp_path / DB_NAME, victim.encrypted_data[40:80])
    store = await OnDiskStore.open(tmp_path, FAST)
    entries = await store.get_entries(ids(written))
    assert ids(entries) == [i for i in ids(written) if i != victim.id]
    assert all(
        e.encrypted_data == w.encrypted_data for e, w in zip(entries, written[:3], strict=False)
    )
    assert store.health().quarantined == 1
    assert (await store.put_entries([victim])).stored == (victim.id,)
    again = await store.get_entries([victim.id])
    assert again[0].encrypted_data == victim.encrypted_data  # the payload row was replaced
    await store.close()


async def test_payloads_read_without_metadata_are_checked_all_the_same(tmp_path: Path) -> None:
    written = await populate(tmp_path)
    victim = written[3]
    flip(tmp_path / DB_NAME, victim.encrypted_data[40:80])
    store = await OnDiskStore.open(tmp_path, FAST)
    payloads = await store.get_payloads(ids(written))
    assert set(payloads) == {i for i in ids(written) if i != victim.id}
    assert all(payloads[e.id] == e.encrypted_data for e in written if e.id != victim.id)
    assert store.health().quarantined_ids == (victim.id,)
    await store.close()


async def test_read_docs_sends_checked_payloads_of_documents_without_a_snapshot(
    tmp_path: Path,
) -> None:
    plain, victim_doc, snapped = "plaindoc", "victimdoc", "snappeddoc"
    ok, victim = make_entries(2, plain), make_entries(2, victim_doc)
    snap = [*make_entries(1, snapped), AUTHOR.entry(snapped, entry_type=EntryType.DOC_SNAPSHOT)]
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.put_entries([*ok, *victim, *snap])
    await store.close()
    flip(tmp_path / DB_NAME, victim[1].encrypted_data[40:80])
    store = await OnDiskStore.open(tmp_path, FAST)
    found = await store.read_docs([plain, victim_doc, snapped])
    assert [m.id for m in found.metadata[victim_doc]] == ids(victim)  # listed as find does
    assert found.payloads == {e.id: e.encrypted_data for e in [*ok, victim[0]]}
    assert store.health().quarantined_ids == (victim[1].id,)  # reported, not sent
    assert await store.get_payloads([victim[1].id]) == {}
    await store.close()


async def test_full_check_finds_damaged_rows_and_quarantines_them(tmp_path: Path) -> None:
    written = await populate(tmp_path)
    flip(tmp_path / DB_NAME, written[7].metadata.signature)
    flip(tmp_path / DB_NAME, written[20].encrypted_data[10:50])
    store = await OnDiskStore.open(tmp_path, CHECKED)  # quick_check: the structure is fine
    assert store.health().state is StoreState.OK
    report = await store.check(full=True)
    assert not report.ok and report.entries_checked == len(written)
    assert sorted(row.id for row in report.damaged_rows) == sorted([written[7].id, written[20].id])
    assert not report.bad_payloads and report.payloads_checked == len(written)
    assert store.health().quarantined == 2
    assert (await store.check(full=True)).ok
    assert len(await store.get_all_ids()) == len(written) - 2
    await store.close()


async def test_a_damaged_shared_chunk_costs_every_entry_using_it(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    data = os.urandom(5000)
    first = AUTHOR.chunk("doca", "att1", data)
    second = AUTHOR.chunk("docb", "att2", data)  # the same ciphertext: kept once
    other = AUTHOR.chunk("docc", "att3", os.urandom(5000))
    await store.put_entries([first, second, other])
    await store.close()
    flip(tmp_path / DB_NAME, data[100:140])
    store = await OnDiskStore.open(tmp_path, FAST)
    got = await store.get_entries([first.id, other.id])
    assert ids(got) == [other.id]
    assert list(await store.get_payloads([first.id, other.id])) == [other.id]
    assert await store.has_entries([first.id, second.id]) == []  # its twin lost the bytes too
    assert store.health().quarantined == 2
    assert (await store.put_entries([second])).stored == (second.id,)  # a good copy returns
    assert (await store.get_entries([second.id]))[0].encrypted_data == data
    assert (await store.check(full=True)).ok
    await store.close()


def zero_page_holding(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    page = data.find(needle) // PAGE
    assert page > 0
    data[page * PAGE : (page + 1) * PAGE] = bytes(PAGE)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("mode", [CheckOnOpen.BLOCKING, CheckOnOpen.BACKGROUND])
async def test_zeroed_pages_fail_the_store_with_a_clear_status(
    tmp_path: Path, mode: CheckOnOpen, caplog: pytest.LogCaptureFixture
) -> None:
    written = await populate(tmp_path, batches=40)
    zero_page_holding(tmp_path / DB_NAME, written[100].metadata.signature)
    with caplog.at_level(logging.ERROR, logger="store.ondisk"):
        store = await OnDiskStore.open(
            tmp_path, OnDiskStoreOptions(fsync=False, check_on_open=mode)
        )
        for _ in range(200):  # the background check finishes within moments
            if store.health().state is StoreState.FAILED:
                break
            try:
                listed = await store.get_all_ids()
            except StoreCorruptionError:
                break
            assert listed == ids(written), "a damaged file must never answer with fewer ids"
            await asyncio.sleep(0.02)
    health = store.health()
    assert health.state is StoreState.FAILED and health.problem and "damaged" in health.problem
    assert any(r.getMessage() == "store failed" for r in caplog.records)
    with pytest.raises(StoreCorruptionError, match="failed"):
        await store.get_all_ids()
    with pytest.raises(StoreCorruptionError):
        await store.put_entries(make_entries(1))
    await store.close()


@pytest.mark.parametrize("keep", [0.5, 0.9])
async def test_a_truncated_database_file_is_refused(tmp_path: Path, keep: float) -> None:
    await populate(tmp_path, batches=40)
    db = tmp_path / DB_NAME
    os.truncate(db, int(db.stat().st_size * keep) // PAGE * PAGE)
    with pytest.raises(StoreError, match="damaged"):
        store = await OnDiskStore.open(tmp_path, CHECKED)
        await store.get_all_ids()  # reached only if the open did not refuse
        await store.close()


async def test_garbage_instead_of_a_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(os.urandom(20_000))
    with pytest.raises(StoreCorruptionError, match="damaged"):
        await OnDiskStore.open(tmp_path, FAST)


def copy_as_crashed(source: Path, target: Path, wal: str) -> None:
    target.mkdir()
    shutil.copy(source / DB_NAME, target / DB_NAME)
    shutil.copy(source / WITNESS_NAME, target / WITNESS_NAME)
    wal_bytes = (source / f"{DB_NAME}-wal").read_bytes()
    if wal == "torn":
        (target / f"{DB_NAME}-wal").write_bytes(wal_bytes[: len(wal_bytes) // 2])
    elif wal == "kept":
        (target / f"{DB_NAME}-wal").write_bytes(wal_bytes)


async def crashed_copy(source: Path, target: Path, wal: str) -> tuple[list[StoreEntry], int]:
    """Write, then copy the files as a crash left them, with the WAL kept, dropped or torn."""
    store = await OnDiskStore.open(source, FAST)
    written: list[StoreEntry] = []
    for _ in range(8):
        batch = make_entries(5)
        await store.put_entries(batch)
        written += batch
    head = (await store.get_store_head()).max_receipt_order
    copy_as_crashed(source, target, wal)
    await store.close()
    return written, head


@pytest.mark.parametrize("wal", ["deleted", "torn"])
async def test_lost_commits_are_detected_and_start_a_new_epoch(
    tmp_path: Path, wal: str, caplog: pytest.LogCaptureFixture
) -> None:
    written, head = await crashed_copy(tmp_path / "live", tmp_path / "copy", wal)
    before = await OnDiskStore.open(tmp_path / "live", FAST)
    old_epoch = (await before.get_store_head()).epoch
    await before.close()
    with caplog.at_level(logging.ERROR, logger="store.ondisk"):
        store = await OnDiskStore.open(tmp_path / "copy", CHECKED)
    present = await store.get_all_ids()
    assert len(present) < len(written) and present == ids(written)[: len(present)]
    health = store.health()
    assert health.state is StoreState.OK and health.recovered
    assert f"{head} was acknowledged" in health.recovered
    assert any("lost acknowledged writes" in r.getMessage() for r in caplog.records)
    new_head = await store.get_store_head()
    assert new_head.epoch != old_epoch  # peers holding cursors past the loss rescan
    assert len(await store.get_entries(present)) == len(present)
    await store.close()
    store = await OnDiskStore.open(tmp_path / "copy", FAST)
    assert store.health().recovered is None  # recovered once; the new epoch is consistent
    await store.close()


async def test_a_crash_with_the_wal_intact_loses_nothing(tmp_path: Path) -> None:
    written, head = await crashed_copy(tmp_path / "live", tmp_path / "copy", "kept")
    store = await OnDiskStore.open(tmp_path / "copy", CHECKED)
    assert await store.get_all_ids() == ids(written)
    assert store.health().recovered is None
    assert (await store.get_store_head()).max_receipt_order == head
    await store.close()


async def test_a_database_put_back_from_before_a_clear_is_detected(tmp_path: Path) -> None:
    await populate(tmp_path)
    shutil.copy(tmp_path / DB_NAME, tmp_path / "old.sqlite")
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.clear_all_local_data()
    await store.put_entries(make_entries(2))
    await store.close()
    shutil.copy(tmp_path / "old.sqlite", tmp_path / DB_NAME)
    store = await OnDiskStore.open(tmp_path, FAST)
    assert store.health().recovered and "older" in store.health().recovered
    await store.close()


async def test_a_stray_shm_file_is_harmless(tmp_path: Path) -> None:
    written = await populate(tmp_path)
    (tmp_path / f"{DB_NAME}-shm").write_bytes(os.urandom(32768))
    store = await OnDiskStore.open(tmp_path, CHECKED)
    assert await store.get_all_ids() == ids(written)
    assert store.health().state is StoreState.OK and store.health().recovered is None
    more = make_entries(2)
    await store.put_entries(more)
    await store.close()
    store = await OnDiskStore.open(tmp_path, CHECKED)
    assert await store.get_all_ids() == ids(written + more)
    await store.close()


async def test_a_missing_database_beside_its_wal_is_refused(tmp_path: Path) -> None:
    await crashed_copy(tmp_path / "live", tmp_path / "copy", "kept")
    (tmp_path / "copy" / DB_NAME).unlink()
    with pytest.raises(StoreCorruptionError, match="write-ahead log"):
        await OnDiskStore.open(tmp_path / "copy", FAST)
    assert not (tmp_path / "copy" / DB_NAME).exists()


async def test_a_deleted_database_starts_empty_and_says_so(tmp_path: Path) -> None:
    await populate(tmp_path)
    (tmp_path / DB_NAME).unlink()
    store = await OnDiskStore.open(tmp_path, FAST)
    assert await store.get_all_ids() == []
    assert store.health().recovered and "missing" in store.health().recovered
    await store.close()


async def test_a_stopped_writer_fails_puts_at_once_instead_of_hanging(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path / "s", FAST)
    await store.put_entries(make_entries(2))
    # Fault injection: the writer task dies (a bug, or someone cancelled it). Nothing real
    # stops it on demand, so the test cancels it.
    writer = store._writer
    assert writer is not None
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
    async with asyncio.timeout(5):  # fails fast: a hang would trip this
        with pytest.raises(StoreUnavailableError, match="writer"):
            await store.put_entries(make_entries(1))
    health = store.health()
    assert health.state is StoreState.FAILED and "writer" in (health.problem or "")
    await store.close()


def test_a_store_left_open_when_its_loop_ends_warns_instead_of_failing_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``asyncio.run`` cancels the writer of a store nobody closed: nothing was lost, so the
    log says to close it, not that the store failed; the data is there at the next open."""
    entries = make_entries(3)

    async def leave_open() -> None:
        store = await OnDiskStore.open(tmp_path / "s", FAST)
        await store.put_entries(entries)

    with caplog.at_level(logging.INFO, logger="store.ondisk"):
        asyncio.run(leave_open())
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (logging.WARNING, next(m for _l, m in messages if "left open" in m)) in messages
    assert not [m for level, m in messages if level >= logging.ERROR], messages

    async def reopen() -> list[str]:
        store = await OnDiskStore.open(tmp_path / "s", FAST)
        try:
            return await store.get_all_ids()
        finally:
            await store.close()

    assert sorted(asyncio.run(reopen())) == sorted(e.id for e in entries)
