"""``mindood bench sync --transport webrtc``: the full sync of ``bench sync`` over a data channel.

Same stores as the TCP bench (``bench_sync._prepare``: node A holds ``entries`` signed 1 KiB
entries, node B is a joined, empty member), each node its own process. The parent carries the
offer and answer between the two processes' stdin/stdout (the signaling path does not matter
for throughput); then B runs a client session over the WebRTC data channel and A serves it.
ICE host candidates are pinned to 127.0.0.1, so nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mindood.bench_progress import Progress, quiet
from mindood.bench_sync import DB, PASSWORD, TENANT, _prepare, wait_reporting
from mindood.crypto.kdf import apply_test_pbkdf2_iterations_from_env
from mindood.storefactory import OnDiskStoreFactory
from mindood.sync import SyncNode
from mindood.tenant import TenantFactory
from transports.tcp import NodeCertificate
from transports.webrtc import WebRtcChannel, answer, offer, restrict_host_addresses


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


def _run_pair(workdir: Path) -> dict[str, Any]:
    server, client = _spawn("serve", workdir / "a"), _spawn("pull", workdir / "b")
    try:
        _send(server, _line(client))  # offer
        _send(client, _line(server))  # answer
        return _line(client)
    finally:
        for process in (client, server):
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


async def run_webrtc_sync_bench(
    workdir: Path, entries: int = 100_000, *, progress: Progress = quiet
) -> dict[str, Any]:
    await _prepare(workdir, entries, progress)
    progress(f"node B: full sync of {entries:,} entries over a WebRTC data channel")
    first = await asyncio.to_thread(_run_pair, workdir)
    rate = first["transferred"] / first["seconds"] if first["seconds"] else 0.0
    return {
        "entries": entries,
        "payload_bytes": 1024,
        "transport": "webrtc (aiortc data channel, DTLS, loopback)",
        "full_sync_seconds": round(first["seconds"], 3),
        "full_sync_entries": first["transferred"],
        "full_sync_entries_per_s": round(rate, 1),
        "session_bytes": first["bytes"],
        "channel_setup_seconds": round(first["setup_seconds"], 3),
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
        await conn.closed.wait()
    else:
        channel = await offer(_out, inbox)
        setup = time.perf_counter() - start
        start = time.perf_counter()
        conn = await node.attach(channel, TENANT)
        [link] = node.links()
        async with asyncio.timeout(3600):
            await wait_reporting(link.stats.synced_once, lambda: link.stats.transferred)
        seconds = time.perf_counter() - start
        report = {
            "seconds": seconds,
            "setup_seconds": setup,
            "transferred": link.stats.transferred,
            "bytes": conn.bytes_sent + conn.bytes_received,
        }
        print(json.dumps(report), flush=True)
    pump.cancel()
    await node.aclose()
    await tenant.close()
    await tenant.store_factory.close()


def summary(result: dict[str, Any]) -> list[str]:
    """A few lines a person reads next to the JSON."""
    return [
        f"full sync of {result['full_sync_entries']:,} entries over WebRTC in "
        f"{result['full_sync_seconds']}s: {result['full_sync_entries_per_s']:,.0f}/s",
        f"channel setup {result['channel_setup_seconds']}s, "
        f"{result['session_bytes']:,} bytes in the session",
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
