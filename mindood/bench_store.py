"""``mindood bench store``: how fast the on-disk store is on this machine, as one JSON-able dict.

Every rate is reported next to a baseline measured in the same run (these machines are shared
and noisy, so only ratios compare across runs):

- the raw fsync rate (write 1 KiB + fsync): the ceiling for one-at-a-time durable writes, and
  the baseline of single puts and of many concurrent single-entry callers (group commit folds
  them into shared transactions);
- SQLite's own insert rate for the same rows (the store's rows, built beforehand, inserted with
  ``executemany`` into the same schema with the same settings, one transaction per 100): the
  baseline of durable batches of 100, so the ratio is what the store's Python adds;
- then the store is filled to ``entries`` (batches of 5,000) and probed from a fresh process
  (``bench_store_probe``) at 100,000 entries and at ``entries``: cold open until the first
  query answers, resident memory after the open, ``get_all_ids``, has/get/scan rates.

Entries are built unsigned (a zero signature): the store checks ids, sizes and content hashes
but never signatures (the sync layer does). The output says so in ``entries_signed``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from store.entry import EntryMetadata, EntryType, StoreEntry
from store.ids import doc_entry_id, generate_doc_id
from store.ondisk import OnDiskStore, OnDiskStoreOptions, rows, writes
from store.ondisk.schema import DB_NAME, connect, create_or_check

_PAYLOAD = 1024
_FILL_BATCH = 5_000
_PROBE_AT = 100_000
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


def _fsync_rate(folder: Path, samples: int) -> float:
    """Writes of 1 KiB each followed by ``os.fsync``, per second."""
    path = folder / "fsync-probe"
    block = os.urandom(1024)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(samples):
            os.write(fd, block)
            os.fsync(fd)
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
        path.unlink()
    return samples / elapsed


def _raw_sqlite_rate(folder: Path, entries: list[StoreEntry], batch: int) -> float:
    """SQLite inserting the store's own rows, prepared beforehand, ``batch`` per transaction."""
    folder.mkdir()
    conn = connect(folder / DB_NAME, OnDiskStoreOptions())
    try:
        create_or_check(conn, folder / DB_NAME)
        entry_rows = [rows.entry_row(e.metadata, n + 1) for n, e in enumerate(entries)]
        payload_rows = [rows.payload_row(e) for e in entries]
        started = time.perf_counter()
        for at in range(0, len(entries), batch):
            with writes.transaction(conn):
                conn.executemany(writes.UPSERT_PAYLOAD, payload_rows[at : at + batch])
                conn.executemany(writes.INSERT_ENTRY, entry_rows[at : at + batch])
                conn.execute("UPDATE state SET max_receipt_order = ?", (at + batch,))
        return len(entries) / (time.perf_counter() - started)
    finally:
        conn.close()


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


async def _probe(path: Path) -> dict[str, object]:
    """Cold open and queries in a fresh interpreter (see ``bench_store_probe``)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mindood.bench_store_probe",
        str(path),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"store probe failed with exit code {process.returncode}")
    result: dict[str, object] = json.loads(out)
    return result


async def _fill(store: OnDiskStore, count: int, progress: Callable[[str], None] | None) -> float:
    """Put ``count`` fresh entries in batches of 5,000, made a batch at a time (flat memory)."""
    started = time.perf_counter()
    done = 0
    while done < count:
        batch = await asyncio.to_thread(_entries, min(_FILL_BATCH, count - done))
        await store.put_entries(batch)
        done += len(batch)
        if progress is not None and done % 50_000 < _FILL_BATCH:
            rate = done / (time.perf_counter() - started)
            progress(f"filled {done:,}/{count:,} entries ({rate:,.0f}/s)")
    return count / (time.perf_counter() - started)


async def run_store_bench(
    workdir: Path,
    entries: int = 100_000,
    *,
    fsync_samples: int = 300,
    single_puts: int = 500,
    concurrent_puts: int = 5_000,
    batched_puts: int = 20_000,
    batch_size: int = 100,
    progress: Callable[[str], None] | None = None,
) -> dict[str, object]:
    """Run every measurement once (see the module docstring) and return the numbers."""
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-store-", dir=workdir))
    result: dict[str, object] = {"entries_signed": False, "payload_bytes": _PAYLOAD}
    try:
        fsync_rate = await asyncio.to_thread(_fsync_rate, scratch, fsync_samples)
        pool = await asyncio.to_thread(_entries, single_puts + concurrent_puts + 2 * batched_puts)
        raw, pool = pool[:batched_puts], pool[batched_puts:]
        raw_rate = await asyncio.to_thread(_raw_sqlite_rate, scratch / "raw", raw, batch_size)
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
            del pool, raw, group, singles
            result |= {
                "fsync_per_s": round(fsync_rate, 1),
                "put_single_entries_per_s": round(single_rate, 1),
                "put_single_vs_fsync": round(single_rate / fsync_rate, 3),
                "put_concurrent_single_callers": concurrent_puts,
                "put_concurrent_single_entries_per_s": round(group_rate, 1),
                "put_concurrent_single_vs_fsync": round(group_rate / fsync_rate, 3),
                "put_batch_size": batch_size,
                "sqlite_raw_insert_entries_per_s": round(raw_rate, 1),
                "put_batch_entries_per_s": round(batch_rate, 1),
                "put_batch_vs_sqlite_raw": round(batch_rate / raw_rate, 3),
            }
            stored = (await store.get_store_head()).max_receipt_order
            fill_rates: list[float] = []
            for target in sorted({min(_PROBE_AT, entries), entries}):
                if target > stored:
                    fill_rates.append(await _fill(store, target - stored, progress))
                    stored = target
                await store.close()
                probe = await _probe(path)
                result[f"at_{probe['entries']}"] = probe
                store = await OnDiskStore.open(path)
            if fill_rates:
                result["fill_batch_5000_entries_per_s"] = round(min(fill_rates), 1)
        finally:
            await store.close()
        result["store_bytes_on_disk"] = await asyncio.to_thread(_disk_bytes, path)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
    return result
