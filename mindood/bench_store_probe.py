"""The cold half of ``mindood bench store``: run in a fresh process against a filled store.

    python -m mindood.bench_store_probe PATH

Prints one JSON object: the time from nothing to the first answered query, the resident
memory of the process before and after the open, and query rates at the store's size. A fresh
process is the point: the filling process holds every entry it made, this one holds none.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path

from store.base import ScanCursor
from store.ondisk import CheckOnOpen, OnDiskStore, OnDiskStoreOptions


def rss_mib() -> float:
    """Resident set size of this process now (``VmRSS``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def probe(path: Path, samples: int = 20_000, scan_limit: int = 200_000) -> dict[str, object]:
    rng = random.Random(1)
    rss_before = rss_mib()
    started = time.perf_counter()
    # the background quick_check would compete with the probe for the disk: measured apart
    store = await OnDiskStore.open(path, OnDiskStoreOptions(check_on_open=CheckOnOpen.OFF))
    head = await store.get_store_head()
    first = await store.has_entries(["probe_d_0_absent"])
    open_s = time.perf_counter() - started
    rss_open = rss_mib()
    try:
        started = time.perf_counter()
        ids = await store.get_all_ids()
        all_ids_s = time.perf_counter() - started
        wanted = rng.sample(ids, min(samples, len(ids)))
        del ids
        started = time.perf_counter()
        for at in range(0, len(wanted), 1000):
            found = await store.has_entries(wanted[at : at + 1000])
            assert len(found) == len(wanted[at : at + 1000])
        has_rate = len(wanted) / (time.perf_counter() - started)
        fetched = wanted[: samples // 4]
        started = time.perf_counter()
        for at in range(0, len(fetched), 100):
            got = await store.get_entries(fetched[at : at + 100])
            assert len(got) == len(fetched[at : at + 100])
        get_rate = len(fetched) / (time.perf_counter() - started)
        scanned = 0
        cursor: ScanCursor | None = None
        started = time.perf_counter()
        while scanned < scan_limit:
            page = await store.scan_entries_since(cursor, 1000)
            scanned += len(page.entries)
            cursor = page.next_cursor
            if not page.has_more:
                break
        scan_rate = scanned / (time.perf_counter() - started)
        started = time.perf_counter()
        report = await store.check(full=False)
        quick_check_s = time.perf_counter() - started
    finally:
        await store.close()
    return {
        "entries": head.max_receipt_order,
        "first_query_answered": first == [],
        "cold_open_to_first_query_s": round(open_s, 4),
        "rss_before_open_mib": round(rss_before, 1),
        "rss_after_open_mib": round(rss_open, 1),
        "get_all_ids_s": round(all_ids_s, 3),
        "has_entries_per_s": round(has_rate),
        "get_entries_per_s": round(get_rate),
        "scan_entries_per_s": round(scan_rate),
        "scan_entries_measured": scanned,
        "quick_check_s": round(quick_check_s, 2),
        "quick_check_ok": report.ok,
    }


def main() -> None:
    print(json.dumps(asyncio.run(probe(Path(sys.argv[1])))))


if __name__ == "__main__":
    main()
