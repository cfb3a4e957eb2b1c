"""Discovery and WebRTC between nodes in one process, on loopback only.

mDNS runs on 127.0.0.1 (``lo`` has no MULTICAST flag, but zeroconf bound to 127.0.0.1 reaches
the other instances on the host); ICE gathers host candidates on 127.0.0.1 only. The network
namespace tests (``test_netns.py``) repeat these with real links, NAT and coturn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mindood import InMemoryStoreFactory, TenantFactory
from mindood.sync import SyncNode
from mindood.sync.discovery import DiscoveryConfig
from mindood.sync.members import node_id
from mindood.sync.network import NetworkConfig, PeerNetwork
from mindood.sync.webrtc_dial import WebRtcConfig, decode_signal, encode_signal
from mindood.tenant import Tenant
from tests.sync_helpers import Node, eventually, join, keyless_relay, make_node, sync_node
from tests.tenant_helpers import fast_kdf, identity, new_tenant, password, username
from tests.webrtc_helpers import loopback_ice
from transports.tcp import Backoff, NodeCertificate

pytestmark = pytest.mark.usefixtures("_kdf")

FAST = Backoff(initial=0.1, maximum=1.0)


@pytest.fixture(autouse=True, scope="module")
def _kdf() -> Iterator[None]:
    yield from fast_kdf()


class Fleet:
    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.networks: list[PeerNetwork] = []

    async def stop(self, node: Node, network: PeerNetwork | None) -> None:
        if network is not None:
            await network.aclose()
            self.networks.remove(network)
        await node.sync.aclose()
        self.nodes.remove(node)


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    holder = Fleet()
    yield holder
    for network in list(holder.networks):
        await network.aclose()
    for node in list(holder.nodes):
        await node.sync.aclose()


async def _start(
    fleet: Fleet, tmp_path: Path, name: str, tenant: Tenant, config: NetworkConfig, **kw: object
) -> tuple[Node, PeerNetwork]:
    node = await make_node(tmp_path, name, tenant, sync_node(tmp_path, name))
    fleet.nodes.append(node)
    port = await node.listen()
    network = PeerNetwork(node.sync, config)
    fleet.networks.append(network)
    await network.start(port)
    return node, network


def _discovery() -> NetworkConfig:
    return NetworkConfig(
        discovery=DiscoveryConfig(interfaces=("127.0.0.1",), dial_timeout=2.0, grace=1.0),
        backoff=FAST,
    )


async def _has(node: Node, doc_id: str, expected: dict[str, object]) -> bool:
    doc = await (await node.db()).find_document(doc_id)
    return doc is not None and dict(doc.get_data()) == expected


def _peer_ids(node: Node) -> set[bytes]:
    return {node_id(p.identity) for p in node.sync.peers() if p.connected}


async def test_three_nodes_find_each_other_by_mdns_and_converge(
    tmp_path: Path, fleet: Fleet
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    bob, carol = await join(alice, "bob"), await join(alice, "carol")
    a, _ = await _start(fleet, tmp_path, "a", alice, _discovery())
    b, _ = await _start(fleet, tmp_path, "b", bob, _discovery())
    c, net_c = await _start(fleet, tmp_path, "c", carol, _discovery())
    docs = [await (await n.db()).create_document({"from": n.name}) for n in (a, b, c)]
    for node in (a, b, c):
        for doc, origin in zip(docs, "abc", strict=True):
            await eventually(lambda n=node, d=doc, o=origin: _has(n, d.get_id(), {"from": o}))
    ids = {n.name: node_id(n.tenant.user.private.signing_public_key) for n in (a, b, c)}

    async def meshed() -> bool:
        return all(_peer_ids(n) >= {v for k, v in ids.items() if k != n.name} for n in (a, b, c))

    await eventually(meshed)

    async def one_session_per_pair() -> bool:
        return all(len([p for p in n.sync.peers() if p.connected]) == 2 for n in (a, b, c))

    # Exactly one session per pair: the lower node id dials, the other one waits (a session
    # both ends opened at once is closed by the rule, which can take a moment under load).
    await eventually(one_session_per_pair)
    for node in (a, b, c):
        assert {p.transport for p in node.sync.peers()} == {"tcp"}
    discovery_c = net_c.discovery
    assert discovery_c is not None

    async def found_both() -> bool:
        return bool(discovery_c.status()["members_found"] == 2)

    await eventually(found_both)

    # carol leaves (goodbye packets): a and b stop redialing; she returns and catches up.
    await fleet.stop(c, net_c)
    await eventually(lambda: _alone(a, ids["c"]))
    late = await (await a.db()).create_document({"from": "a-late"})
    c2, _ = await _start(fleet, tmp_path, "c2", carol, _discovery())
    await eventually(lambda: _has(c2, late.get_id(), {"from": "a-late"}))


async def _alone(node: Node, gone: bytes) -> bool:
    return gone not in _peer_ids(node)


async def test_a_node_of_another_tenant_is_seen_but_never_connected(
    tmp_path: Path, fleet: Fleet
) -> None:
    ours = (await new_tenant(InMemoryStoreFactory())).tenant
    theirs = (
        await TenantFactory(InMemoryStoreFactory()).create_tenant(
            tenant_id=ours.tenant_id,  # same id, other organisation: the tag still differs
            admin_name=username("otheradmin"),
            admin_password=password("otheradmin"),
            user_name=username("mallory"),
            user_password=password("mallory"),
            admin_user=identity("otheradmin"),
            app_user=identity("mallory"),
        )
    ).tenant
    a, net_a = await _start(fleet, tmp_path, "a", ours, _discovery())
    x, net_x = await _start(fleet, tmp_path, "x", theirs, _discovery())

    async def seen() -> bool:
        assert net_a.discovery is not None and net_x.discovery is not None
        return bool(net_a.discovery.foreign) and bool(net_x.discovery.foreign)

    await eventually(seen)
    await asyncio.sleep(1.5)  # longer than the grace period: nobody dials a foreign node
    assert not a.sync.links() and not x.sync.links()
    assert not net_a.reach.wanted() and not net_x.reach.wanted()
    # Dialing the advertised address by hand is refused by the handshake.
    with pytest.raises(ConnectionRefusedError):
        await x.sync.connect("127.0.0.1", a.port, theirs.tenant_id)


async def test_two_members_behind_a_keyless_relay_sync_over_webrtc(
    tmp_path: Path, fleet: Fleet
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    relay_tenant = await keyless_relay(alice)
    bob = await join(alice, "bob")
    webrtc = NetworkConfig(
        webrtc=WebRtcConfig(enabled=True, auto_connect=True, auto_interval=1.0),
        backoff=FAST,
    )
    with loopback_ice():
        relay_sync = SyncNode(
            NodeCertificate.load_or_create(tmp_path / "relay"), adopt_databases=False, backoff=FAST
        )
        relay = Node("relay", relay_tenant, relay_sync)
        fleet.nodes.append(relay)
        await relay_sync.add_tenant(relay_tenant, [])  # the directory only: no "todos" via relay
        await relay.listen()
        a, _ = await _start(fleet, tmp_path, "a", alice, webrtc)
        b, _ = await _start(fleet, tmp_path, "b", bob, webrtc)
        await relay.connect_to(a)  # the relay takes the directory from a member first
        await eventually(lambda: _directory_synced(relay_tenant, alice))
        await b.connect_to(relay)
        await eventually(lambda: _directory_synced(bob, alice))
        doc = await (await a.db()).create_document({"title": "peer to peer"})
        await eventually(lambda: _has(b, doc.get_id(), {"title": "peer to peer"}), seconds=30)
        transports = {p.transport for p in b.sync.peers() if p.connected}
        assert transports == {"tcp", "webrtc"}

        async def direct_round_done() -> bool:  # the document may arrive before the round ends
            return any(p.transport == "webrtc" and p.synced for p in b.sync.peers())

        await eventually(direct_round_done)
        [direct] = [p for p in b.sync.peers() if p.transport == "webrtc"]
        assert direct.address.startswith("webrtc:127.0.0.1:") and direct.synced


async def _directory_synced(follower: Tenant, source: Tenant) -> bool:
    mine = await follower.get_directory().db.get_store().get_all_ids()
    theirs = await source.get_directory().db.get_store().get_all_ids()
    if set(mine) >= set(theirs):
        await follower.refresh_directory()
        return True
    return False


def test_signal_envelopes_round_trip_and_garbage_is_ignored() -> None:
    sid = bytes(16)
    assert decode_signal(encode_signal("offer", sid, b"sdp")) == ("offer", sid, b"sdp")
    for bad in (b"", b"\xc1", encode_signal("offer", b"short"), encode_signal("evil", sid)):
        assert decode_signal(bad) is None
