"""Node-to-node sync between real ``mindood run`` daemons (subprocesses) over TLS on 127.0.0.1.

Every wait is bounded in time; the daemons sync by notification (no polling in the product):
the tests poll the daemons' RPC only to observe the result.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mindood.bench_sync import build_signed_entries
from mindood.daemon.config import parse_address
from mindood.errors import MindoodError
from mindood.storefactory import OnDiskStoreFactory
from mindood.tenant import TenantFactory
from protocol.errors import ErrorCode
from protocol.interfaces import PeerInfo, PeerRefused, Sealer
from protocol.messages import Error, Hello, decode, encode
from protocol.session import Closed, Role, Session, State
from tests.daemon_helpers import (
    ADMIN_PW,
    TENANT,
    DaemonProcess,
    create_doc,
    create_tenant,
    has_doc,
    join,
    poll_until,
    read_doc,
    set_field,
    write_config,
)
from transports.tcp import client_context, dial


class Cluster:
    """Daemons sharing one test directory; all stopped at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.daemons: dict[str, DaemonProcess] = {}

    def start(
        self, name: str, *, peers: tuple[str, ...] = (), upstream: str | None = None
    ) -> DaemonProcess:
        lines = ["[network]", 'listen = ["127.0.0.1:0"]', ""]
        for address in peers:
            lines += ["[[peers]]", f'address = "{address}"', ""]
        if upstream:
            lines += ["[[upstreams]]", f'address = "{upstream}"', f'tenant = "{TENANT}"', ""]
        config = write_config(self.root, name, lines)
        daemon = DaemonProcess(self.root, name=name, args=["--config", str(config)])
        daemon.start()
        self.daemons[name] = daemon
        return daemon

    def close(self) -> None:
        for daemon in self.daemons.values():
            daemon.close()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    holder = Cluster(tmp_path)
    try:
        yield holder
    finally:
        holder.close()


async def _address(daemon: DaemonProcess) -> str:
    async with await daemon.client() as client:
        listening: list[str] = (await client.sync_status())["listening"]
    return listening[0]


async def test_live_sync_concurrent_edits_and_a_mesh(cluster: Cluster) -> None:
    a = cluster.start("a")
    await create_tenant(a)
    a_addr = await _address(a)
    b = cluster.start("b", peers=(a_addr,))
    await join(a, b, "bob")
    b_addr = await _address(b)
    c = cluster.start("c", peers=(b_addr,))  # c only knows b
    await join(a, c, "carol")

    doc_id = await create_doc(a, {"title": "Buy milk"})
    await poll_until(has_doc(b, doc_id, {"title": "Buy milk"}))
    await asyncio.gather(set_field(a, doc_id, "done", True), set_field(b, doc_id, "owner", "bob"))
    expected = {"title": "Buy milk", "done": True, "owner": "bob"}
    for node in (a, b, c):
        await poll_until(has_doc(node, doc_id, expected))
    async with await b.client() as client:
        peers = (await client.peers())["peers"]
    assert {p["transport"] for p in peers} == {"tcp"} and len(peers) == 2


async def test_a_keyless_relay_carries_data_and_stores_no_plaintext(cluster: Cluster) -> None:
    a = cluster.start("a")
    await create_tenant(a)
    relay = cluster.start("relay", peers=(await _address(a),))
    await join(a, relay, "relay", relay=True)
    b = cluster.start("b", peers=(await _address(relay),))  # b talks to the relay only
    await join(a, b, "bob")
    secret = "Launch codes 0451-XYZZY"
    doc_id = await create_doc(a, {"secret": secret})
    await poll_until(has_doc(b, doc_id, {"secret": secret}))
    async with await relay.client() as client:
        with pytest.raises(MindoodError):
            await client.doc_get(TENANT, "todos", doc_id)
    relay.stop()  # flush: its files are complete on disk
    files = [p for p in relay.data_dir.rglob("*") if p.is_file()]
    assert files
    assert not any(secret.encode() in p.read_bytes() for p in files)


