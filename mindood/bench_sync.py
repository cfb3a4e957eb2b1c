"""``mindood bench sync``: two nodes in separate processes, TLS on loopback, a full store.

The parent builds a tenant with ``entries`` signed 1 KiB entries on node A's on-disk store and a
joined, empty node B, then runs each node as its own process (``python -m mindood.bench_sync
worker``) and times B's first full sync. B leaves as soon as its own pull is done, while A may
still be pulling from B what B just received; the first reconnect then measures what finishing
that costs (it must not grow with the entries). It then measures the bytes a reconnect exchanges
when nothing changed (the handshake) and when 10 entries were added (delta), and reports
everything against the Ed25519 verify rate measured in the same run: a verifying node cannot
beat it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mindood.bench_progress import Progress, quiet
from mindood.crypto.kdf import apply_test_pbkdf2_iterations_from_env
from mindood.identity import create_user_id, unlock
from mindood.storefactory import OnDiskStoreFactory
from mindood.sync import SyncNode
from mindood.sync.link import LinkModel
from mindood.tenant import TenantFactory
from store.codec import encode_entry
from store.entry import EntryMetadata, EntryType, StoreEntry, content_hash
from store.ids import doc_entry_id, generate_doc_id
from store.signing import sign_entry
from store.verify import verify_entries
from transports.tcp import NodeCertificate

TENANT = "bench"
DB = "bench"
PASSWORD = "bench-password"
#: Entries signed and stored per step while preparing (a progress line after each).
_PREPARE_STEP = 20_000
#: Seconds between a pulling worker's progress lines on stderr.
_WORKER_PROGRESS_EVERY = 5.0
#: Signed entries the parent keeps for the pool baseline (not all of them: at 1,000,000
#: entries the list alone would take gigabytes).
_POOL_SAMPLE = 20_000


def peak_rss_kib(pid: int | None = None) -> int | None:
    """A process's peak resident set (``VmHWM``, KiB): ours by default; None off Linux."""
    try:
        status = Path(f"/proc/{pid or 'self'}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def cpu_seconds(pid: int | None = None) -> float | None:
    """CPU time (user + system, all threads) a process used so far: ours by default; for
    another process None off Linux. Sharing the cores with other work changes a rate but
    hardly the CPU an entry costs, so the bench reports both."""
    if pid is None:
        return time.process_time()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _verify_rates(seconds: float = 1.0) -> dict[str, float]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    message = os.urandom(300)
    signature = key.sign(message)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        public.verify(signature, message)
        count += 1
    return {"ed25519_verify_per_s_one_core": round(count / (time.perf_counter() - start), 1)}


async def _pool_verify_rates(entries: list[StoreEntry]) -> dict[str, float]:
    """The pool's rate and the CPU each entry's checks cost in it (the sync's floor)."""
    start, cpu = time.perf_counter(), cpu_seconds() or 0.0
    verdict = await verify_entries(entries)
    assert not verdict.rejected
    used = (cpu_seconds() or 0.0) - cpu
    return {
        "ed25519_verify_per_s_pool": round(len(entries) / (time.perf_counter() - start), 1),
        "verify_pool_cpu_us_per_entry": round(used / len(entries) * 1e6, 1),
    }


def build_signed_entries(author: Any, count: int, created_at: int) -> list[StoreEntry]:
    """Signed 1 KiB doc_create entries (payload bytes stand in for ciphertext)."""
    pem = author.private.signing_public_key
    out = []
    for _ in range(count):
        data = os.urandom(1024)
        doc_id = generate_doc_id()
        meta = EntryMetadata(
            entry_type=EntryType.DOC_CREATE,
            id=doc_entry_id(doc_id, [], content_hash(data)),
            content_hash=content_hash(data),
            doc_id=doc_id,
            dependency_ids=(),
            created_at=created_at,
            created_by_public_key=pem,
            decryption_key_id="default",
            original_size=996,
            encrypted_size=len(data),
        )
        out.append(sign_entry(meta, data, author.sign))
    return out


async def _prepare(
    workdir: Path, count: int, progress: Progress = quiet
) -> tuple[list[StoreEntry], Any]:
    """Node A with ``count`` signed entries and a joined node B; returns the first
    ``_POOL_SAMPLE`` entries (for the pool baseline) and their author."""
    progress("creating the tenant on node A and joining node B")
    factory_a = TenantFactory(OnDiskStoreFactory(workdir / "a"))
    admin = create_user_id("cn=admin/o=bench", PASSWORD)
    alice = create_user_id("cn=alice/o=bench", PASSWORD)
    created = await factory_a.create_tenant(
        tenant_id=TENANT,
        admin_name="cn=admin/o=bench",
        admin_password=PASSWORD,
        user_name="cn=alice/o=bench",
        user_password=PASSWORD,
        admin_user=admin,
        app_user=alice,
    )
    tenant_a = created.tenant
    factory_b = TenantFactory(OnDiskStoreFactory(workdir / "b"))
    bob = create_user_id("cn=bob/o=bench", PASSWORD)
    request = factory_b.create_join_request(bob, format="uri", label="bench peer")
    response = await tenant_a.approve_join_request(
        request, admin_signing_key=admin, admin_password=PASSWORD
    )
    joined = await factory_b.join_tenant(response, user=bob, password=PASSWORD)
    author = unlock(alice, PASSWORD)
    now = int(time.time() * 1000)
    store = (await tenant_a.open_db(DB)).get_store()
    entries: list[StoreEntry] = []
    made = 0
    while made < count:
        step = build_signed_entries(author, min(_PREPARE_STEP, count - made), now)
        for start in range(0, len(step), 1000):
            await store.put_entries(step[start : start + 1000])
        made += len(step)
        entries.extend(step[: _POOL_SAMPLE - len(entries)])
        progress(f"node A holds {made:,}/{count:,} signed entries")
    for tenant in (tenant_a, joined.tenant):
        await tenant.save_session(PASSWORD)
        await tenant.close()
        await tenant.store_factory.close()
    return entries, author


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mindood.bench_sync", "worker", *args],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def _read_json(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"worker exited without a result (code {process.wait()})")
    result: dict[str, Any] = json.loads(line)
    return result


#: Starts a bench worker process (``serve BASE`` or ``pull BASE ADDRESS``), JSON on its stdout.
Spawn = Callable[..., subprocess.Popen[str]]


async def measure_rounds(
    workdir: Path,
    entries: int,
    progress: Progress,
    spawn: Spawn,
    address_key: str,
    full_sync_what: str,
    *,
    leave_early: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The bench's common course, one process per node: baselines, then a full sync, an idle
    reconnect and a reconnect after 10 new entries on A, each a new B process.

    ``address_key`` names the field of the server's first JSON line that the pulling worker is
    given. With ``leave_early`` the full sync's worker leaves once its own pull is done (worker
    flag ``--leave``) and a first reconnect follows, reported as the full sync's ``reconnect``.
    The delta's report carries its entries' own bytes (``entry_bytes``: metadata and payload
    as the store encodes them; ``payload_bytes``). Returns the baseline rates and the rounds'
    reports.
    """
    progress("baseline: Ed25519 verify for a second")
    result: dict[str, Any] = _verify_rates()
    built, author = await _prepare(workdir, entries, progress)
    progress("baseline: verifying with the thread pool")
    result.update(await _pool_verify_rates(built))
    server = spawn("serve", str(workdir / "a"))

    def client_round(*flags: str) -> dict[str, Any]:
        client = spawn("pull", str(workdir / "b"), str(address), *flags)
        try:
            return _read_json(client)
        finally:
            client.wait(timeout=600)

    try:
        address = _read_json(server)[address_key]
        progress(f"node B: full sync of {entries:,} entries {full_sync_what.format(address)}")
        serve_cpu = cpu_seconds(server.pid)
        first = await asyncio.to_thread(client_round, *(["--leave"] if leave_early else []))
        first["serve_peak_rss_kib"] = peak_rss_kib(server.pid)
        serve_cpu_after = cpu_seconds(server.pid)
        if serve_cpu is not None and serve_cpu_after is not None:
            first["serve_cpu_seconds"] = serve_cpu_after - serve_cpu
        if leave_early:
            progress(f"full sync took {first['seconds']:.1f}s; node B: first reconnect")
            first["reconnect"] = await asyncio.to_thread(client_round)
            progress("node B: idle reconnect")
        else:
            progress(f"full sync took {first['seconds']:.1f}s; node B: idle reconnect")
        idle = await asyncio.to_thread(client_round)
        progress("node B: reconnect after 10 new entries on node A")
        delta_entries = build_signed_entries(author, 10, int(time.time() * 1000))
        # a second writer on A's store: multi-process safe
        factory = OnDiskStoreFactory(workdir / "a")
        store = await factory.open_store(TENANT, DB, "docs")
        await store.put_entries(delta_entries)
        await factory.close()
        delta = await asyncio.to_thread(client_round)
        delta["entry_bytes"] = sum(len(encode_entry(e)) for e in delta_entries)
        delta["payload_bytes"] = sum(len(e.encrypted_data) for e in delta_entries)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return result, first, idle, delta


def _cpu_figures(result: dict[str, Any], first: dict[str, Any]) -> dict[str, Any]:
    """CPU per entry synced, both processes, against the pool's verify CPU per entry: the
    share of all the work that is the verify floor, which other load on the cores hardly
    moves (a rate does)."""
    pull, serve = first.get("cpu_seconds"), first.get("serve_cpu_seconds")
    count = first["transferred"]
    if pull is None or serve is None or not count:
        return {}
    per_entry = (pull + serve) / count * 1e6
    floor = result.get("verify_pool_cpu_us_per_entry")
    return {
        "full_sync_cpu_us_per_entry": round(per_entry, 1),
        "full_sync_pull_cpu_us_per_entry": round(pull / count * 1e6, 1),
        "full_sync_serve_cpu_us_per_entry": round(serve / count * 1e6, 1),
        "verify_share_of_sync_cpu": round(floor / per_entry, 3) if floor else None,
    }


def round_figures(
    result: dict[str, Any], first: dict[str, Any], idle: dict[str, Any], delta: dict[str, Any]
) -> dict[str, Any]:
    """The full-sync rate (against the verify baselines) and the reconnect bytes."""
    rate = first["transferred"] / first["seconds"] if first["seconds"] else 0.0
    return {
        **_cpu_figures(result, first),
        "full_sync_seconds": round(first["seconds"], 3),
        "full_sync_entries": first["transferred"],
        "full_sync_entries_per_s": round(rate, 1),
        "full_sync_pull_peak_rss_kib": first.get("peak_rss_kib"),
        "full_sync_serve_peak_rss_kib": first.get("serve_peak_rss_kib"),
        "vs_verify_one_core": round(rate / result["ed25519_verify_per_s_one_core"], 3),
        "vs_verify_pool": round(rate / result["ed25519_verify_per_s_pool"], 3),
        "idle_reconnect_bytes": idle["bytes"],
        "idle_reconnect_transferred": idle["transferred"],
        "idle_in_session_resync_bytes": idle["in_session_resync_bytes"],
        "delta_10_bytes": delta["bytes"],
        "delta_10_transferred": delta["transferred"],
        **_reconnect_figures(first, idle, delta),
    }


def _reconnect_figures(
    first: dict[str, Any], idle: dict[str, Any], delta: dict[str, Any]
) -> dict[str, Any]:
    """The issue's yardsticks: a first reconnect after a full sync within 8 KiB (whatever the
    entries), a delta within 1.2x its entries' own bytes plus the handshake (an idle connect).
    The delta's own bytes count metadata and payload; the payload-only ratio is shown too."""
    handshake = idle["bytes"]
    out: dict[str, Any] = {"handshake_bytes": handshake}
    if "reconnect" in first:
        out["first_reconnect_bytes"] = first["reconnect"]["bytes"]
        out["first_reconnect_transferred"] = first["reconnect"]["transferred"]
        out["first_reconnect_within_8_kib"] = first["reconnect"]["bytes"] <= 8192
    if "entry_bytes" in delta:
        out["delta_10_entry_bytes"] = delta["entry_bytes"]
        out["delta_10_payload_bytes"] = delta["payload_bytes"]
        out["delta_10_vs_goal"] = round(
            delta["bytes"] / (1.2 * delta["entry_bytes"] + handshake), 3
        )
        out["delta_10_vs_goal_payload_only"] = round(
            delta["bytes"] / (1.2 * delta["payload_bytes"] + handshake), 3
        )
    return out


