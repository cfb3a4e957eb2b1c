"""``mindood bench store``: how fast the on-disk store is on this machine, as one JSON-able dict.

Every rate is reported next to a baseline measured in the same run, in four interleaved rounds
so that drift of a shared, noisy machine hits subject and baseline alike (only ratios compare
across runs):

- the raw fsync rate (write 1 KiB + fsync): the ceiling for one-at-a-time durable writes, and
  the baseline of single puts and of many concurrent single-entry callers (group commit folds
  them into shared transactions);
- SQLite's own insert rate for the same rows (the store's rows, built beforehand, inserted with
  ``executemany`` into the same schema with the same settings, one transaction per 100): the
  baseline of durable batches of 100, so the ratio is what the store's Python adds (SQLite's own
  single-row and 5,000-row commits against fsync are reported too: the ceilings of the other
  two ratios);
- then the store is filled to ``entries`` (batches of 5,000) and probed from a fresh process
  (``bench_store_probe``) at 100,000 entries and at ``entries``: cold open until the first
  query answers, resident memory after the open, ``get_all_ids``, has/get/scan rates; and,
  before each probe, the store's first Bloom summary there (stored hashes read, then the
  bits) next to its baseline, the in-memory summary of the same ids (hashing and bits);
- the Bloom summary over 100,000 ids in memory, vectorised against the pure-Python loop it
  replaced (``bench_bloom``).

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
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mindood.bench_bloom import bloom_figures, summary_line
from mindood.bench_progress import Progress, quiet
from store.bloom import BloomSummary
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.ids import doc_entry_id, generate_doc_id
from store.ondisk import OnDiskStore, OnDiskStoreOptions, rows, writes
from store.ondisk.schema import DB_NAME, connect, create_or_check

_PAYLOAD = 1024
_FILL_BATCH = 5_000
_PROBE_AT = 100_000
_BLOOM_IDS = 100_000
_FAKE_AUTHOR = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAbenchbenchbenchbenchbenchbenchbenchbench=\n"
    "-----END PUBLIC KEY-----"
)


def unsigned_entries(count: int, per_doc: int = 10, payload: int = _PAYLOAD) -> list[StoreEntry]:
    """Fresh entries of ``payload`` bytes, ``per_doc`` to a document, ids and hashes consistent."""
    out: list[StoreEntry] = []
    doc_id = generate_doc_id()
    now = time.time_ns() // 1_000_000
    for number in range(count):
        if number % per_doc == 0:
            doc_id = generate_doc_id()
        data = os.urandom(payload)
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
            original_size=payload - 28,
            encrypted_size=payload,
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


class _RawSqlite:
    """SQLite inserting the store's own rows, prepared beforehand: the baseline of puts.

    Same file layout, schema and settings as the store (``schema``), except that SQLite
    checkpoints the WAL itself as by default (the store does it in the background);
    ``executemany`` of the prepared rows, one transaction per batch; nothing of the store's
    Python runs.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir()
        self._conn = connect(folder / DB_NAME, OnDiskStoreOptions())
        create_or_check(self._conn, folder / DB_NAME)
        self._conn.execute("PRAGMA wal_autocheckpoint = 1000")  # SQLite's own default
        self._next = 1

    def seconds(self, entries: list[StoreEntry], batch: int) -> float:
        prepared: list[rows.Built] = []
        for at in range(0, len(entries), batch):
            built = rows.Built()
            for entry in entries[at : at + batch]:
                built.add(entry, self._next)
                self._next += 1
            prepared.append(built)
        conn = self._conn
        started = time.perf_counter()
        for built in prepared:
            with writes.transaction(conn):
                writes.insert(conn, built)
        return time.perf_counter() - started

    def close(self) -> None:
        self._conn.close()


def _scratch_dir(workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="bench-store-", dir=workdir))


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


async def _in_memory_bloom_s(ids: list[str]) -> float:
    """``BloomSummary.of_ids`` over ``ids``: the baseline of an on-disk first summary."""
    started = time.perf_counter()
    await asyncio.to_thread(BloomSummary.of_ids, ids)
    return time.perf_counter() - started


