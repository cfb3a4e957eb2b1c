"""``mindood bench tenant`` and the Bloom figures (in memory and on disk), run small.

Only the shape and the internal consistency of the results are checked: timings are never
asserted (they are figures for a person, taken against a floor of the same run).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mindood import bench_bloom, bench_bloom_disk, bench_tenant
from store.bloom import BloomSummary
from tests import tenant_helpers as th


@pytest.fixture(autouse=True, scope="module")
def _fast_kdf() -> Iterator[None]:
    yield from th.fast_kdf()


async def test_tenant_bench_reports_each_operation_against_its_floors() -> None:
    result = await bench_tenant.run_tenant_bench(rounds=1)
    assert result["pbkdf2_iterations"] == th.FAST_ITERATIONS
    assert result["floor_s"] == pytest.approx(result["pbkdf2_s"] + result["rsa_load_s"], abs=1e-3)
    for op, (derivations, loads) in bench_tenant.FORCED.items():
        assert result[f"{op}_s"] > 0
        assert result[f"{op}_forced"] == {"pbkdf2": derivations, "rsa_loads": loads}
        expected = derivations * result["pbkdf2_s"] + loads * result["rsa_load_s"]
        assert result[f"{op}_format_floor_s"] == pytest.approx(expected, abs=1e-3)
    lines = bench_tenant.summary(result)
    assert lines[0].startswith("floor ") and any(line.startswith("join ") for line in lines)


def test_bloom_figures_check_the_vectorised_summary_against_the_pure_one() -> None:
    figures = bench_bloom.bloom_figures(ids=3000, pure_sample=300)
    assert figures["ids"] == 3000 and figures["pure_sample"] == 300
    assert figures["build_s"] > 0 and figures["bits_only_s"] > 0
    assert "Bloom summary of 3,000 ids" in bench_bloom.summary_line(figures)


def test_pure_bitset_is_the_reference_layout() -> None:
    ids = bench_bloom.store_shaped_ids(200)
    assert bench_bloom.pure_bitset(ids) == BloomSummary.of_ids(ids).bitset


async def test_ondisk_bloom_figures_report_first_and_later_summaries_against_memory(
    tmp_path: Path,
) -> None:
    figures = await bench_bloom_disk.ondisk_bloom_figures(tmp_path, ids=600)
    assert figures["ids"] == 600
    assert figures["first_summary_s"] > 0 and figures["later_summary_s"] > 0
    assert figures["first_vs_in_memory"] > 0 and figures["in_memory_summary_s"] > 0
    assert "on-disk Bloom summary of 600 ids" in bench_bloom_disk.summary_line(figures)
    assert await asyncio.to_thread(os.listdir, tmp_path) == []  # the scratch store is gone
