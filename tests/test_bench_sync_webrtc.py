"""``mindood bench sync --transport webrtc`` at a tiny size: the real command, worker processes.

The timings are not checked (machines differ); what is: both transports synced every entry, the
session carried the same frames over WebRTC as over TCP, and the byte counts of the three layers
are consistent (UDP payloads above data channel messages, no datagram lost on loopback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_the_webrtc_sync_bench_runs_against_tcp_at_a_tiny_size(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "mindood", "bench", "sync", "--transport", "webrtc"),
            *("--entries", "30", "--dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MINDOOD_TEST_PBKDF2_ITERATIONS": "1000"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["transport"].startswith("webrtc")
    assert result["full_sync_entries"] >= 30  # the benched database plus the directory
    assert result["full_sync_entries_per_s"] > 0 and result["tcp_full_sync_entries_per_s"] > 0
    assert result["data_channel_bytes"] > 0
    assert result["udp_payload_bytes"] > result["data_channel_bytes"]
    assert result["ipv4_bytes"] == result["udp_payload_bytes"] + 28 * result["udp_datagrams"]
    assert result["datagrams_lost"] == 0