async def run_sync_bench(
    workdir: Path, entries: int = 100_000, *, progress: Progress = quiet
) -> dict[str, Any]:
    result, first, idle, delta = await measure_rounds(
        workdir, entries, progress, _spawn, "port", "from node A (a process each)", leave_early=True
    )
    result.update(entries=entries, payload_bytes=1024, transport="tcp+tls1.3")
    result.update(round_figures(result, first, idle, delta))
    return result


async def _open(base: Path, name: str) -> tuple[Any, SyncNode]:
    factory = TenantFactory(OnDiskStoreFactory(base))
    tenant = await factory.load_session(TENANT, PASSWORD)
    assert tenant is not None, "no saved session"
    node = SyncNode(NodeCertificate.load_or_create(base / "node"))
    await node.add_tenant(tenant, [DB])
    return tenant, node


async def _serve(base: Path) -> None:
    tenant, node = await _open(base, "bench-a")
    _, port = await node.listen("127.0.0.1", 0)
    print(json.dumps({"port": port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await node.aclose()
    await tenant.close()
    await tenant.store_factory.close()


def received_so_far(link: LinkModel) -> int:
    """Entries admitted on ``link`` so far, counted per batch (``stats.transferred`` only
    moves when a whole pull of a store ends: at 1,000,000 entries, minutes later)."""
    return sum(p.received for p in link.traffic.snapshot([]))


async def wait_reporting(done: asyncio.Event, count: Callable[[], int]) -> None:
    """Wait for ``done``, telling stderr every few seconds how many entries arrived so far."""
    while not done.is_set():
        try:
            async with asyncio.timeout(_WORKER_PROGRESS_EVERY):
                await done.wait()
        except TimeoutError:
            print(f"bench worker: received {count():,} entries", file=sys.stderr, flush=True)


async def _pull(base: Path, port: int, *, leave: bool = False) -> None:
    tenant, node = await _open(base, "bench-b")
    start, cpu = time.perf_counter(), cpu_seconds() or 0.0
    conn = await node.connect("127.0.0.1", port, TENANT)
    [link] = node.links()
    async with asyncio.timeout(3600):
        await wait_reporting(link.stats.synced_once, lambda: received_so_far(link))
    seconds = time.perf_counter() - start
    sync_cpu = (cpu_seconds() or 0.0) - cpu
    # Let the peer finish its own pull from us before leaving (unless told to leave at once),
    # so the next round measures a quiet pair of stores.
    async with asyncio.timeout(600):
        while not leave:
            before = conn.bytes_sent + conn.bytes_received
            await asyncio.sleep(0.5)
            if conn.bytes_sent + conn.bytes_received == before:
                break
    session_bytes = conn.bytes_sent + conn.bytes_received
    transferred = link.stats.transferred
    await link.pull_all()  # a re-sync inside the live session: head comparisons only
    report = {
        "seconds": seconds,
        "transferred": transferred,
        "bytes": session_bytes,
        "in_session_resync_bytes": conn.bytes_sent + conn.bytes_received - session_bytes,
        "in_session_resync_transferred": link.stats.transferred - transferred,
        "peak_rss_kib": peak_rss_kib(),
        "cpu_seconds": sync_cpu,
    }
    await node.aclose()
    await tenant.close()
    await tenant.store_factory.close()
    print(json.dumps(report), flush=True)


def summary(result: dict[str, Any], *, over: str = "", unit: str = "bytes") -> list[str]:
    """A few lines a person reads next to the JSON (``over``: the transport, when not TCP)."""
    return [
        f"full sync {over}of {result['full_sync_entries']:,} entries in "
        f"{result['full_sync_seconds']}s: {result['full_sync_entries_per_s']:,.0f}/s = "
        f"{result['vs_verify_pool']}x pooled Ed25519 verify "
        f"({result['ed25519_verify_per_s_pool']:,.0f}/s in this run)",
        f"CPU per entry synced {result.get('full_sync_cpu_us_per_entry')} us (both nodes), "
        f"of which the verify floor is {result.get('verify_share_of_sync_cpu')}",
        f"peak RSS: pulling node {_mib(result.get('full_sync_pull_peak_rss_kib'))}, "
        f"serving node {_mib(result.get('full_sync_serve_peak_rss_kib'))}",
        f"idle reconnect {result['idle_reconnect_bytes']:,} {unit}, "
        f"10-entry delta {result['delta_10_bytes']:,} {unit}",
        *(
            [f"first reconnect after the full sync {result['first_reconnect_bytes']:,} {unit}"]
            if "first_reconnect_bytes" in result
            else []
        ),
        *(
            [
                f"delta / (1.2 x its entries' {result['delta_10_entry_bytes']:,} {unit} + "
                f"handshake) = {result['delta_10_vs_goal']} (payload only: "
                f"{result['delta_10_vs_goal_payload_only']})"
            ]
            if "delta_10_vs_goal" in result
            else []
        ),
    ]


def _mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:,.0f} MiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mindood.bench_sync")
    sub = parser.add_subparsers(dest="mode", required=True)
    worker = sub.add_parser("worker")
    worker.add_argument("role", choices=["serve", "pull"])
    worker.add_argument("base", type=Path)
    worker.add_argument("port", type=int, nargs="?", default=0)
    worker.add_argument("--leave", action="store_true", help="leave once our own pull is done")
    args = parser.parse_args(argv)
    apply_test_pbkdf2_iterations_from_env()
    import uvloop

    if args.role == "serve":
        uvloop.run(_serve(args.base))
    else:
        uvloop.run(_pull(args.base, args.port, leave=args.leave))
    return 0


if __name__ == "__main__":
    sys.exit(main())
