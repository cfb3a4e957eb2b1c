"""The on-disk Bloom figures: an ``OnDiskStore``'s summary at ``ids`` entries, against memory.

A store of ``ids`` small entries (64-byte payloads: the summary reads ids, never payloads) is
filled in batches of 5,000, then, medians of 3:

- ``first_summary_s``: a freshly opened store's first ``get_id_bloom_summary`` (the store object
  is new each round, so nothing is cached in Python; the file is in the OS cache);
  ``first_ever_summary_s`` is the very first round, the first summary the filled store ever gave;
- ``later_summary_s``: the summary right after a put of 100 more entries (the id set changed);
- the baseline in the same run: ``in_memory_summary_s``, :meth:`BloomSummary.of_ids` over the
  same ids (hashing and bits, what an in-memory store's first summary costs), and the ratios.

Every summary is compared with the in-memory one over the same ids, bit for bit.
Run alone with ``python -m mindood.bench_bloom_disk [ids] [workdir]``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mindood.bench_progress import Progress, quiet
from mindood.bench_store import unsigned_entries
from store.bloom import BloomSummary
from store.ondisk import OnDiskStore

GOAL_SUMMARY_S = 0.1
_FILL_BATCH = 5_000
_LATER_PUT = 100
_ROUNDS = 3


async def _summary_s(store: OnDiskStore) -> tuple[float, BloomSummary]:
    started = time.perf_counter()
    summary = await store.get_id_bloom_summary()
    return time.perf_counter() - started, summary


async def _expect_exact(store: OnDiskStore, summary: BloomSummary) -> None:
    """The store's summary must be the one built in memory over the store's ids."""
    expected = await asyncio.to_thread(BloomSummary.of_ids, await store.get_all_ids())
    if summary != expected:
        raise AssertionError("the on-disk Bloom summary differs from the in-memory one")


def _in_memory_s(ids: list[str]) -> float:
    samples = []
    for _ in range(_ROUNDS):
        started = time.perf_counter()
        BloomSummary.of_ids(ids)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _scratch_dir(workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="bench-bloom-", dir=workdir))


async def ondisk_bloom_figures(
    workdir: Path, ids: int = 100_000, progress: Progress = quiet
) -> dict[str, Any]:
    """The figures described in the module docstring."""
    scratch = await asyncio.to_thread(_scratch_dir, workdir)
    path = scratch / "store"
    try:
        store = await OnDiskStore.open(path)
        try:
            done = 0
            while done < ids:
                batch = await asyncio.to_thread(
                    unsigned_entries, min(_FILL_BATCH, ids - done), 10, 64
                )
                await store.put_entries(batch)
                done += len(batch)
                if done % 50_000 < _FILL_BATCH or done == ids:
                    progress(f"filled {done:,}/{ids:,} entries")
        finally:
            await store.close()
        firsts: list[float] = []
        for _ in range(_ROUNDS):
            store = await OnDiskStore.open(path)
            try:
                seconds, summary = await _summary_s(store)
                firsts.append(seconds)
                await _expect_exact(store, summary)
            finally:
                await store.close()
        progress(f"first summaries at {ids:,} ids: {', '.join(f'{s:.3f}' for s in firsts)} s")
        laters: list[float] = []
        store = await OnDiskStore.open(path)
        try:
            for _ in range(_ROUNDS):
                more = await asyncio.to_thread(unsigned_entries, _LATER_PUT, 10, 64)
                await store.put_entries(more)
                seconds, summary = await _summary_s(store)
                laters.append(seconds)
                await _expect_exact(store, summary)
            all_ids = await store.get_all_ids()
        finally:
            await store.close()
        progress(f"in-memory baseline over the same {len(all_ids):,} ids")
        in_memory_s = await asyncio.to_thread(_in_memory_s, all_ids)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)
    first_s, later_s = statistics.median(firsts), statistics.median(laters)
    return {
        "ids": ids,
        "first_summary_s": round(first_s, 4),
        "first_ever_summary_s": round(firsts[0], 4),
        "later_summary_s": round(later_s, 4),
        "in_memory_summary_s": round(in_memory_s, 4),
        "first_vs_in_memory": round(first_s / in_memory_s, 2),
        "later_vs_in_memory": round(later_s / in_memory_s, 2),
        "goal_summary_s_at_100k": GOAL_SUMMARY_S,
    }


def summary_line(figures: dict[str, Any]) -> str:
    """One line for the bench summary."""
    return (
        f"on-disk Bloom summary of {figures['ids']:,} ids: first "
        f"{figures['first_summary_s'] * 1000:.0f} ms (first ever "
        f"{figures['first_ever_summary_s'] * 1000:.0f} ms), after a put "
        f"{figures['later_summary_s'] * 1000:.0f} ms; in memory "
        f"{figures['in_memory_summary_s'] * 1000:.0f} ms "
        f"({figures['first_vs_in_memory']}x / {figures['later_vs_in_memory']}x; "
        f"goal {figures['goal_summary_s_at_100k']} s)"
    )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    where = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.gettempdir())
    result = asyncio.run(
        ondisk_bloom_figures(where, count, lambda line: print(line, file=sys.stderr))
    )
    print(json.dumps(result, indent=2))
    print(summary_line(result), file=sys.stderr)