async def test_an_edge_cache_serves_a_client_and_forwards_its_writes(cluster: Cluster) -> None:
    upstream = cluster.start("upstream")
    await create_tenant(upstream)
    edge = cluster.start("edge", upstream=await _address(upstream))
    await join(upstream, edge, "edge", relay=True)
    client_node = cluster.start("client", peers=(await _address(edge),))
    await join(upstream, client_node, "bob")
    doc_id = await create_doc(upstream, {"from": "upstream"})
    await poll_until(has_doc(client_node, doc_id, {"from": "upstream"}))
    await set_field(client_node, doc_id, "reply", "from the client")
    await poll_until(has_doc(upstream, doc_id, {"from": "upstream", "reply": "from the client"}))


async def _synced_member(cluster: Cluster) -> tuple[DaemonProcess, DaemonProcess, str]:
    """Daemon ``a`` holds the tenant; ``b``, bob's node, has joined and synced document ``n=1``."""
    a = cluster.start("a")
    await create_tenant(a)
    b = cluster.start("b", peers=(await _address(a),))
    await join(a, b, "bob")
    doc_id = await create_doc(a, {"n": 1})
    await poll_until(has_doc(b, doc_id, {"n": 1}))
    return a, b, doc_id


async def test_a_revoked_users_node_is_disconnected_and_refused(cluster: Cluster) -> None:
    a, b, doc_id = await _synced_member(cluster)
    async with await a.client() as client:
        assert await client.tenant_revoke(TENANT, "cn=bob/o=acme", admin_password=ADMIN_PW) == 1

    async def no_peers() -> bool:
        async with await a.client() as client:
            return not (await client.peers())["peers"]

    await poll_until(no_peers)
    await set_field(a, doc_id, "n", 2)
    await poll_until(lambda: _log_mentions(b, "revoked"))
    assert await read_doc(b, doc_id) == {"n": 1}  # nothing new reaches the revoked node


async def _log_mentions(daemon: DaemonProcess, text: str) -> bool:
    return text in daemon.log()


async def test_a_peer_killed_mid_sync_resumes_without_loss_or_duplicates(cluster: Cluster) -> None:
    a = cluster.start("a")
    await create_tenant(a)
    a.stop()
    # Preload A's store with many signed entries (offline, through the library), so that B's
    # first sync takes long enough to be killed in the middle.
    factory = TenantFactory(OnDiskStoreFactory(a.data_dir / "tenants"))
    tenant = await factory.load_session(TENANT, "alice-pw")
    assert tenant is not None
    entries = build_signed_entries(tenant.user, 20_000, int(time.time() * 1000))
    store = (await tenant.open_db("todos")).get_store()
    for start in range(0, len(entries), 2000):
        await store.put_entries(entries[start : start + 2000])
    await tenant.close()
    await factory.store_factory.close()
    a.start()
    async with await a.client() as client:
        await client.tenant_unlock(TENANT, "alice-pw")
    b = cluster.start("b", peers=(await _address(a),))
    async with await b.client() as client:
        progress = await client.subscribe(["sync.progress"])
        await join(a, b, "bob")
        async with asyncio.timeout(60):
            async for event in progress:
                if event.params.get("db") == "todos" and event.params.get("received", 0) > 0:
                    break
    b.stop(signal.SIGKILL)
    b.start()
    async with await b.client() as client:
        await client.tenant_unlock(TENANT, "bob-password")
    a_ids = await _store_ids(a)

    async def complete() -> bool:
        return len(await _changed_docs(b)) >= len(entries)

    await poll_until(complete, seconds=120, every=1.0)  # each look reads 20,000 ids
    b.stop()
    b_ids = await _store_ids(b)
    assert len(b_ids) == len(set(b_ids))
    assert set(a_ids) <= set(b_ids)


async def _changed_docs(daemon: DaemonProcess) -> set[str]:
    seen: set[str] = set()
    cursor = None
    async with await daemon.client() as client:
        for _ in range(1000):
            page = await client.doc_changes(TENANT, "todos", cursor=cursor, limit=10_000)
            seen.update(page["doc_ids"])
            cursor = page["cursor"]
            if not page["has_more"]:
                break
    return seen


async def _store_ids(daemon: DaemonProcess) -> list[str]:
    from store.ondisk import OnDiskStore

    store = await OnDiskStore.open(daemon.data_dir / "tenants" / TENANT / "todos" / "docs")
    try:
        return await store.get_all_ids()
    finally:
        await store.close()


