"""Node-to-node sync over real TLS on 127.0.0.1, in one process: live, mesh, relay, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mindood import InMemoryStoreFactory, TenantFactory
from mindood.db import MindooDB, MindooDoc
from mindood.errors import KeyNotFoundError
from mindood.sync.chaining import ChainingStoreFactory
from protocol.events import SyncProgress
from store.base import StoreHead
from store.chained import ChainedStore
from store.entry import StoreEntry
from store.errors import StoreClosedError
from tests.entries import tampered
from tests.sync_helpers import Node, eventually, join, keyless_relay, make_node, sync_node
from tests.tenant_helpers import admin_creds, fast_kdf, identity, new_tenant, password, username
from transports.channel import channel_pair

pytestmark = pytest.mark.usefixtures("_kdf")


@pytest.fixture(autouse=True, scope="module")
def _kdf() -> object:
    yield from fast_kdf()


class Nodes:
    def __init__(self) -> None:
        self.all: list[Node] = []

    def add(self, node: Node) -> Node:
        self.all.append(node)
        return node


@pytest.fixture
async def nodes() -> AsyncIterator[Nodes]:
    holder = Nodes()
    yield holder
    for node in holder.all:
        await node.sync.aclose()


async def _data(db: MindooDB, doc_id: str) -> dict[str, object] | None:
    doc = await db.find_document(doc_id)
    return None if doc is None else dict(doc.get_data())


async def test_a_write_on_a_reaches_b_live_and_concurrent_edits_converge(
    tmp_path: Path, nodes: Nodes
) -> None:
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    bob_tenant = await join(alice_tenant, "bob")  # empty directory: verifies alice after sync
    a = nodes.add(await make_node(tmp_path, "a", alice_tenant))
    b = nodes.add(await make_node(tmp_path, "b", bob_tenant))
    await a.listen()
    await b.connect_to(a)
    a_db, b_db = await a.db(), await b.db()

    doc = await a_db.create_document({"title": "Buy milk"})
    await eventually(lambda: _is(b_db, doc.get_id(), {"title": "Buy milk"}))

    def alice_edit(d: MindooDoc) -> None:
        d.get_data()["done"] = True

    def bob_edit(d: MindooDoc) -> None:
        d.get_data()["owner"] = "bob"

    await a_db.change_doc(doc.get_id(), alice_edit)
    await b_db.change_doc(doc.get_id(), bob_edit)
    expected = {"title": "Buy milk", "done": True, "owner": "bob"}
    await eventually(lambda: _is(a_db, doc.get_id(), expected))
    await eventually(lambda: _is(b_db, doc.get_id(), expected))
    [status] = b.sync.peers()
    assert status.connected and status.synced and status.transport == "tcp"


async def _is(db: MindooDB, doc_id: str, expected: dict[str, object]) -> bool:
    return await _data(db, doc_id) == expected


async def test_mesh_a_third_node_behind_b_converges(tmp_path: Path, nodes: Nodes) -> None:
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    a = nodes.add(await make_node(tmp_path, "a", alice_tenant))
    b = nodes.add(await make_node(tmp_path, "b", await join(alice_tenant, "bob")))
    c = nodes.add(await make_node(tmp_path, "c", await join(alice_tenant, "carol")))
    await a.listen()
    await b.listen()
    await b.connect_to(a)
    await eventually(lambda: _synced(b))  # b learns of carol from a's directory
    await c.connect_to(b)  # c never talks to a
    doc = await (await a.db()).create_document({"from": "a"})
    await eventually(lambda: _is_any(c, doc.get_id(), {"from": "a"}))

    def carol_edit(d: MindooDoc) -> None:
        d.get_data()["seen_by"] = "carol"

    await (await c.db()).change_doc(doc.get_id(), carol_edit)
    await eventually(lambda: _is_any(a, doc.get_id(), {"from": "a", "seen_by": "carol"}))


async def test_a_database_the_peer_made_while_we_were_away_is_pulled_on_reconnect(
    tmp_path: Path, nodes: Nodes
) -> None:
    """b learns of "notes" only from a's database list in the first round of the new session
    (no one announces it: it did not change while connected), so b must pull it once adopted."""
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    a = nodes.add(await make_node(tmp_path, "a", alice_tenant))
    b = nodes.add(await make_node(tmp_path, "b", await join(alice_tenant, "bob")))
    await a.listen()
    first = await b.sync.connect("127.0.0.1", a.port, b.tenant.tenant_id)
    await eventually(lambda: _synced(b))  # b's directory now equals a's
    await first.close()
    await eventually(lambda: _no_links(a))
    notes = await alice_tenant.open_db("notes")
    doc = await notes.create_document({"written": "while b was away"})
    await a.sync.add_database(alice_tenant.tenant_id, "notes")
    await b.connect_to(a)
    b_notes = await b.tenant.open_db("notes")
    await eventually(lambda: _is(b_notes, doc.get_id(), {"written": "while b was away"}))


async def _no_links(node: Node) -> bool:
    return not node.sync.links()


async def _is_any(node: Node, doc_id: str, expected: dict[str, object]) -> bool:
    return await _is(await node.db(), doc_id, expected)


async def test_a_keyless_relay_carries_data_it_cannot_read(tmp_path: Path, nodes: Nodes) -> None:
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    relay_tenant = await keyless_relay(alice_tenant)
    bob_tenant = await join(alice_tenant, "bob")
    a = nodes.add(await make_node(tmp_path, "a", alice_tenant))
    relay = nodes.add(await make_node(tmp_path, "relay", relay_tenant))
    b = nodes.add(await make_node(tmp_path, "b", bob_tenant))
    await a.listen()
    await relay.connect_to(a)  # provisioning: the relay takes the directory from a member
    await eventually(lambda: _synced(relay))
    await relay.listen()
    await b.connect_to(relay)
    secret = "Quarterly numbers: 4711"
    doc = await (await a.db()).create_document({"note": secret})
    await eventually(lambda: _is_any(b, doc.get_id(), {"note": secret}))
    relay_db = await relay.db()
    with pytest.raises(KeyNotFoundError):
        await relay_db.get_document(doc.get_id())
    stored = await relay_db.get_store().get_entries(await relay_db.get_store().get_all_ids())
    assert stored and all(secret.encode() not in e.encrypted_data for e in stored)


async def test_revocation_closes_the_open_session_and_refuses_the_next(
    tmp_path: Path, nodes: Nodes
) -> None:
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    a = nodes.add(await make_node(tmp_path, "a", alice_tenant))
    b = nodes.add(await make_node(tmp_path, "b", await join(alice_tenant, "bob")))
    await a.listen()
    await b.connect_to(a)
    doc = await (await a.db()).create_document({"n": 1})
    await eventually(lambda: _is_any(b, doc.get_id(), {"n": 1}))
    await alice_tenant.revoke_user(username("bob"), **admin_creds())

    async def closed() -> bool:
        return all(not p.connected for p in a.sync.peers()) and not a.sync.links()

    await eventually(closed)
    with pytest.raises(ConnectionRefusedError, match="revoked"):
        await b.connect_to(a)


async def test_a_node_of_another_tenant_is_refused(tmp_path: Path, nodes: Nodes) -> None:
    ours = (await new_tenant(InMemoryStoreFactory())).tenant
    # Same tenant id, but another organisation: its own admin and users.
    theirs = (
        await TenantFactory(InMemoryStoreFactory()).create_tenant(
            tenant_id=ours.tenant_id,
            admin_name=username("otheradmin"),
            admin_password=password("otheradmin"),
            user_name=username("mallory"),
            user_password=password("mallory"),
            admin_user=identity("otheradmin"),
            app_user=identity("mallory"),
        )
    ).tenant
    a = nodes.add(await make_node(tmp_path, "a", ours))
    stranger = nodes.add(await make_node(tmp_path, "x", theirs))
    await a.listen()
    with pytest.raises(ConnectionRefusedError):
        await stranger.connect_to(a)
    assert not a.sync.links()
    # Dialing the stranger ourselves fails the same way: to its directory we are strangers.
    await stranger.listen()
    directory_before = await ours.get_directory().db.get_store().get_all_ids()
    with pytest.raises(ConnectionRefusedError, match="not granted"):
        await a.connect_to(stranger)
    assert not a.sync.links()
    assert await ours.get_directory().db.get_store().get_all_ids() == directory_before


async def test_forged_entries_from_a_peer_are_rejected_and_valid_ones_arrive(
    tmp_path: Path, nodes: Nodes
) -> None:
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    a = nodes.add(await make_node(tmp_path, "a", alice_tenant))
    b = nodes.add(await make_node(tmp_path, "b", await join(alice_tenant, "bob")))
    a_db = await a.db()
    good = await a_db.create_document({"ok": True})
    victim = await a_db.create_document({"ok": "soon forged"})
    # Swap the victim's entry in A's store for a tampered copy (what a hostile peer serves).
    store = a_db.get_store()
    [meta] = await store.find_new_entries_for_doc([], victim.get_id())
    [entry] = await store.get_entries([meta.id])
    forged: StoreEntry = tampered(entry, created_at=entry.metadata.created_at + 1)
    await store.purge_doc_history(victim.get_id())
    await store.put_entries([forged])
    await a.listen()
    await b.connect_to(a)
    b_db = await b.db()
    await eventually(lambda: _is(b_db, good.get_id(), {"ok": True}))
    await eventually(lambda: _synced(b))
    assert await b_db.get_store().has_entries([forged.id]) == []
    assert b.sync.peers()[0].rejected >= 1


async def _synced(node: Node) -> bool:
    return all(p.synced for p in node.sync.peers())


async def test_an_edge_cache_serves_a_client_and_forwards_its_writes(
    tmp_path: Path, nodes: Nodes
) -> None:
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    upstream = nodes.add(await make_node(tmp_path, "upstream", alice_tenant))
    edge_sync = sync_node(tmp_path, "edge")
    chaining = ChainingStoreFactory(InMemoryStoreFactory(), edge_sync.upstream_store)
    edge = nodes.add(
        await make_node(
            tmp_path, "edge", await keyless_relay(alice_tenant, "edge", chaining), edge_sync
        )
    )
    client = nodes.add(await make_node(tmp_path, "client", await join(alice_tenant, "bob")))
    await upstream.listen()
    await edge.sync.connect("127.0.0.1", upstream.port, edge.tenant.tenant_id, upstream=True)
    await eventually(lambda: _synced(edge))
    await edge.listen()
    await client.connect_to(edge)

    doc = await (await upstream.db()).create_document({"from": "upstream"})
    await eventually(lambda: _is_any(client, doc.get_id(), {"from": "upstream"}))

    def client_edit(d: MindooDoc) -> None:
        d.get_data()["reply"] = "from the client"

    await (await client.db()).change_doc(doc.get_id(), client_edit)
    expected = {"from": "upstream", "reply": "from the client"}
    await eventually(lambda: _is_any(upstream, doc.get_id(), expected))
    edge_store = (await edge.db()).get_store()
    assert isinstance(edge_store, ChainedStore) and edge_store.forwarded_upstream >= 1


async def test_oversized_entries_are_refused_and_logged_while_the_rest_arrive(
    tmp_path: Path, nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    a = nodes.add(await make_node(tmp_path, "a", alice_tenant))
    small_limit = sync_node(tmp_path, "b", max_entry_bytes=4096)
    b = nodes.add(await make_node(tmp_path, "b", await join(alice_tenant, "bob"), small_limit))
    a_db = await a.db()
    small = await a_db.create_document({"size": "small"})
    big = await a_db.create_document({"blob": "x" * 20_000})
    await a.listen()
    await b.connect_to(a)
    b_db = await b.db()
    await eventually(lambda: _is(b_db, small.get_id(), {"size": "small"}))
    await eventually(lambda: _synced(b))
    assert await b_db.find_document(big.get_id()) is None
    assert any("exceeds the limit" in getattr(r, "reason", "") for r in caplog.records)


async def test_a_session_runs_over_any_channel(tmp_path: Path, nodes: Nodes) -> None:
    """The same node code syncs over a non-TCP channel (here the in-memory pair)."""
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    a = nodes.add(await make_node(tmp_path, "a", alice_tenant))
    b = nodes.add(await make_node(tmp_path, "b", await join(alice_tenant, "bob")))
    a_end, b_end = channel_pair()
    server = asyncio.ensure_future(a.sync.attach(a_end))
    await b.sync.attach(b_end, b.tenant.tenant_id)
    await server
    doc = await (await a.db()).create_document({"via": "memory"})
    await eventually(lambda: _is_any(b, doc.get_id(), {"via": "memory"}))
    assert {p.transport for p in b.sync.peers()} == {"memory"}


async def test_signals_reach_a_peer_through_a_shared_rendezvous(
    tmp_path: Path, nodes: Nodes
) -> None:
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    hub = nodes.add(await make_node(tmp_path, "hub", alice_tenant))
    b = nodes.add(await make_node(tmp_path, "b", await join(alice_tenant, "bob")))
    c = nodes.add(await make_node(tmp_path, "c", await join(alice_tenant, "carol")))
    await hub.listen()
    await b.connect_to(hub)
    await c.connect_to(hub)
    await eventually(lambda: _synced(b))
    await eventually(lambda: _synced(c))
    received: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
    c.sync.on_signal(lambda t, sender, payload: received.put_nowait((t, sender, payload)))
    carol = c.tenant.user.private.signing_public_key
    assert await b.sync.send_signal(b.tenant.tenant_id, carol, b"offer: sdp...")
    tenant_id, sender, payload = await asyncio.wait_for(received.get(), 10)
    assert (tenant_id, payload) == (b.tenant.tenant_id, b"offer: sdp...")
    assert sender == b.tenant.user.private.signing_public_key
    unknown = (await new_tenant(InMemoryStoreFactory())).tenant.user.private.signing_public_key
    assert not await b.sync.send_signal(b.tenant.tenant_id, unknown + "x", b"nobody")


async def test_the_peer_does_not_scan_back_what_it_just_gave_us(
    tmp_path: Path, nodes: Nodes
) -> None:
    """A's entries stored on B are not listed to A again; B's own writes still are."""
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    bob_tenant = await join(alice_tenant, "bob")
    a = nodes.add(await make_node(tmp_path, "a", alice_tenant))
    b = nodes.add(await make_node(tmp_path, "b", bob_tenant))
    a_db = await a.db()
    docs = [await a_db.create_document({"n": i}) for i in range(30)]
    scanned_by_a: list[int] = []

    def on_event(event: object) -> None:
        if isinstance(event, SyncProgress) and event.db == "todos" and event.kind == "docs":
            scanned_by_a.append(event.scanned)

    a.sync.on_event(on_event)
    await a.listen()
    await b.connect_to(a)
    b_db = await b.db()
    await eventually(lambda: _is(b_db, docs[-1].get_id(), {"n": 29}))
    mine = await b_db.create_document({"by": "bob"})
    await eventually(lambda: _is(a_db, mine.get_id(), {"by": "bob"}))
    b_head = await b_db.get_store().get_store_head()
    # A listed only B's own entry (each progress event counts a run's pages so far), never
    # the 30 entries it had sent B.
    assert b_head.max_receipt_order == 31
    assert 1 <= sum(scanned_by_a) <= 3, scanned_by_a


async def _lists(node: Node, name: str) -> bool:
    return name in await node.tenant.store_factory.list_databases(node.tenant.tenant_id)


async def test_work_in_flight_for_a_dropped_database_does_not_create_it_again(
    tmp_path: Path, nodes: Nodes
) -> None:
    """A pull, a peer's push or an announcement already under way when a database is dropped
    finishes against nothing: opening the database then would create it again, empty."""
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    bob_tenant = await join(alice_tenant, "bob")
    a = nodes.add(await make_node(tmp_path, "a", alice_tenant))
    b = nodes.add(await make_node(tmp_path, "b", bob_tenant))
    a_db = await a.db()
    doc = await a_db.create_document({"n": 1})
    await a.listen()
    await b.connect_to(a)
    await eventually(lambda: _is_any(b, doc.get_id(), {"n": 1}))
    [link] = b.sync.links()
    store = a_db.get_store()
    entries = await store.get_entries(await store.get_all_ids())

    await b.sync.remove_database(bob_tenant.tenant_id, "todos")
    assert await bob_tenant.drop_db("todos")
    assert not await _lists(b, "todos")
    # What was under way lands now: the end of a pull, an announcement, a peer's push.
    await link.took_in("todos")
    await link.announce("todos")
    with pytest.raises(StoreClosedError, match="dropped on this node"):
        await link.admit("todos", entries)
    assert not await _lists(b, "todos")
    # Nor does a later write on a, once b has pulled everything else a has.
    await a_db.create_document({"n": 2})
    notes = await (await a.db("notes")).create_document({"after": "the drop"})
    await a.sync.add_database(alice_tenant.tenant_id, "notes")

    async def b_has_notes() -> bool:
        return await _lists(b, "notes") and await _is(
            await b.db("notes"), notes.get_id(), {"after": "the drop"}
        )

    await eventually(b_has_notes)
    assert not await _lists(b, "todos")


async def test_a_database_is_announced_once_per_store_head(tmp_path: Path, nodes: Nodes) -> None:
    """Changed documents without new entries (a restart folding the store into the cache)
    cost the peer nothing: each announcement makes it ask for heads."""
    alice_tenant = (await new_tenant(InMemoryStoreFactory())).tenant
    a = nodes.add(await make_node(tmp_path, "a", alice_tenant))
    b = nodes.add(await make_node(tmp_path, "b", await join(alice_tenant, "bob")))
    await a.listen()
    await b.connect_to(a)
    await eventually(lambda: _synced(b))
    [link] = b.sync.links()
    told: list[str] = []
    session = link.driver._session
    real_announce = session.announce

    async def counting(db: str, head: StoreHead | None) -> None:
        told.append(db)
        await real_announce(db, head)

    session.announce = counting  # type: ignore[method-assign]
    for _ in range(4):
        await link.announce("todos")
    assert told == ["todos"]
    mine = await (await b.db()).create_document({"by": "bob"})  # a new head is announced
    await eventually(lambda: _is_any(a, mine.get_id(), {"by": "bob"}))
    assert told[1:] == ["todos"]
