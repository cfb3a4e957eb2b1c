"""Fault injection on the files of a closed store: every reopen keeps every acknowledged entry.

Faults: a truncated or corrupted snapshot, a snapshot claiming more log than exists, a torn
last record, garbage after the last record, stray temp files, a corrupted record in the middle
of a segment, a corrupted payload, and a crash between a purge's record and its erasure.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from store.codec import encode_metadata
from store.entry import StoreEntry
from store.errors import CorruptEntryError
from store.ondisk import OnDiskStore, OnDiskStoreOptions, RecoveryProgress
from store.ondisk.log import SegmentLog
from store.ondisk.records import RecordType, encode_payload, encode_record
from tests.entries import Author
from tests.ondisk_helpers import append_bytes

AUTHOR = Author()
NO_SNAPSHOT = OnDiskStoreOptions(fsync=False, compaction_enabled=False, snapshot_on_close=False)


def make_entries(count: int, doc: str | None = None) -> list[StoreEntry]:
    return [AUTHOR.entry(doc, payload=os.urandom(200)) for _ in range(count)]


async def populate(
    path: Path, batches: int = 6, options: OnDiskStoreOptions | None = None
) -> list[str]:
    store = await OnDiskStore.open(path, options or OnDiskStoreOptions(fsync=False))
    written: list[str] = []
    for _ in range(batches):
        batch = make_entries(5)
        await store.put_entries(batch)
        written += [entry.id for entry in batch]
    await store.close()
    return written


async def reopen_and_check(
    path: Path, expected: list[str], options: OnDiskStoreOptions | None = None
) -> tuple[list[RecoveryProgress], OnDiskStore]:
    reports: list[RecoveryProgress] = []
    store = await OnDiskStore.open(path, options or OnDiskStoreOptions(fsync=False), reports.append)
    assert await store.get_all_ids() == expected
    entries = await store.get_entries(expected)
    assert [entry.id for entry in entries] == expected
    return reports, store


def segment(path: Path, number: int = 1) -> Path:
    return path / "segments" / f"{number:08d}.log"


def phases(reports: list[RecoveryProgress]) -> list[str]:
    return [report.phase for report in reports]


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage-header"])
async def test_damaged_snapshot_triggers_a_reported_rebuild(tmp_path: Path, damage: str) -> None:
    written = await populate(tmp_path)
    snap = tmp_path / "index.snap"
    data = bytearray(snap.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[len(data) // 2] ^= 0xFF
    elif damage == "empty":
        data = bytearray()
    else:
        data[:8] = b"NOTASNAP"
    snap.write_bytes(bytes(data))
    reports, store = await reopen_and_check(tmp_path, written)
    assert "rebuild" in phases(reports) and reports[-1].progress01 == 1.0
    status = store.get_index_build_status()
    assert status.progress01 == 1.0 and status.indexing_enabled
    assert (await store.get_compaction_status()).total_compactions == 1  # fresh snapshot
    await store.close()
    _reports, store = await reopen_and_check(tmp_path, written)
    assert "rebuild" not in phases(_reports)
    await store.close()


async def test_snapshot_covering_more_than_the_log_is_not_trusted(tmp_path: Path) -> None:
    written = await populate(tmp_path)
    seg = segment(tmp_path)
    os.truncate(seg, seg.stat().st_size // 2)  # the log lost bytes the snapshot claims
    reports: list[RecoveryProgress] = []
    store = await OnDiskStore.open(tmp_path, OnDiskStoreOptions(fsync=False), reports.append)
    assert "rebuild" in phases(reports)
    ids = await store.get_all_ids()
    assert 0 < len(ids) < len(written) and ids == written[: len(ids)]
    assert len(await store.get_entries(ids)) == len(ids)
    await store.close()


async def test_snapshot_of_another_epoch_is_not_trusted(tmp_path: Path) -> None:
    written = await populate(tmp_path)
    (tmp_path / "epoch").write_text("0190f000-0000-7000-8000-000000000000\n")
    reports, store = await reopen_and_check(tmp_path, written)
    assert "rebuild" in phases(reports)
    await store.close()


def torn_record() -> bytes:
    entry = make_entries(1)[0]
    payload = encode_payload(bytes.fromhex(entry.metadata.content_hash), entry.encrypted_data)
    record = encode_record(
        RecordType.ENTRY, encode_metadata(entry.metadata.with_receipt_order(999))
    )
    return payload + record[: len(record) // 2]


@pytest.mark.parametrize(
    "options", [OnDiskStoreOptions(fsync=False), NO_SNAPSHOT], ids=["snap", "log"]
)
async def test_torn_last_record_is_truncated(tmp_path: Path, options: OnDiskStoreOptions) -> None:
    written = await populate(tmp_path, options=options)
    seg = segment(tmp_path)
    clean_size = seg.stat().st_size
    append_bytes(seg, torn_record())
    _reports, store = await reopen_and_check(tmp_path, written, options)
    size_after_open = seg.stat().st_size
    more = make_entries(3)
    await store.put_entries(more)
    await store.close()
    assert size_after_open < clean_size + len(torn_record())
    _reports, store = await reopen_and_check(tmp_path, written + [e.id for e in more], options)
    await store.close()


@pytest.mark.parametrize("size", [1, 7, 4096, 100_000])
async def test_garbage_after_the_last_record_is_dropped(tmp_path: Path, size: int) -> None:
    written = await populate(tmp_path, options=NO_SNAPSHOT)
    seg = segment(tmp_path)
    clean_size = seg.stat().st_size
    append_bytes(seg, os.urandom(size))
    _reports, store = await reopen_and_check(tmp_path, written, NO_SNAPSHOT)
    assert seg.stat().st_size == clean_size
    await store.close()


async def test_stray_temp_files_are_removed(tmp_path: Path) -> None:
    written = await populate(tmp_path)
    strays = [tmp_path / "index.snap.tmp-123-abcd", tmp_path / "epoch.tmp-9-ffff"]
    for stray in strays:
        stray.write_bytes(b"half a file")
    _reports, store = await reopen_and_check(tmp_path, written)
    assert not any(stray.exists() for stray in strays)
    await store.close()


async def test_corruption_mid_segment_skips_only_that_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    written = await populate(tmp_path, options=NO_SNAPSHOT)
    seg = segment(tmp_path)
    data = bytearray(seg.read_bytes())
    victim = written[12]
    at = data.find(victim.encode())  # inside the ENTRY record of one entry
    data[at + 5] ^= 0x55
    seg.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR, logger="store.ondisk"):
        store = await OnDiskStore.open(tmp_path, NO_SNAPSHOT)
    survivors = [i for i in written if i != victim]
    assert await store.get_all_ids() == survivors
    assert len(await store.get_entries(survivors)) == len(survivors)
    damage = [r for r in caplog.records if r.getMessage() == "corrupted log region skipped"]
    assert damage and damage[0].segment == 1 and damage[0].start < at < damage[0].end  # type: ignore[attr-defined]
    # the store stays writable, and the victim can be sent again (e.g. by a peer)
    more = make_entries(2)
    await store.put_entries(more)
    assert (await store.get_store_head()).max_receipt_order == len(written) + 2
    await store.close()


async def test_corrupted_payload_is_never_returned(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, OnDiskStoreOptions(fsync=False))
    entries = make_entries(4)
    await store.put_entries(entries)
    await store.close()
    seg = segment(tmp_path)
    data = bytearray(seg.read_bytes())
    at = data.find(entries[1].encrypted_data)
    data[at + 10] ^= 0x01
    seg.write_bytes(bytes(data))
    store = await OnDiskStore.open(tmp_path, OnDiskStoreOptions(fsync=False))  # snapshot: no scan
    with pytest.raises(CorruptEntryError):
        await store.get_entries([entries[1].id])
    good = [entries[0].id, entries[2].id, entries[3].id]
    assert [e.id for e in await store.get_entries(good)] == good
    await store.close()


async def test_purge_interrupted_before_erasure_is_finished_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await OnDiskStore.open(tmp_path, NO_SNAPSHOT)
    secret = make_entries(3, doc="gdpr_subject")
    keep = make_entries(3)
    await store.put_entries(secret + keep)
    monkeypatch.setattr(SegmentLog, "erase", lambda self, regions: 0)  # crash before erasing
    assert await store.purge_doc_history("gdpr_subject") == 3
    await store.close()
    assert secret[0].encrypted_data in segment(tmp_path).read_bytes()
    monkeypatch.undo()
    _reports, store = await reopen_and_check(tmp_path, [e.id for e in keep], NO_SNAPSHOT)
    await store.close()
    raw = segment(tmp_path).read_bytes()
    for entry in secret:
        assert entry.encrypted_data not in raw
        assert raw.count(entry.id.encode()) == 1  # in the purge record only; metadata erased
