"""``mindood bench store``: how fast the on-disk store is on this machine, as one JSON-able dict.

Measured in one run, in a scratch directory under ``workdir``:

- the raw fsync rate (write 1 KiB + fsync, and + fdatasync, which the store uses for appends):
  the ceiling for one-at-a-time durable writes;
- durable put throughput of 1 KiB entries one at a time, from many concurrent callers (group
  commit folds them into shared fsyncs), and in batches of 100, with ratios to the fsync rate;
- cold-open time of the filled store with its index snapshot, and without it (full rebuild).

Entries are built unsigned (a zero signature): the store checks ids, sizes and content hashes
but never signatures (the sync layer does), and signing 100k entries would only add ~10 s of
setup. The output says so in ``entries_signed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from store.entry import EntryMetadata, EntryType, StoreEntry
from store.ids import doc_entry_id, generate_doc_id
from store.ondisk import OnDiskStore, OnDiskStoreOptions

_PAYLOAD = 1024
_FAKE_AUTHOR = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAbenchbenchbenchbenchbenchbenchbenchbench=\n"
    "-----END PUBLIC KEY-----"
)


def _entries(count: int, per_doc: int = 10) -> list[StoreEntry]:
    """Fresh 1 KiB entries, ``per_doc`` to a document, with consistent ids and hashes."""
    out: list[StoreEntry] = []
    doc_id = generate_doc_id()
    now = time.time_ns() // 1_000_000
    for number in range(count):
        if number % per_doc == 0:
            doc_id = generate_doc_id()
        data = os.urandom(_PAYLOAD)
        digest = hashlib.sha256(data).hexdigest()
        meta = EntryMetadata(
            entry_type=EntryType.DOC_CHANGE,
            id=doc_entry_id(doc_id, (), os.urandom(16).hex()),
            content_hash=digest,
            doc_id=doc_id,
            dependency_ids=(),
            created_at=now + number,
            created_by_public_key=_FAKE_AUTHOR,
            decryption_key_id="default",
            original_size=_PAYLOAD - 28,
            encrypted_size=_PAYLOAD,
            signature=bytes(64),
        )
        out.append(StoreEntry(meta, data))
    return out


def _sync_rate(folder: Path, samples: int, sync: str) -> float:
    """Writes of 1 KiB followed by ``os.fsync``/``os.fdatasync``, per second."""
    path = folder / f"{sync}-probe"
    flush = os.fsync if sync == "fsync" else os.fdatasync
    block = os.urandom(1024)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(samples):
            os.write(fd, block)
            flush(fd)
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
        path.unlink()
    return samples / elapsed


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _scratch_dir(workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="bench-store-", dir=workdir))


async def _timed_open(path: Path, options: OnDiskStoreOptions) -> tuple[float, int]:
    started = time.perf_counter()
    store = await OnDiskStore.open(path, options)
    elapsed = time.perf_counter() - started
    count = len(await store.get_all_ids())
    await store.close()
    return elapsed, count


async def run_store_bench(
    workdir: Path,
    entries: int = 100_000,
    *,
    fsync_samples: int = 300,
    single_puts: int = 500,
    concurrent_puts: int = 5_000,
    batch_size: int = 100,
) -> dict[str, object]:
    """Run every measurement once (see the module docstring) and return the numbers."""
    scratch = await asyncio.to_thread(_scratch_dir, workdir)
    try:
        fsync_rate = await asyncio.to_thread(_sync_rate, scratch, fsync_samples, "fsync")
        fdatasync_rate = await asyncio.to_thread(_sync_rate, scratch, fsync_samples, "fdatasync")
        started = time.perf_counter()
        pool = await asyncio.to_thread(_entries, single_puts + concurrent_puts + entries)
        build_s = time.perf_counter() - started
        path = scratch / "store"
        store = await OnDiskStore.open(path)
        try:
            singles, pool = pool[:single_puts], pool[single_puts:]
            started = time.perf_counter()
            for entry in singles:
                await store.put_entries([entry])
            single_rate = len(singles) / (time.perf_counter() - started)

            group, pool = pool[:concurrent_puts], pool[concurrent_puts:]
            started = time.perf_counter()
            await asyncio.gather(*(store.put_entries([entry]) for entry in group))
            group_rate = len(group) / (time.perf_counter() - started)

            started = time.perf_counter()
            for start in range(0, len(pool), batch_size):
                await store.put_entries(pool[start : start + batch_size])
            batch_rate = len(pool) / (time.perf_counter() - started)
            compactions = (await store.get_compaction_status()).total_compactions
        finally:
            started = time.perf_counter()
            await store.close()
            close_s = time.perf_counter() - started
        open_snapshot_s, stored = await _timed_open(path, OnDiskStoreOptions())
        await asyncio.to_thread((path / "index.snap").unlink)
        no_snapshot = OnDiskStoreOptions(compaction_enabled=False, snapshot_on_close=False)
        open_rebuild_s, rebuilt = await _timed_open(path, no_snapshot)
        disk_bytes = await asyncio.to_thread(_disk_bytes, path)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
    return {
        "entries_signed": False,
        "payload_bytes": _PAYLOAD,
        "entry_build_s": round(build_s, 3),
        "fsync_per_s": round(fsync_rate, 1),
        "fdatasync_per_s": round(fdatasync_rate, 1),
        "put_single_entries_per_s": round(single_rate, 1),
        "put_single_vs_fsync": round(single_rate / fsync_rate, 3),
        "put_concurrent_single_callers": concurrent_puts,
        "put_concurrent_single_entries_per_s": round(group_rate, 1),
        "put_concurrent_single_vs_fsync": round(group_rate / fsync_rate, 3),
        "put_batch_size": batch_size,
        "put_batch_entries_per_s": round(batch_rate, 1),
        "put_batch_commits_vs_fsync": round(batch_rate / batch_size / fsync_rate, 3),
        "snapshots_written_while_filling": compactions,
        "close_with_snapshot_s": round(close_s, 3),
        "stored_entries": stored,
        "store_bytes_on_disk": disk_bytes,
        "cold_open_with_snapshot_s": round(open_snapshot_s, 3),
        "cold_open_full_rebuild_s": round(open_rebuild_s, 3),
        "cold_open_rebuild_entries": rebuilt,
    }