async def test_a_node_of_another_tenant_is_refused(cluster: Cluster) -> None:
    a = cluster.start("a")
    await create_tenant(a)
    doc_id = await create_doc(a, {"private": True})
    stranger = cluster.start("stranger", peers=(await _address(a),))
    await create_tenant(stranger)  # same tenant id, its own admin: another organisation
    await poll_until(lambda: _log_mentions(stranger, "not admitted"))
    async with await a.client() as client:
        assert (await client.peers())["peers"] == []
    assert await read_doc(stranger, doc_id) is None


# -- strangers: what an unauthenticated peer may cost and learn -------------------------------
MiB = 1024 * 1024


@dataclass
class Stranger:
    """A tenant context for a peer nobody granted: a real key, nothing else."""

    tenant_id: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def identity(self) -> str:
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode()

    @property
    def encryption_key(self) -> str:
        return "not-an-rsa-key"

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data)

    def check_peer(self, identity: str, encryption_key: str, *, dialed: bool) -> PeerInfo:
        raise PeerRefused("a stranger trusts no one")

    def new_outgoing_key(self, peer: PeerInfo) -> tuple[bytes, Sealer]:
        raise AssertionError("a stranger never gets this far")

    def open_incoming_key(self, wrapped: bytes) -> Sealer:
        raise AssertionError("a stranger never gets this far")


async def _stranger_handshake(host: str, port: int, tenant_id: str) -> list[bytes]:
    """Every frame the node sends a correctly signing stranger asking for ``tenant_id``."""
    channel = await dial(host, port)
    session = Session(Role.CLIENT, binding=channel.binding, context=Stranger(tenant_id))
    received: list[bytes] = []
    try:
        session.start()
        async with asyncio.timeout(15):
            while session.state is not State.CLOSED:
                for frame in session.data_to_send():
                    await channel.send(frame)
                frame = await channel.recv()
                received.append(frame)
                if any(isinstance(e, Closed) for e in session.receive(frame)):
                    break
    finally:
        await channel.aclose()
    return received


async def _flood(host: str, port: int, *, hello_first: bool) -> int:
    """Announce a 32 MiB frame, then send as much of it as the node takes; bytes it took."""
    sent = 0
    try:
        async with asyncio.timeout(20):
            _reader, writer = await asyncio.open_connection(host, port, ssl=client_context())
            if hello_first:
                hello = encode(Hello(1, 1, TENANT, bytes(32)))
                writer.write(struct.pack(">I", len(hello)) + hello)
            writer.write(struct.pack(">I", 32 * MiB))
            chunk = bytes(MiB)
            for _ in range(32):
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
    except (OSError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError):
        pass  # the node hung up on us: that is the point
    return sent


