"""The write-ahead log's backlog as the WAL index tells it, and the checkpoints it triggers."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from store.ondisk import OnDiskStore, OnDiskStoreOptions
from store.ondisk.schema import CHECKPOINT_AT_BYTES, DB_NAME
from store.ondisk.walindex import WalIndex, backlog_bytes
from tests.entries import Author

AUTHOR = Author()
FAST = OnDiskStoreOptions(fsync=False)


def test_the_backlog_is_the_log_written_since_the_last_checkpoint(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (v BLOB)")
    index = WalIndex(tmp_path / "x.sqlite-shm")
    wal = tmp_path / "x.sqlite-wal"
    for _ in range(3):  # a growing log: every frame after the 32-byte file header counts
        conn.execute("INSERT INTO t VALUES (?)", (os.urandom(3000),))
        assert index.backlog() == wal.stat().st_size - 32
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    assert index.backlog() == 0
    conn.execute("INSERT INTO t VALUES (?)", (os.urandom(3000),))
    backlog = index.backlog()
    assert backlog is not None and 0 < backlog < wal.stat().st_size - 32  # restarted log
    index.close()
    conn.close()


def test_a_header_being_rewritten_or_missing_tells_nothing(tmp_path: Path) -> None:
    assert backlog_bytes(b"") is None
    assert backlog_bytes(bytes(48) + b"\x01" + bytes(51)) is None  # the two copies differ
    assert backlog_bytes(bytes(100)) is None  # not initialised
    assert WalIndex(tmp_path / "absent-shm").backlog() is None


async def test_a_checkpointed_log_is_not_checkpointed_again_after_each_small_put(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the log file is large, a trigger on its size checkpointed after every commit."""
    store = await OnDiskStore.open(tmp_path, FAST)
    started = 0
    real = store._checkpoint

    def counting() -> None:
        nonlocal started
        started += 1
        real()

    monkeypatch.setattr(store, "_checkpoint", counting)
    while started == 0:  # fill the log past the trigger: one background checkpoint
        await store.put_entries([AUTHOR.entry(payload=os.urandom(5000)) for _ in range(100)])
    if store._checkpointer is not None:
        await asyncio.wait({store._checkpointer})
    assert (tmp_path / f"{DB_NAME}-wal").stat().st_size >= CHECKPOINT_AT_BYTES
    for _ in range(20):
        await store.put_entries([AUTHOR.entry(payload=os.urandom(100))])
        await asyncio.sleep(0)  # let a checkpoint started by the last commit finish
    assert started == 1
    await store.close()


async def test_a_steady_writer_s_log_restarts_instead_of_growing(tmp_path: Path) -> None:
    """Background checkpoints end a few frames short while puts go on; the log still restarts.

    SQLite overwrites the log from its start only once every frame was copied; a log that
    never restarts grows to the forced-checkpoint size and every commit appends to the file.
    """
    store = await OnDiskStore.open(tmp_path, FAST)
    wal = tmp_path / f"{DB_NAME}-wal"
    largest = 0
    for _ in range(1200):  # about 5 times the trigger's worth of log, one small put at a time
        await store.put_entries([AUTHOR.entry(payload=os.urandom(1000))])
        largest = max(largest, wal.stat().st_size)
    assert largest < 3 * CHECKPOINT_AT_BYTES  # a log that never restarts: about 22 MB
    await store.close()
