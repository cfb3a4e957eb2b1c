"""``mindood bench sync --transport http`` at a tiny size: the real command, two worker processes.

The numbers are not checked (machines differ); what is: the bench ran end to end, the full sync
brought every entry, the idle reconnect moved nothing and the delta exactly the 10 new entries.
"""

from __future__ import annotations

from pathlib import Path

from tests.bench_helpers import run_sync_bench


def test_the_http_sync_bench_runs_at_a_tiny_size(tmp_path: Path) -> None:
    result, stderr = run_sync_bench(tmp_path, 30, "--transport", "http")
    assert result["transport"].startswith("http")
    assert result["entries"] == 30
    assert result["full_sync_entries"] >= 30  # the benched database plus the directory
    assert result["full_sync_entries_per_s"] > 0
    assert result["ed25519_verify_per_s_pool"] > 0
    assert result["idle_reconnect_transferred"] == 0
    assert 0 < result["idle_reconnect_bytes"] < result["full_sync_session_bytes"]
    assert result["delta_10_transferred"] == 10
    assert result["delta_10_bytes"] > result["idle_reconnect_bytes"]
    assert "full sync over HTTP of" in stderr