def _reset_peak(pid: int) -> None:
    """Make VmHWM (peak RSS) start again from the current RSS, so it shows this test's peak."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


async def test_strangers_cost_a_listening_node_little_memory_and_learn_nothing(
    cluster: Cluster,
) -> None:
    a = cluster.start("a")
    await create_tenant(a)
    address = await _address(a)
    host, port = parse_address(address)

    # What a stranger hears: the same for a tenant the node serves and one it does not.
    known = await _stranger_handshake(host, port, TENANT)
    unknown = await _stranger_handshake(host, port, "no-such-tenant")
    assert len(known) == len(unknown) == 2  # HELLO, then ERROR
    assert known[1] == unknown[1]
    refusal = decode(known[1])
    assert isinstance(refusal, Error) and refusal.code == ErrorCode.REFUSED
    for frame in known + unknown:
        for secret in (str(a.data_dir), a.data_dir.name, "no-such-tenant", TENANT, "alice"):
            assert secret.encode() not in frame, (secret, frame)

    # 24 strangers announce 32 MiB frames and push all they can.
    _reset_peak(a.pid)
    before = _status_kib(a.pid, "VmRSS")
    taken = await asyncio.gather(*(_flood(host, port, hello_first=i % 2 == 0) for i in range(24)))
    peak = _status_kib(a.pid, "VmHWM")
    after = _status_kib(a.pid, "VmRSS")
    print(
        f"RSS before {before // 1024} MiB, peak {peak // 1024} MiB, after {after // 1024} MiB; "
        f"the node took {sum(taken) // MiB} MiB from 24 strangers"
    )
    assert peak - before < 50 * 1024, (before, peak)
    assert after - before < 50 * 1024, (before, after)
    assert "refusing connections" in a.log() or "closing connection" in a.log()

    # ... and it still serves a legitimate peer.
    b = cluster.start("b", peers=(address,))
    await join(a, b, "bob")
    doc_id = await create_doc(a, {"after": "the flood"})
    await poll_until(has_doc(b, doc_id, {"after": "the flood"}))


async def test_a_revoked_device_shows_revoked_and_stops_retrying(cluster: Cluster) -> None:
    a, b, _doc_id = await _synced_member(cluster)
    async with await a.client() as admin:
        await admin.tenant_revoke(TENANT, "cn=bob/o=acme", admin_password=ADMIN_PW)

    async def revoked() -> bool:
        async with await b.client() as client:
            tenants = (await client.status())["tenants"]
        return any(t.get("sync", {}).get("state") == "revoked" for t in tenants)

    await poll_until(revoked)
    listing = b.cli("tenant", "list")
    assert "unlocked, revoked" in listing.stdout
    status = b.cli("status")
    assert "this device's key was revoked" in status.stdout
    async with await b.client() as client:
        refused = (await client.sync_status())["refused"]
    assert [r for r in refused if r["revoked"]]
    assert b.log().count("this device's key was revoked in the tenant") == 1  # said once
    # It stopped dialing: the hub sees no new attempt over several backoff periods.
    attempts = a.log().count("this key was revoked")
    await asyncio.sleep(3)
    assert a.log().count("this key was revoked") == attempts


async def test_a_dropped_database_is_deleted_here_and_not_taken_from_peers_again(
    cluster: Cluster,
) -> None:
    a = cluster.start("a")
    await create_tenant(a)
    b = cluster.start("b", peers=(await _address(a),))
    await join(a, b, "bob")
    async with await a.client() as client:
        await client.db_create(TENANT, "scratch")
        await client.doc_create(TENANT, "scratch", {"n": 1})

    async def b_lists_scratch() -> bool:
        async with await b.client() as client:
            return "scratch" in await client.db_list(TENANT)

    await poll_until(b_lists_scratch)
    dropped = b.cli("db", "drop", TENANT, "scratch", "--yes", "--json")
    assert '"dropped": true' in dropped.stdout
    assert not (b.data_dir / "tenants" / TENANT / "scratch").exists()
    async with await b.client() as client:
        with pytest.raises(MindoodError, match="no database 'scratch'"):
            await client.doc_list(TENANT, "scratch")
        with pytest.raises(MindoodError, match="directory"):
            await client.db_drop(TENANT, "directory")
    refused = b.cli("db", "drop", TENANT, "todos", check=False)
    assert refused.returncode == 2 and "--yes" in refused.stderr

    # a writes to scratch, then to todos: once b has the todos document, it has heard of both.
    async with await a.client() as client:
        await client.doc_create(TENANT, "scratch", {"n": 2})
    marker = await create_doc(a, {"after": "the drop"})
    await poll_until(has_doc(b, marker, {"after": "the drop"}))
    assert not await b_lists_scratch()

    # Created again here, it syncs again: both of a's documents arrive.
    async with await b.client() as client:
        await client.db_create(TENANT, "scratch")
        await client.doc_create(TENANT, "scratch", {"n": 3})

    async def b_has_all() -> bool:
        async with await b.client() as client:
            return len(await client.doc_list(TENANT, "scratch")) == 3

    await poll_until(b_has_all)


async def test_a_database_created_while_a_member_was_down_arrives_after_its_restart(
    cluster: Cluster,
) -> None:
    a = cluster.start("a")
    await create_tenant(a)
    b = cluster.start("b", peers=(await _address(a),))
    await join(a, b, "bob")
    marker = await create_doc(a, {"before": "the stop"})
    await poll_until(has_doc(b, marker, {"before": "the stop"}))
    assert b.stop() == 0, b.log()
    async with await a.client() as client:
        await client.db_create(TENANT, "staff")
        doc_id = (await client.doc_create(TENANT, "staff", {"name": "Ada"}))["id"]
    b.start()
    async with await b.client() as client:
        await client.tenant_unlock(TENANT, "bob-password")

    async def b_has_it() -> bool:
        async with await b.client() as client:
            try:
                data = (await client.doc_get(TENANT, "staff", doc_id))["data"]
                return bool(data == {"name": "Ada"})
            except MindoodError:
                return False

    # The first round after the restart learns of "staff" from a's list and adopts it; the
    # pull must follow the adoption even though a never announces "staff" again.
    await poll_until(b_has_it)
