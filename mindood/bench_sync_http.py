"""``mindood bench sync --transport http``: the full sync of ``bench sync`` over the HTTP sync API.

Same stores as the TCP bench (``bench_sync._prepare``: node A holds ``entries`` signed 1 KiB
entries, node B is a joined, empty member), each node its own process: A serves the reference's
HTTP sync API (``HttpGateway``, plain HTTP on 127.0.0.1) and B syncs with it as with a
``[[peers]] address = "http://..."`` server (``HttpLink``: pull through the database's
admission, push what the server lacks, follow the change feed). Then, as the TCP bench, an idle
reconnect and a reconnect after 10 new entries on A, each a new B process resuming from its
saved cursors, all against the Ed25519 verify rate measured in the same run.

Bytes are the HTTP body bytes both ways as the client counts them (``peers`` status shows the
same counters): as they crossed the wire (compressed where the server compressed), without
HTTP headers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from mindood import bench_sync
from mindood.bench_progress import Progress, quiet
from mindood.bench_sync import (
    TENANT,
    _open,
    measure_rounds,
    received_so_far,
    round_figures,
    wait_reporting,
)
from mindood.crypto.kdf import apply_test_pbkdf2_iterations_from_env
from mindood.sync.http_link import HttpLink
from mindood.sync.http_serve import HttpGateway, ServerIdentity
from protocol.events import PeerConnected
from transports.http_server import listen_http

#: Seconds a pulling worker waits for its link to appear and for traffic to settle.
_SETTLE_SECONDS = 600


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mindood.bench_sync_http", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


async def run_http_sync_bench(
    workdir: Path, entries: int = 100_000, *, progress: Progress = quiet
) -> dict[str, Any]:
    result, first, idle, delta = await measure_rounds(
        workdir, entries, progress, _spawn, "url", "from node A's HTTP API ({})"
    )
    result.update(
        entries=entries,
        payload_bytes=1024,
        transport="http (HTTP/1.1, plain, loopback; mdb-entries-v2 when offered)",
        bytes_counted="HTTP body bytes both ways as sent (compressed where the server compressed), "
        "headers not counted",
    )
    result.update(round_figures(result, first, idle, delta))
    result["full_sync_session_bytes"] = first["bytes"]
    return result


# -- worker processes ------------------------------------------------------------------------
async def _serve(base: Path) -> None:
    tenant, node = await _open(base, "bench-a")
    await node.start()
    gateway = HttpGateway(node, await asyncio.to_thread(ServerIdentity.load_or_create, base))
    listener = await listen_http(
        gateway.handle,
        "127.0.0.1",
        0,
        body_limit=gateway.server.body_limit,
        gate=gateway.gate,
    )
    assert listener.bound is not None
    host, port = listener.bound
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with asyncio.TaskGroup() as group:
        events = group.create_task(gateway.run(), name="bench-http-change-events")
        print(json.dumps({"url": f"http://{host}:{port}"}), flush=True)
        await stop.wait()
        await listener.aclose()
        events.cancel()
    await node.aclose()
    await tenant.close()
    await tenant.store_factory.close()


def _bytes(link: HttpLink) -> int:
    status = link.status()
    return status.bytes_sent + status.bytes_received


async def _pull(base: Path, url: str) -> None:
    tenant, node = await _open(base, "bench-b")
    await node.start()
    start = time.perf_counter()
    linked = asyncio.Event()
    node.on_event(lambda event: linked.set() if isinstance(event, PeerConnected) else None)
    node.add_http_peer(url, TENANT)
    async with asyncio.timeout(_SETTLE_SECONDS):
        await linked.wait()
    [link] = node.http_links()
    async with asyncio.timeout(3600):
        await wait_reporting(link.stats.synced_once, lambda: received_so_far(link))
    seconds = time.perf_counter() - start
    # Let the push check (B asks which of its entries the server lacks) finish before leaving,
    # so the next round measures a quiet pair of stores.
    async with asyncio.timeout(_SETTLE_SECONDS):
        while True:
            before = _bytes(link)
            await asyncio.sleep(0.5)
            if _bytes(link) == before:
                break
    session_bytes = _bytes(link)
    transferred = link.stats.transferred
    await link.pull_all()  # a re-sync inside the live session: head comparisons only
    report = {
        "seconds": seconds,
        "transferred": transferred,
        "bytes": session_bytes,
        "in_session_resync_bytes": _bytes(link) - session_bytes,
        "in_session_resync_transferred": link.stats.transferred - transferred,
    }
    await node.aclose()
    await tenant.close()
    await tenant.store_factory.close()
    print(json.dumps(report), flush=True)


def summary(result: dict[str, Any]) -> list[str]:
    """A few lines a person reads next to the JSON (bytes are HTTP body bytes)."""
    return bench_sync.summary(result, over="over HTTP ", unit="body bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mindood.bench_sync_http")
    parser.add_argument("role", choices=["serve", "pull"])
    parser.add_argument("base", type=Path)
    parser.add_argument("url", nargs="?", default="")
    args = parser.parse_args(argv)
    apply_test_pbkdf2_iterations_from_env()
    import uvloop

    if args.role == "serve":
        uvloop.run(_serve(args.base))
    else:
        uvloop.run(_pull(args.base, args.url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
