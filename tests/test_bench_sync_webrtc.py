"""``mindood bench sync --transport webrtc`` at a tiny size: the real command, worker processes.

The timings are not checked (machines differ); what is: both transports synced every entry, the
session carried the same frames over WebRTC as over TCP, and the byte counts of the three layers
are consistent (UDP payloads above data channel messages, no datagram lost on loopback).
"""

from __future__ import annotations

from pathlib import Path

from tests.bench_helpers import run_sync_bench


def test_the_webrtc_sync_bench_runs_against_tcp_at_a_tiny_size(tmp_path: Path) -> None:
    result, _ = run_sync_bench(tmp_path, 30, "--transport", "webrtc")
    assert result["transport"].startswith("webrtc")
    assert result["full_sync_entries"] >= 30  # the benched database plus the directory
    assert result["full_sync_entries_per_s"] > 0 and result["tcp_full_sync_entries_per_s"] > 0
    assert result["data_channel_bytes"] > 0
    assert result["udp_payload_bytes"] > result["data_channel_bytes"]
    assert result["ipv4_bytes"] == result["udp_payload_bytes"] + 28 * result["udp_datagrams"]
    assert result["datagrams_lost"] == 0
