"""Opt-in stress (``MINDOOD_STRESS=1``) and soak (``MINDOOD_SOAK=1``) suites of the on-disk store.

The reference's matrix (reference-formats §5.6), larger: high-volume single puts + restart +
full paged scan; concurrent writer processes; a fault-injection loop; plus a SIGKILL loop with
several writers at once. Soak runs the same scenarios with bigger numbers.
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from store.base import ScanCursor
from store.ondisk import OnDiskStore, OnDiskStoreOptions, RecoveryProgress
from tests.entries import Author
from tests.ondisk_helpers import Writer, WriterLog, append_bytes, verify_store
from tests.test_ondisk_faults import torn_record


@dataclass(frozen=True)
class Scale:
    single_puts: int
    writers: int
    per_writer: int
    fault_rounds: int
    per_round: int
    kill_rounds: int


STRESS = Scale(
    single_puts=20_000, writers=4, per_writer=2_000, fault_rounds=40, per_round=40, kill_rounds=20
)
SOAK = Scale(
    single_puts=60_000, writers=4, per_writer=8_000, fault_rounds=120, per_round=120, kill_rounds=60
)
SCALES = [
    pytest.param(STRESS, id="stress", marks=[pytest.mark.stress, pytest.mark.timeout(1800)]),
    pytest.param(SOAK, id="soak", marks=[pytest.mark.soak, pytest.mark.timeout(7200)]),
]
AUTHOR = Author()


@pytest.mark.parametrize("scale", SCALES)
async def test_high_volume_append_restart_and_paged_scan(tmp_path: Path, scale: Scale) -> None:
    options = OnDiskStoreOptions(compaction_min_records=5_000, segment_max_bytes=8 * 1024 * 1024)
    store = await OnDiskStore.open(tmp_path, options)
    written: list[str] = []
    for _ in range(scale.single_puts):
        entry = AUTHOR.entry(payload=os.urandom(256))
        await store.put_entries([entry])
        written.append(entry.id)
    assert (await store.get_compaction_status()).total_compactions > 0
    await store.close()
    reports: list[RecoveryProgress] = []
    store = await OnDiskStore.open(tmp_path, options, reports.append)
    assert "rebuild" not in [report.phase for report in reports]
    seen: list[str] = []
    cursor: ScanCursor | None = None
    while True:
        page = await store.scan_entries_since(cursor, 256)
        seen += [meta.id for meta in page.entries]
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert seen == written
    for start in range(0, len(written), 1000):
        assert len(await store.get_entries(written[start : start + 1000])) == len(
            written[start : start + 1000]
        )
    await store.close()


@pytest.mark.parametrize("scale", SCALES)
async def test_concurrent_writer_processes(tmp_path: Path, scale: Scale) -> None:
    store = tmp_path / "store"
    batches = scale.per_writer // 5
    writers = [
        Writer(store, tmp_path / f"w{n}.out", ["--batches", str(batches), "--tag", f"p{n}"])
        for n in range(scale.writers)
    ]
    expected = WriterLog()
    for writer in writers:
        writer.wait(timeout=1800)
        expected.merge(writer.log())
    ids = await verify_store(store, expected)
    assert sorted(ids) == sorted(expected.acked)
    assert len(ids) == scale.writers * batches * 5


@pytest.mark.parametrize("scale", SCALES)
async def test_fault_injection_loop(tmp_path: Path, scale: Scale) -> None:
    rng = random.Random(99)
    options = OnDiskStoreOptions(fsync=False)
    written: list[str] = []
    faults = [
        "truncate-snapshot",
        "flip-snapshot",
        "torn-tail",
        "garbage-tail",
        "temp-files",
        "drop-snapshot",
    ]
    for round_number in range(scale.fault_rounds):
        store = await OnDiskStore.open(tmp_path, options)
        assert await store.get_all_ids() == written, f"round {round_number}"
        for _ in range(scale.per_round // 4):
            batch = [AUTHOR.entry(payload=os.urandom(128)) for _ in range(4)]
            await store.put_entries(batch)
            written += [entry.id for entry in batch]
        await store.close()
        fault = faults[round_number % len(faults)]
        snap = tmp_path / "index.snap"
        newest = sorted((tmp_path / "segments").iterdir())[-1]
        if fault == "truncate-snapshot":
            os.truncate(snap, rng.randrange(snap.stat().st_size))
        elif fault == "flip-snapshot":
            data = bytearray(snap.read_bytes())
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            snap.write_bytes(bytes(data))
        elif fault == "torn-tail":
            append_bytes(newest, torn_record())
        elif fault == "garbage-tail":
            append_bytes(newest, os.urandom(rng.randrange(1, 5000)))
        elif fault == "temp-files":
            (tmp_path / f"index.snap.tmp-1-{round_number}").write_bytes(os.urandom(100))
        else:
            snap.unlink()
    store = await OnDiskStore.open(tmp_path, options)
    assert await store.get_all_ids() == written
    assert len(await store.get_entries(written)) == len(written)
    await store.close()


@pytest.mark.parametrize("scale", SCALES)
async def test_sigkill_loop_with_several_writers(tmp_path: Path, scale: Scale) -> None:
    rng = random.Random(4242)
    store = tmp_path / "store"
    expected = WriterLog()
    for round_number in range(scale.kill_rounds):
        writers = [
            Writer(
                store,
                tmp_path / f"r{round_number}-w{n}.out",
                [
                    "--batches",
                    "100000",
                    "--batch-size",
                    str(rng.choice([1, 4, 16])),
                    "--tag",
                    f"r{round_number}w{n}",
                    "--purge-every",
                    "11",
                ],
            )
            for n in range(rng.choice([1, 2, 3]))
        ]
        writers[0].wait_ready()
        await asyncio.sleep(rng.uniform(0.05, 1.0))
        for writer in writers:
            writer.kill()
            await asyncio.sleep(rng.uniform(0.0, 0.1))
            expected.merge(writer.log())
        await verify_store(store, expected)
    assert len(expected.acked) > scale.kill_rounds