async def _fill(store: OnDiskStore, count: int, progress: Progress) -> float:
    """Put ``count`` fresh entries in batches of 5,000, made a batch at a time (flat memory)."""
    started = time.perf_counter()
    done = 0
    while done < count:
        batch = await asyncio.to_thread(unsigned_entries, min(_FILL_BATCH, count - done))
        await store.put_entries(batch)
        done += len(batch)
        if done % 50_000 < _FILL_BATCH or done == count:
            rate = done / (time.perf_counter() - started)
            progress(f"filled {done:,}/{count:,} entries ({rate:,.0f}/s)")
    return count / (time.perf_counter() - started)


@dataclass
class _Timer:
    """Seconds and items summed over the interleaved rounds of one measurement."""

    seconds: float = 0.0
    items: int = 0

    def add(self, items: int, seconds: float) -> None:
        self.items += items
        self.seconds += seconds

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0


async def _timed(items: int, work: Awaitable[object]) -> tuple[int, float]:
    started = time.perf_counter()
    await work
    return items, time.perf_counter() - started


async def _put_rounds(
    scratch: Path,
    rounds: int,
    single: int,
    concurrent: int,
    batched: int,
    batch_size: int,
    progress: Progress,
) -> dict[str, object]:
    """Puts against their baselines, in interleaved rounds so drift hits all of them alike."""
    fsync, raw_single, raw_batch, raw_big = _Timer(), _Timer(), _Timer(), _Timer()
    singles, group, batches = _Timer(), _Timer(), _Timer()
    raw = await asyncio.to_thread(_RawSqlite, scratch / "raw")
    store = await OnDiskStore.open(scratch / "puts")
    try:
        for number in range(rounds):
            progress(f"puts and their baselines: round {number + 1} of {rounds}")
            samples = 100
            fsync.add(samples, samples / await asyncio.to_thread(_fsync_rate, scratch, samples))
            pool = await asyncio.to_thread(unsigned_entries, 2 * (single + concurrent + batched))
            mine, theirs = pool[::2], pool[1::2]
            one, many, rest = mine[:single], mine[single : single + concurrent], mine[-batched:]
            raw_single.add(single, await asyncio.to_thread(raw.seconds, theirs[:single], 1))
            big = theirs[single : single + concurrent]
            raw_big.add(concurrent, await asyncio.to_thread(raw.seconds, big, concurrent))
            batch = theirs[-batched:]
            raw_batch.add(batched, await asyncio.to_thread(raw.seconds, batch, batch_size))

            async def one_by_one(entries: list[StoreEntry]) -> None:
                for entry in entries:
                    await store.put_entries([entry])

            async def in_batches(entries: list[StoreEntry]) -> None:
                for at in range(0, len(entries), batch_size):
                    await store.put_entries(entries[at : at + batch_size])

            singles.add(*await _timed(single, one_by_one(one)))
            calls = asyncio.gather(*(store.put_entries([entry]) for entry in many))
            group.add(*await _timed(concurrent, calls))
            batches.add(*await _timed(batched, in_batches(rest)))
    finally:
        await store.close()
        await asyncio.to_thread(raw.close)
    return {
        "fsync_per_s": round(fsync.rate, 1),
        "put_single_entries_per_s": round(singles.rate, 1),
        "put_single_vs_fsync": round(singles.rate / fsync.rate, 3),
        "put_concurrent_single_callers": concurrent,
        "put_concurrent_single_entries_per_s": round(group.rate, 1),
        "put_concurrent_single_vs_fsync": round(group.rate / fsync.rate, 3),
        "put_batch_size": batch_size,
        "put_batch_entries_per_s": round(batches.rate, 1),
        "sqlite_raw_insert_entries_per_s": round(raw_batch.rate, 1),
        "put_batch_vs_sqlite_raw": round(batches.rate / raw_batch.rate, 3),
        # SQLite's own ceilings for the other two, for context
        "sqlite_raw_single_commit_vs_fsync": round(raw_single.rate / fsync.rate, 3),
        "sqlite_raw_commit_of_concurrent_vs_fsync": round(raw_big.rate / fsync.rate, 3),
    }


