"""``mindood bench sync --transport webrtc``: the full sync of ``bench sync`` over a data channel,
against a TCP (TLS) full sync of the same stores in the same run.

Same stores as the TCP bench (``bench_sync._prepare``: node A holds ``entries`` signed 1 KiB
entries, node B is a joined, empty member), prepared once and copied, so both transports sync
identical stores; each node is its own process. For WebRTC the parent carries the offer and
answer between the two processes' stdin/stdout (the signaling path does not matter for
throughput); then B runs a client session over the data channel and A serves it. ICE host
candidates are pinned to 127.0.0.1, so nothing leaves loopback.

Bytes are counted at three layers, all both directions: the session's frames (what the TCP bench
counts too), the messages handed to the data channel, and the UDP payloads the DTLS transport
sent and received (SCTP DATA chunks and SACKs inside DTLS records, the DTLS handshake included;
the 28 bytes of IPv4 and UDP header per datagram are reported separately). Like the TCP bench's
pull worker, B reports once the session went quiet (A's own pull of B finished).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mindood import bench_sync
from mindood.bench_progress import Progress, quiet
from mindood.bench_sync import DB, PASSWORD, TENANT, _prepare, received_so_far, wait_reporting
from mindood.crypto.kdf import apply_test_pbkdf2_iterations_from_env
from mindood.storefactory import OnDiskStoreFactory
from mindood.sync import SyncNode
from mindood.tenant import TenantFactory
from transports.tcp import NodeCertificate
from transports.webrtc import WebRtcChannel, answer, offer, restrict_host_addresses
from transports.webrtc_internals import WireCounters

#: IPv4 (20) and UDP (8) header bytes of every datagram, on top of the UDP payload.
_IPV4_UDP_HEADER = 28
#: The session counts as quiet once no byte moved for this long.
_QUIET_SECONDS = 0.5


def _spawn(role: str, base: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mindood.bench_sync_webrtc", role, str(base)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"worker exited early (code {process.wait()})")
    result: dict[str, Any] = json.loads(line)
    return result


def _send(process: subprocess.Popen[str], message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message) + "\n")
    process.stdin.flush()


def _run_pair(workdir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pulling worker's report and the serving worker's counters, both taken while the
    session is open and quiet (so that the datagram counts of the two ends add up)."""
    server, client = _spawn("serve", workdir / "a"), _spawn("pull", workdir / "b")
    try:
        _send(server, _line(client))  # offer
        _send(client, _line(server))  # answer
        report = _line(client)
        _send(server, {"payload": "counters"})
        counters = _line(server)
        _send(client, {"payload": "leave"})
        return report, counters
    finally:
        for process in (client, server):
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def _run_tcp(workdir: Path) -> dict[str, Any]:
    """``bench sync``'s own full-sync round (TLS on loopback) on a copy of the same stores."""
    server = bench_sync._spawn("serve", str(workdir / "a"))
    try:
        port = bench_sync._read_json(server)["port"]
        client = bench_sync._spawn("pull", str(workdir / "b"), str(port))
        try:
            return bench_sync._read_json(client)
        finally:
            client.wait(timeout=600)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _ratio(part: float, whole: float) -> float:
    return round(part / whole, 3) if whole else 0.0


async def run_webrtc_sync_bench(
    workdir: Path, entries: int = 100_000, *, progress: Progress = quiet
) -> dict[str, Any]:
    webrtc_dir, tcp_dir = workdir / "webrtc", workdir / "tcp"
    await _prepare(webrtc_dir, entries, progress)
    await asyncio.to_thread(shutil.copytree, webrtc_dir, tcp_dir)
    progress(f"baseline: full sync of {entries:,} entries over TCP (TLS) from node A")
    tcp = await asyncio.to_thread(_run_tcp, tcp_dir)
    tcp_rate = tcp["transferred"] / tcp["seconds"] if tcp["seconds"] else 0.0
    progress(f"TCP took {tcp['seconds']:.1f}s; node B: full sync over a WebRTC data channel")
    first, server = await asyncio.to_thread(_run_pair, webrtc_dir)
    rate = first["transferred"] / first["seconds"] if first["seconds"] else 0.0
    payload = 1024 * first["transferred"]
    udp = first["udp_bytes"]
    ip = udp + _IPV4_UDP_HEADER * first["udp_packets"]
    return {
        "entries": entries,
        "payload_bytes": 1024,
        "transport": "webrtc (aiortc data channel, DTLS, loopback)",
        "full_sync_seconds": round(first["seconds"], 3),
        "full_sync_entries": first["transferred"],
        "full_sync_entries_per_s": round(rate, 1),
        "channel_setup_seconds": round(first["setup_seconds"], 3),
        "tcp_full_sync_seconds": round(tcp["seconds"], 3),
        "tcp_full_sync_entries_per_s": round(tcp_rate, 1),
        "vs_tcp": _ratio(rate, tcp_rate),
        "session_bytes": first["bytes"],
        "tcp_session_bytes": tcp["bytes"],
        "data_channel_bytes": first["message_bytes"],
        "udp_payload_bytes": udp,
        "udp_datagrams": first["udp_packets"],
        "ipv4_bytes": ip,
        "udp_per_data_channel_byte": _ratio(udp, first["message_bytes"]),
        "ipv4_per_data_channel_byte": _ratio(ip, first["message_bytes"]),
        "session_bytes_per_entry_payload_byte": _ratio(first["bytes"], payload),
        "udp_per_entry_payload_byte": _ratio(udp, payload),
        "datagrams_lost": max(0, server["udp_packets_sent"] - first["udp_packets_received"])
        + max(0, first["udp_packets_sent"] - server["udp_packets_received"]),
    }


