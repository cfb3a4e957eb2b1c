"""``mindood bench sync`` (TCP) at a tiny size: the real command, two worker processes.

The numbers are not checked (machines differ); what is: the run brought every entry, and it
reports both nodes' peak RSS and the CPU an entry cost against the verify floor's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mindood.bench_sync import cpu_seconds, peak_rss_kib
from tests.bench_helpers import run_sync_bench


def test_the_tcp_sync_bench_reports_memory_and_cpu_of_both_nodes(tmp_path: Path) -> None:
    result, stderr = run_sync_bench(tmp_path, 40)
    assert result["full_sync_entries"] >= 40  # the benched database plus the directory
    assert result["delta_10_transferred"] == 10
    for node in ("pull", "serve"):
        assert result[f"full_sync_{node}_peak_rss_kib"] > 10_000  # a Python process at least
        assert result[f"full_sync_{node}_cpu_us_per_entry"] > 0
    assert result["verify_pool_cpu_us_per_entry"] > 0
    assert 0 < result["verify_share_of_sync_cpu"] < 1
    assert "peak RSS: pulling node" in stderr


def test_peak_rss_and_cpu_time_of_this_process_and_of_another() -> None:
    assert (peak_rss_kib() or 0) > 0
    assert (cpu_seconds() or 0.0) > 0.0
    child = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE, text=True)
    try:
        assert peak_rss_kib(child.pid) is not None
        assert cpu_seconds(child.pid) is not None
    finally:
        child.communicate("\n", timeout=30)
    assert peak_rss_kib(child.pid) is None and cpu_seconds(child.pid) is None  # reaped: gone