async def run_store_bench(
    workdir: Path,
    entries: int = 100_000,
    *,
    single_puts: int = 800,
    concurrent_puts: int = 5_000,
    batched_puts: int = 20_000,
    batch_size: int = 100,
    progress: Progress = quiet,
) -> dict[str, object]:
    """Run every measurement once (see the module docstring) and return the numbers."""
    scratch = await asyncio.to_thread(_scratch_dir, workdir)
    result: dict[str, object] = {"entries_signed": False, "payload_bytes": _PAYLOAD}
    try:
        rounds = 4
        result |= await _put_rounds(
            scratch,
            rounds,
            single_puts // rounds,
            concurrent_puts,
            batched_puts // rounds,
            batch_size,
            progress,
        )
        path = scratch / "store"
        store = await OnDiskStore.open(path)
        try:
            stored = (await store.get_store_head()).max_receipt_order
            fill_rates: list[float] = []
            for target in sorted({min(_PROBE_AT, entries), entries}):
                if target > stored:
                    fill_rates.append(await _fill(store, target - stored, progress))
                    stored = target
                progress(f"first Bloom summary at {target:,} entries, and in memory")
                started = time.perf_counter()
                await store.get_id_bloom_summary()
                bloom_s = time.perf_counter() - started
                memory_s = await _in_memory_bloom_s(await store.get_all_ids())
                await store.close()
                progress(f"cold open and queries at {target:,} entries (a fresh process)")
                probe = await _probe(path) | {
                    "bloom_first_summary_s": round(bloom_s, 4),
                    "bloom_in_memory_same_ids_s": round(memory_s, 4),
                    "bloom_first_vs_in_memory": round(bloom_s / memory_s, 2),
                }
                result[f"at_{probe['entries']}"] = probe
                store = await OnDiskStore.open(path)
            if fill_rates:
                result["fill_batch_5000_entries_per_s"] = round(min(fill_rates), 1)
        finally:
            await store.close()
        result["store_bytes_on_disk"] = await asyncio.to_thread(_disk_bytes, path)
        progress(f"Bloom summaries over {_BLOOM_IDS:,} ids in memory (vectorised vs pure Python)")
        result["bloom"] = await asyncio.to_thread(bloom_figures, _BLOOM_IDS)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
    return result


def summary(result: dict[str, Any]) -> list[str]:
    """A few lines a person reads next to the JSON."""
    lines = [
        f"single puts {result['put_single_entries_per_s']:,.0f}/s "
        f"({result['put_single_vs_fsync']}x fsync); "
        f"{result['put_concurrent_single_callers']:,} concurrent callers "
        f"{result['put_concurrent_single_entries_per_s']:,.0f}/s "
        f"({result['put_concurrent_single_vs_fsync']}x fsync)",
        f"batches of {result['put_batch_size']} {result['put_batch_entries_per_s']:,.0f}/s "
        f"({result['put_batch_vs_sqlite_raw']}x raw SQLite)",
    ]
    for key, probe in sorted(result.items()):
        if key.startswith("at_") and isinstance(probe, dict):
            lines.append(
                f"at {probe['entries']:,} entries: cold open "
                f"{probe['cold_open_to_first_query_s'] * 1000:.1f} ms, "
                f"{probe['rss_after_open_mib']} MiB resident, "
                f"get {probe['get_entries_per_s']:,}/s, "
                f"first Bloom summary {probe['bloom_first_summary_s'] * 1000:.0f} ms "
                f"({probe['bloom_first_vs_in_memory']}x in memory)"
            )
    if isinstance(result.get("bloom"), dict):
        lines.append(summary_line(result["bloom"]))
    return lines
