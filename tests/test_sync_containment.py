"""What one bad entry, stranger or task may cost a syncing node: that thing alone.

Real nodes over real TLS on 127.0.0.1, in one process; the serving node of the healing test keeps
its entries in the real on-disk (SQLite) store, damaged with ``sqlite3`` as a disk would be.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mindood import InMemoryStoreFactory, TenantFactory
from mindood.db import MindooDB
from mindood.storefactory import OnDiskStoreFactory, StoreFactory
from mindood.sync import SyncNode
from mindood.sync.link import PeerLink
from mindood.sync.traffic import NodeEvent
from mindood.tenant import Tenant
from protocol.driver import RetryPolicy
from protocol.events import Refused, SyncFailed
from protocol.interfaces import PeerInfo
from tests.sync_helpers import Node, eventually, join, make_node, sync_node
from tests.tenant_helpers import (
    TENANT_ID,
    admin_creds,
    fast_kdf,
    identity,
    new_tenant,
    password,
    username,
)
from transports.tcp import NodeCertificate

pytestmark = pytest.mark.usefixtures("_kdf")


@pytest.fixture(autouse=True, scope="module")
def _kdf() -> object:
    yield from fast_kdf()


@pytest.fixture
async def nodes() -> AsyncIterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        await node.sync.aclose()


async def join_on(admin_side: Tenant, name: str, factory: StoreFactory) -> Tenant:
    """A device of user ``name`` joined through the admin, keeping its stores in ``factory``."""
    tenants = TenantFactory(factory)
    request = tenants.create_join_request(identity(name), format="uri", label=f"{name}'s device")
    response = await admin_side.approve_join_request(request, **admin_creds())
    joined = await tenants.join_tenant(response, user=identity(name), password=password(name))
    return joined.tenant


async def doc_ids(db: MindooDB) -> set[str]:
    return set(await db.get_all_document_ids())


def flip_payload(sqlite_file: Path, entry_id: str) -> None:
    """Damage one entry's stored ciphertext in place, as a bad sector would."""
    conn = sqlite3.connect(sqlite_file)
    try:
        [(order,)] = conn.execute("SELECT receipt_order FROM entries WHERE id = ?", (entry_id,))
        [(data,)] = conn.execute("SELECT data FROM payloads WHERE receipt_order = ?", (order,))
        damaged = bytearray(data)
        damaged[len(damaged) // 2] ^= 0xFF
        conn.execute(
            "UPDATE payloads SET data = ? WHERE receipt_order = ?", (bytes(damaged), order)
        )
        conn.commit()
    finally:
        conn.close()


async def test_a_corrupt_served_entry_is_skipped_then_healed_from_a_second_peer(
    tmp_path: Path, nodes: list[Node], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    origin = await make_node(tmp_path, "origin", alice)
    nodes.append(origin)
    created = [await (await origin.db()).create_document({"n": n}) for n in range(29)]
    wanted = {doc.get_id() for doc in created}

    disk = OnDiskStoreFactory(tmp_path / "server-data")
    server = await make_node(tmp_path, "server", await join_on(alice, "bob", disk))
    carol = await join(alice, "carol")  # granted before the server takes the directory
    nodes.append(server)
    await origin.listen()
    await server.connect_to(origin)
    server_db = await server.db()
    await eventually(lambda: _has(server_db, wanted))

    victim = created[7].get_id()
    store = server_db.get_store()
    [meta] = await store.find_new_entries_for_doc([], victim)
    flip_payload(tmp_path / "server-data" / TENANT_ID / "todos" / "docs" / "store.sqlite", meta.id)

    member = await make_node(tmp_path, "member", carol)
    nodes.append(member)
    await server.listen()
    await member.connect_to(server)
    member_db = await member.db()
    # The member gets everything: the 28 sound documents from the first round, and the damaged
    # one once the server has fetched a good copy from the origin and announced it.
    await eventually(lambda: _has(member_db, wanted), seconds=30)
    assert (await member_db.get_document(victim)).get_data()["n"] == 7
    [to_server] = member.sync.peers()
    assert to_server.unavailable >= 1  # the damaged entry was refused by id, not the round
    messages = [r.getMessage() for r in caplog.records]
    assert "damaged entry quarantined" in messages
    assert "quarantined entries restored from a good copy" in messages
    assert store.health().quarantined == 0 and await store.quarantined_ids() == []
    await server.sync.aclose()
    await server.tenant.close()
    await disk.close()


async def _has(db: MindooDB, wanted: set[str]) -> bool:
    return wanted <= await doc_ids(db)


async def test_a_stranger_signed_entry_is_not_stored_until_its_author_is_granted(
    tmp_path: Path, nodes: list[Node]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    hub = await make_node(tmp_path, "hub", alice)
    nodes.append(hub)
    # An admin device whose directory holds a grant the hub has not seen yet: mallory's.
    admin_device = await join(alice, "xavier")
    mallory = await join_on(admin_device, "mallory", InMemoryStoreFactory())
    mallory_db = await mallory.open_db("todos")
    note = await mallory_db.create_document({"by": "mallory"})
    entries = await mallory_db.get_store().get_entries(await mallory_db.get_store().get_all_ids())
    hub_db = await hub.db()
    await hub_db.get_store().put_entries(entries)  # the hub stores ciphertext it is handed
    sound = await hub_db.create_document({"by": "alice"})

    member = await make_node(tmp_path, "member", await join(alice, "bob"))
    nodes.append(member)
    await hub.listen()
    await member.connect_to(hub)
    member_db = await member.db()
    await eventually(lambda: _has(member_db, {sound.get_id()}))
    await eventually(lambda: _all_synced(member))
    ids = [e.id for e in entries]
    assert await member_db.get_store().has_entries(ids) == []
    assert member.sync.peers()[0].deferred == len(ids)

    # The grant reaches the hub; the hub's directory change reaches the member, whose trust
    # changes, and the entries it put off are fetched again by id.
    device = await make_node(tmp_path, "device", admin_device)
    nodes.append(device)
    await device.connect_to(hub)
    await eventually(lambda: _has(member_db, {note.get_id()}), seconds=30)
    assert sorted(await member_db.get_store().has_entries(ids)) == sorted(ids)


async def _hub_and_bobs_device(tmp_path: Path, nodes: list[Node]) -> tuple[Tenant, Node, Node]:
    """Alice's tenant on a hub node, and a node of a device bob joined with."""
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    hub = await make_node(tmp_path, "hub", alice)
    device = await make_node(tmp_path, "device", await join(alice, "bob"))
    nodes.extend([hub, device])
    return alice, hub, device


def _hub_closed_a_session(caplog: pytest.LogCaptureFixture) -> bool:
    """Whether a node closed an open session because the directory stopped trusting its peer."""
    closed = "closing the session of a peer the directory does not trust"
    return any(r.getMessage() == closed for r in caplog.records)


async def _has_synced_peer(node: Node) -> bool:
    peers = node.sync.peers()
    return bool(peers) and all(p.synced for p in peers)


async def _all_synced(node: Node) -> bool:
    return all(p.synced for p in node.sync.peers())


async def test_an_entry_the_server_may_not_send_is_refused_by_id_and_the_rest_syncs(
    tmp_path: Path, nodes: list[Node], caplog: pytest.LogCaptureFixture
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    server = await make_node(tmp_path, "s", alice, sync_node(tmp_path, "s", max_entry_bytes=4096))
    nodes.append(server)
    big = await (await server.db()).create_document({"blob": "x" * 20_000})
    small = await (await server.db()).create_document({"size": "small"})
    member = await make_node(tmp_path, "m", await join(alice, "bob"))
    nodes.append(member)
    await server.listen()
    await member.connect_to(server)
    member_db = await member.db()
    await eventually(lambda: _has(member_db, {small.get_id()}))
    await eventually(lambda: _all_synced(member))
    assert await member_db.find_document(big.get_id()) is None
    assert member.sync.peers()[0].unavailable >= 1
    refusals = [r for r in caplog.records if r.getMessage() == "peer would not send an entry"]
    assert refusals and "exceeds the tenant-wide limit" in getattr(refusals[0], "reason", "")


async def test_the_revoked_device_knows_it_and_stops_retrying(
    tmp_path: Path, nodes: list[Node], caplog: pytest.LogCaptureFixture
) -> None:
    alice, hub, device = await _hub_and_bobs_device(tmp_path, nodes)
    seen: list[NodeEvent] = []
    device.sync.on_event(seen.append)
    port = await hub.listen()
    maintainer = device.sync.add_peer("127.0.0.1", port, TENANT_ID)
    await eventually(lambda: _all_synced(device))
    assert not device.sync.revoked(TENANT_ID)

    await alice.revoke_user(username("bob"), **admin_creds())
    async with asyncio.timeout(30):  # bounded; the revocation travels a directory refresh
        await maintainer  # it ends by itself: retrying cannot help a revoked key
    assert device.sync.revoked(TENANT_ID)
    [refusal] = device.sync.refusals()
    assert refusal.revoked and refusal.address == f"127.0.0.1:{port}"
    assert [e for e in seen if isinstance(e, Refused) and e.revoked]
    warnings = [
        r for r in caplog.records if r.name == "mindood.sync.node" and "revoked" in r.getMessage()
    ]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


async def test_a_revocation_closes_the_revoked_device_s_open_session(
    tmp_path: Path, nodes: list[Node], caplog: pytest.LogCaptureFixture
) -> None:
    alice, hub, device = await _hub_and_bobs_device(tmp_path, nodes)
    port = await hub.listen()
    maintainer = device.sync.add_peer("127.0.0.1", port, TENANT_ID)
    await eventually(lambda: _has_synced_peer(device))  # the session is up before the revoke

    await alice.revoke_user(username("bob"), **admin_creds())
    async with asyncio.timeout(30):
        await maintainer
    assert device.sync.revoked(TENANT_ID)
    assert _hub_closed_a_session(caplog)  # the hub closed it


async def test_a_revocation_between_handshake_and_session_start_still_closes_it(
    tmp_path: Path, nodes: list[Node], caplog: pytest.LogCaptureFixture
) -> None:
    alice, hub, device = await _hub_and_bobs_device(tmp_path, nodes)
    await alice.revoke_user(username("bob"), **admin_creds())
    # The handshake's check answers as the directory did just before the revocation landed
    # (the race: checked, then revoked, then the session listed); every later check is real.
    context = hub.sync._registry._contexts[TENANT_ID]
    real = context.check_peer
    before: list[PeerInfo] = []

    def check_peer(identity: str, encryption_key: str, *, dialed: bool) -> PeerInfo:
        if not before:
            before.append(PeerInfo(identity, encryption_key, "bob's device"))
            return before[0]
        return real(identity, encryption_key, dialed=dialed)

    context.check_peer = check_peer  # type: ignore[method-assign]
    port = await hub.listen()
    maintainer = device.sync.add_peer("127.0.0.1", port, TENANT_ID)
    async with asyncio.timeout(30):
        await maintainer
    assert before and device.sync.revoked(TENANT_ID)
    assert _hub_closed_a_session(caplog)


async def test_a_closed_node_leaves_no_task_behind(tmp_path: Path) -> None:
    before = asyncio.all_tasks()
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    hub = await make_node(tmp_path, "hub", alice)
    device = await make_node(tmp_path, "device", await join(alice, "bob"))
    port = await hub.listen()
    device.sync.add_peer("127.0.0.1", port, TENANT_ID)
    doc = await (await hub.db()).create_document({"n": 1})
    device_db = await device.db()
    await eventually(lambda: _has(device_db, {doc.get_id()}))
    started = asyncio.all_tasks() - before
    names = {t.get_name() for t in started}
    # Both supervisors and announcers, the maintainer, and the session at each end.
    assert {"sync-node", "sync-announcer", f"sync-peer:127.0.0.1:{port}"} <= names
    assert any(n.startswith("sync-in:") for n in names)
    assert any(n.startswith("sync-out:") for n in names)
    await device.sync.aclose()
    await hub.sync.aclose()
    alive = [t for t in started if not t.done()]
    assert alive == [], [t.get_name() for t in alive]


async def test_a_failing_child_task_is_logged_and_ends_its_node(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = sync_node(tmp_path, "n")
    await node.start()

    async def broken() -> None:
        raise RuntimeError("a bug in a child task")

    node.spawn(broken(), name="broken-child")
    with pytest.raises(ExceptionGroup) as failure:
        async with asyncio.timeout(10):
            await node.wait()
    assert failure.group_contains(RuntimeError)
    assert any(r.getMessage().startswith("the sync node stopped") for r in caplog.records)
    await node.aclose()


async def test_a_failing_session_task_ends_that_session_only(
    tmp_path: Path,
    nodes: list[Node],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fault injection: a bug in the node's pull target (nothing real fails this way on demand).
    _alice, hub, device = await _hub_and_bobs_device(tmp_path, nodes)

    async def bug(self: PeerLink, db: str, kind: object) -> None:
        raise RuntimeError("a bug in the pull target")

    monkeypatch.setattr(PeerLink, "pull_target", bug)
    await hub.listen()
    await device.connect_to(hub)
    await eventually(lambda: _no_links(device))
    assert any(r.getMessage() == "a session task failed; the session ends" for r in caplog.records)
    monkeypatch.undo()
    await device.connect_to(hub)  # the node lives on and syncs again
    doc = await (await hub.db()).create_document({"after": True})
    device_db = await device.db()
    await eventually(lambda: _has(device_db, {doc.get_id()}))


async def _no_links(node: Node) -> bool:
    return not node.sync.links()


async def test_a_failed_database_pull_is_retried_with_backoff_and_shown(
    tmp_path: Path, nodes: list[Node]
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    hub = await make_node(tmp_path, "hub", alice)
    quick = SyncNode(
        NodeCertificate.load_or_create(tmp_path / "device"),
        retry=RetryPolicy(initial=0.05, maximum=0.4),
    )
    device = await make_node(tmp_path, "device", await join(alice, "bob"), quick)
    nodes.extend([hub, device])
    failures: list[SyncFailed] = []
    device.sync.on_event(lambda e: failures.append(e) if isinstance(e, SyncFailed) else None)
    await (await hub.db()).create_document({"n": 1})
    await (await hub.db()).get_store().close()  # every request on the hub's store fails there
    await hub.listen()
    await device.connect_to(hub)

    async def retried() -> bool:
        return len([f for f in failures if f.db == "todos"]) >= 3

    await eventually(retried)
    todos = [f for f in failures if f.db == "todos"]
    assert todos[0].retry_in < todos[2].retry_in  # backoff grows
    [status] = device.sync.peers()
    assert status.connected and dict(status.errors)["todos"] == todos[-1].error