# -- worker processes ------------------------------------------------------------------------
async def _stdin_lines() -> tuple[asyncio.Queue[bytes], asyncio.Task[None]]:
    """Payloads the parent relays to us, one JSON line each."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def pump() -> None:
        while line := await reader.readline():
            await queue.put(json.loads(line)["payload"].encode("latin-1"))

    return queue, asyncio.ensure_future(pump())


async def _out(payload: bytes) -> None:
    print(json.dumps({"payload": payload.decode("latin-1")}), flush=True)


async def _worker(role: str, base: Path) -> None:
    restrict_host_addresses(["127.0.0.1"])
    tenant = await TenantFactory(OnDiskStoreFactory(base)).load_session(TENANT, PASSWORD)
    assert tenant is not None, "no saved session"
    node = SyncNode(NodeCertificate.load_or_create(base / "node"))
    await node.add_tenant(tenant, [DB])
    inbox, pump = await _stdin_lines()
    start = time.perf_counter()
    channel: WebRtcChannel
    if role == "serve":
        channel = await answer(await inbox.get(), _out)
        conn = await node.attach(channel)
        asked = asyncio.ensure_future(inbox.get())
        ended = asyncio.ensure_future(conn.closed.wait())
        await asyncio.wait([asked, ended], return_when=asyncio.FIRST_COMPLETED)
        if asked.done():
            print(json.dumps(_counters(channel.wire_counters())), flush=True)
        else:
            asked.cancel()
        await ended
    else:
        channel = await offer(_out, inbox)
        setup = time.perf_counter() - start
        start = time.perf_counter()
        conn = await node.attach(channel, TENANT)
        [link] = node.links()
        async with asyncio.timeout(3600):
            await wait_reporting(link.stats.synced_once, lambda: received_so_far(link))
        seconds = time.perf_counter() - start
        await _until_quiet(channel)
        report = {
            "seconds": seconds,
            "setup_seconds": setup,
            "transferred": link.stats.transferred,
            "bytes": conn.bytes_sent + conn.bytes_received,
            "message_bytes": channel.message_bytes_sent + channel.message_bytes_received,
            **_counters(channel.wire_counters()),
        }
        print(json.dumps(report), flush=True)
        await inbox.get()  # until the parent has the server's counters too
    pump.cancel()
    await node.aclose()
    await tenant.close()
    await tenant.store_factory.close()


def _counters(wire: WireCounters | None) -> dict[str, int]:
    if wire is None:
        raise RuntimeError("aiortc keeps no DTLS counters: cannot count wire bytes")
    return {
        "udp_bytes": wire.bytes,
        "udp_packets": wire.packets,
        "udp_packets_sent": wire.packets_sent,
        "udp_packets_received": wire.packets_received,
    }


async def _until_quiet(channel: WebRtcChannel) -> None:
    """Until no message moved for a while: the peer's own pull of us has finished too."""
    async with asyncio.timeout(600):
        while True:
            before = channel.message_bytes_sent + channel.message_bytes_received
            await asyncio.sleep(_QUIET_SECONDS)
            if channel.message_bytes_sent + channel.message_bytes_received == before:
                return


def summary(result: dict[str, Any]) -> list[str]:
    """A few lines a person reads next to the JSON."""
    return [
        f"full sync of {result['full_sync_entries']:,} entries over WebRTC in "
        f"{result['full_sync_seconds']}s: {result['full_sync_entries_per_s']:,.0f}/s = "
        f"{result['vs_tcp']}x TCP in this run ({result['tcp_full_sync_entries_per_s']:,.0f}/s)",
        f"channel setup {result['channel_setup_seconds']}s; {result['session_bytes']:,} session "
        f"bytes (TCP {result['tcp_session_bytes']:,}), {result['data_channel_bytes']:,} in "
        f"data channel messages, {result['udp_payload_bytes']:,} UDP payload "
        f"= {result['udp_per_data_channel_byte']}x ({result['ipv4_per_data_channel_byte']}x "
        f"with IPv4+UDP headers), {result['datagrams_lost']} datagrams lost",
        f"session bytes per entry payload byte: {result['session_bytes_per_entry_payload_byte']} "
        "(the same frames as over TCP)",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mindood.bench_sync_webrtc")
    parser.add_argument("role", choices=["serve", "pull"])
    parser.add_argument("base", type=Path)
    args = parser.parse_args(argv)
    apply_test_pbkdf2_iterations_from_env()
    import uvloop

    uvloop.run(_worker(args.role, args.base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
