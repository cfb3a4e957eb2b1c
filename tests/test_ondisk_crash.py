"""Real processes against one store directory: SIGKILL at random points, and concurrent writers.

Every test checks the same promise: whatever a writer acknowledged (its put returned) is there
after a reopen with the right bytes; nothing half-written is visible; no id or receipt order
is duplicated.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

from tests.ondisk_helpers import Writer, WriterLog, verify_store


async def test_sigkill_at_random_points_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    store = tmp_path / "store"
    rng = random.Random(int(os.environ.get("MINDOOD_TEST_SEED", "20260101")))
    expected = WriterLog()
    deadline = time.monotonic() + 25.0
    for round_number in range(6):
        writer = Writer(
            store,
            tmp_path / f"writer-{round_number}.out",
            [
                "--batches",
                "100000",
                "--batch-size",
                str(rng.choice([1, 3, 8])),
                "--purge-every",
                "7",
            ],
        )
        if round_number % 2:
            writer.wait_ready()  # odd rounds die while writing, even ones may die while opening
        await asyncio.sleep(rng.uniform(0.05, 0.8))
        writer.kill()
        log = writer.log()
        expected.merge(log)
        await verify_store(store, expected)
        if time.monotonic() > deadline:
            break
    assert expected.acked, "no writer acknowledged anything: the test proved nothing"


async def test_four_concurrent_writer_processes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    writers = [
        Writer(
            store,
            tmp_path / f"writer-{n}.out",
            ["--batches", "50", "--batch-size", "4", "--tag", f"p{n}"],
        )
        for n in range(4)
    ]
    expected = WriterLog()
    for writer in writers:
        writer.wait()
        log = writer.log()
        assert log.done and len(log.acked) == 200
        expected.merge(log)
    ids = await verify_store(store, expected)
    assert sorted(ids) == sorted(expected.acked)  # exactly every id, once


async def test_concurrent_writers_survive_one_being_killed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    steady = [
        Writer(store, tmp_path / f"steady-{n}.out", ["--batches", "40", "--tag", f"s{n}"])
        for n in range(2)
    ]
    victim = Writer(store, tmp_path / "victim.out", ["--batches", "100000", "--tag", "v"])
    victim.wait_ready()
    await asyncio.sleep(0.3)
    victim.kill()
    expected = victim.log()
    for writer in steady:
        writer.wait()
        expected.merge(writer.log())
    await verify_store(store, expected)
