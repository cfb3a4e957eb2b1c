"""Opt-in stress (``MINDOOD_STRESS=1``) and soak (``MINDOOD_SOAK=1``) suites of the on-disk store.

The reference's matrix (reference-formats §5.6), larger: high-volume single puts + restart +
full paged scan; concurrent writer processes; a fault-injection loop (stray -shm, torn or
deleted WAL after a crash, damaged rows); plus a SIGKILL loop with several writers at once.
Soak runs the same scenarios with bigger numbers.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from store.base import ScanCursor, StoreState
from store.ondisk import CheckOnOpen, OnDiskStore, OnDiskStoreOptions
from store.ondisk.schema import DB_NAME
from tests.entries import Author
from tests.ondisk_helpers import Writer, WriterLog, verify_store


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
    store = await OnDiskStore.open(tmp_path)
    written: list[str] = []
    for _ in range(scale.single_puts):
        entry = AUTHOR.entry(payload=os.urandom(256))
        await store.put_entries([entry])
        written.append(entry.id)
    await store.close()
    store = await OnDiskStore.open(tmp_path, OnDiskStoreOptions(check_on_open=CheckOnOpen.BLOCKING))
    assert store.health().state is StoreState.OK
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
    """Each round writes, then damages the files; every reopen must account for every id."""
    rng = random.Random(99)
    options = OnDiskStoreOptions(fsync=False, check_on_open=CheckOnOpen.BLOCKING)
    live = tmp_path / "live"
    written: list[str] = []
    quarantined: set[str] = set()
    faults = ["stray-shm", "crash-wal-kept", "crash-wal-torn", "crash-wal-deleted", "flip-row"]
    for round_number in range(scale.fault_rounds):
        store = await OnDiskStore.open(live, options)
        present = await store.get_all_ids()
        health = store.health()
        assert health.state is StoreState.OK, f"round {round_number}: {health}"
        missing = [i for i in written if i not in set(present)]
        assert set(missing) <= quarantined or health.recovered, f"round {round_number}: silent loss"
        if health.recovered:  # commits were lost and said so: carry on from what is there
            written = present
        for _ in range(scale.per_round // 4):
            batch = [AUTHOR.entry(payload=os.urandom(128)) for _ in range(4)]
            await store.put_entries(batch)
            written += [entry.id for entry in batch]
        fault = faults[round_number % len(faults)]
        db, wal = live / DB_NAME, live / f"{DB_NAME}-wal"
        if fault.startswith("crash"):  # copy the files as they are while the store is open
            crashed = tmp_path / f"crash-{round_number}"
            crashed.mkdir()
            for name in (DB_NAME, "store.witness"):
                shutil.copy(live / name, crashed / name)
            wal_bytes = wal.read_bytes() if wal.exists() else b""
            if fault == "crash-wal-kept":
                (crashed / wal.name).write_bytes(wal_bytes)
            elif fault == "crash-wal-torn":
                (crashed / wal.name).write_bytes(wal_bytes[: rng.randrange(len(wal_bytes) + 1)])
            await store.close()
            shutil.rmtree(live)
            crashed.rename(live)
            continue
        await store.close()
        if fault == "stray-shm":
            (live / f"{DB_NAME}-shm").write_bytes(os.urandom(rng.randrange(1, 40_000)))
        else:  # flip one byte inside the metadata of a random entry
            store = await OnDiskStore.open(live, options)
            victim = rng.choice(written)
            signature = (await store.get_metadata([victim]))[0].signature
            await store.close()
            data = bytearray(db.read_bytes())
            at = data.find(signature)
            data[at + rng.randrange(len(signature))] ^= 1 << rng.randrange(8)
            db.write_bytes(bytes(data))
            quarantined.add(victim)
    store = await OnDiskStore.open(live, options)
    present = await store.get_all_ids()
    assert set(written) - set(present) <= quarantined or store.health().recovered
    served = {entry.id for entry in await store.get_entries(present)}
    assert set(present) - served <= quarantined  # damaged rows are found on read, set aside
    assert store.health().quarantined >= len(set(present) - served)
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
