"""The Bloom summary figures of ``mindood bench store``: building bloom-v1 over many ids.

Measured over ``ids`` store-shaped entry ids (``<docId>_d__<sha256 hex>``), medians of 3:

- ``build_s``: :meth:`BloomSummary.of_ids`, hashing every id and setting its bits: what a
  store's first summary costs (issue 17's goal: at most 0.1 s at 100,000 ids);
- ``bits_only_s``: :meth:`BloomSummary.build` from cached hash pairs, what a store pays for
  every later summary (both stores keep each id's pair once computed);
- the baseline in the same run: the scalar pure-Python hashing and bit-setting (the reference
  formulas as :func:`id_hash_pair` runs them) over a sample of ``pure_sample`` ids, per id, and
  the ratio of the two per-id costs.

Run alone with ``python -m mindood.bench_bloom [ids]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from store.bloom import BloomSummary, id_hash_arrays, id_hash_pair, parameters
from store.ids import doc_entry_id, generate_doc_id

GOAL_BUILD_S = 0.1


def store_shaped_ids(count: int) -> list[str]:
    """Distinct doc_create ids as the stores hold them."""
    return [
        doc_entry_id(generate_doc_id(), [], hashlib.sha256(os.urandom(16)).hexdigest())
        for _ in range(count)
    ]


def _median_s(work: Callable[[], object], repeats: int = 3) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def pure_bitset(ids: list[str]) -> bytes:
    """The loop the store ran before numpy: scalar hashes, then one bit at a time."""
    bit_count, hash_count = parameters(len(ids))
    bits = bytearray((bit_count + 7) // 8)
    for h1, h2 in (id_hash_pair(i) for i in ids):
        for i in range(hash_count):
            index = (h1 + i * h2) % bit_count
            bits[index >> 3] |= 1 << (index & 7)
    return bytes(bits)


def bloom_figures(ids: int = 100_000, pure_sample: int = 5_000) -> dict[str, Any]:
    """The figures described in the module docstring."""
    entry_ids = store_shaped_ids(ids)
    h1, h2 = id_hash_arrays(entry_ids)
    pairs = list(zip(h1.tolist(), h2.tolist(), strict=True))
    build_s = _median_s(lambda: BloomSummary.of_ids(entry_ids))
    bits_only_s = _median_s(lambda: BloomSummary.build(pairs, ids))
    sample = entry_ids[:pure_sample]
    if pure_bitset(sample) != BloomSummary.of_ids(sample).bitset:
        raise AssertionError("the vectorised Bloom summary differs from the pure one")
    pure_s = _median_s(lambda: pure_bitset(sample), repeats=1)
    pure_per_id_us = pure_s / len(sample) * 1e6
    per_id_us = build_s / ids * 1e6
    return {
        "ids": ids,
        "id_length": len(entry_ids[0]),
        "build_s": round(build_s, 4),
        "build_per_id_us": round(per_id_us, 3),
        "bits_only_s": round(bits_only_s, 4),
        "pure_sample": len(sample),
        "pure_per_id_us": round(pure_per_id_us, 2),
        "pure_vs_build_per_id": round(pure_per_id_us / per_id_us, 1),
        "goal_build_s_at_100k": GOAL_BUILD_S,
    }


def summary_line(figures: dict[str, Any]) -> str:
    """One line for the bench summary."""
    return (
        f"Bloom summary of {figures['ids']:,} ids: {figures['build_s'] * 1000:.0f} ms "
        f"({figures['build_per_id_us']} µs/id; pure Python {figures['pure_per_id_us']} µs/id = "
        f"{figures['pure_vs_build_per_id']}x), from cached pairs "
        f"{figures['bits_only_s'] * 1000:.0f} ms (goal {figures['goal_build_s_at_100k']} s)"
    )


if __name__ == "__main__":
    result = bloom_figures(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
    print(json.dumps(result, indent=2))
    print(summary_line(result), file=sys.stderr)
