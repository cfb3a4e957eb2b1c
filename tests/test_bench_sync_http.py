"""``mindood bench sync --transport http`` at a tiny size: the real command, two worker processes.

The numbers are not checked (machines differ); what is: the bench ran end to end, the full sync
brought every entry, the idle reconnect moved nothing and the delta exactly the 10 new entries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_the_http_sync_bench_runs_at_a_tiny_size(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mindood",
            "bench",
            "sync",
            "--transport",
            "http",
            "--entries",
            "30",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MINDOOD_TEST_PBKDF2_ITERATIONS": "1000"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["transport"].startswith("http")
    assert result["entries"] == 30
    assert result["full_sync_entries"] >= 30  # the benched database plus the directory
    assert result["full_sync_entries_per_s"] > 0
    assert result["ed25519_verify_per_s_pool"] > 0
    assert result["idle_reconnect_transferred"] == 0
    assert 0 < result["idle_reconnect_bytes"] < result["full_sync_session_bytes"]
    assert result["delta_10_transferred"] == 10
    assert result["delta_10_bytes"] > result["idle_reconnect_bytes"]
    assert "full sync over HTTP of" in done.stderr
