"""The daemon's node-to-node sync: a ``SyncNode`` run as a daemon service.

It listens on ``[network] listen``, keeps a session with every configured ``[[peers]]`` and
``[[upstreams]]`` entry for each unlocked tenant, adds a tenant when it is unlocked and drops its
sessions when it is locked, and reports peers and progress to RPC subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mindood.daemon.config import Config, parse_address
from mindood.daemon.events import DocChanged, SyncProgress
from mindood.daemon.services import PeerInfo
from mindood.sync import SyncNode
from mindood.sync.cursors import peer_key
from mindood.sync.link import PeerLink
from mindood.sync.network import PeerNetwork
from protocol.store_ops import StoreKind
from store.base import ContentAddressedStore
from transports.tcp import NodeCertificate, PreAuthLimits

if TYPE_CHECKING:
    from mindood.daemon.node import Node

log = logging.getLogger("mindood.sync.service")

TLS_DIR = "node-tls"


def split_address(address: str) -> tuple[str, int]:
    """An address the configuration validated, into host and port."""
    return parse_address(address)


@dataclass
class UpstreamLookup:
    """Late-bound: the store factory exists before the sync node that answers it."""

    target: Callable[[str, str, StoreKind], ContentAddressedStore | None] | None = None

    def __call__(self, tenant_id: str, db: str, kind: StoreKind) -> ContentAddressedStore | None:
        return None if self.target is None else self.target(tenant_id, db, kind)


@dataclass
class _TenantPeers:
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class SyncService:
    """Implements the daemon's ``Service`` and ``SyncControl`` seams."""

    name = "sync"

    def __init__(self, node: Node) -> None:
        self._node = node
        self._sync: SyncNode | None = None
        self._listening: list[str] = []
        self._tenants: dict[str, _TenantPeers] = {}
        self._network: PeerNetwork | None = None

    # -- Service -----------------------------------------------------------------------------
    async def run(self, node: Node) -> None:
        config = node.config
        cert = await asyncio.to_thread(NodeCertificate.load_or_create, node.data_dir / TLS_DIR)
        sync = self._sync = SyncNode(cert)  # no node name: a peer must not learn our data dir
        node.upstream.target = sync.upstream_store
        sync.on_event(self._on_event)
        node.set_sync(self)
        subscription = node.bus.subscribe(["tenant.state", "doc.changed"])
        try:
            strangers = PreAuthLimits(
                max_pending=config.network.max_pending_handshakes,
                deadline=config.network.handshake_timeout,
            )
            for address in config.network.listen:
                host, port = split_address(address)
                bound_host, bound_port = await sync.listen(host, port, pre_auth=strangers)
                self._listening.append(f"{bound_host}:{bound_port}")
            wanted = config.peer_network
            if wanted.discovery.enabled or wanted.webrtc.enabled:
                if wanted.discovery.enabled and not self._listening:
                    log.warning("mDNS discovery needs [network] listen to advertise; not started")
                else:
                    self._network = PeerNetwork(sync, wanted)
                    port = split_address(self._listening[0])[1] if self._listening else 0
                    await self._network.start(port)
            for tenant_id in node.tenants.known_ids():
                if not node.tenants.slot(tenant_id).locked:
                    await self._activate(tenant_id)
            async for event in subscription:
                tenant_id = getattr(event, "tenant", "")
                if isinstance(event, DocChanged):
                    # A database created after activation joins the sync on its first change.
                    if tenant_id in self._tenants:
                        await sync.add_database(tenant_id, event.db)
                elif getattr(event, "state", "") == "unlocked":
                    await self._activate(tenant_id)
                elif getattr(event, "state", "") == "locked":
                    await self._deactivate(tenant_id)
        finally:
            subscription.close()
            node.set_sync(None)
            node.upstream.target = None
            for tenant_id in list(self._tenants):
                await self._deactivate(tenant_id)
            if self._network is not None:
                await self._network.aclose()
            await sync.aclose()

    async def reload(self, config: Config) -> None:
        """Peers and upstreams apply live: every active tenant's sessions are re-planned."""
        for tenant_id in list(self._tenants):
            await self._deactivate(tenant_id, drop_tenant=False)
            self._start_peers(tenant_id, config)

    def describe(self) -> dict[str, Any]:
        return {"listening": list(self._listening), "tenants": sorted(self._tenants)}

    # -- tenants -----------------------------------------------------------------------------
    async def _activate(self, tenant_id: str) -> None:
        if self._sync is None or tenant_id in self._tenants:
            return
        tenant = self._node.tenants.unlocked(tenant_id)
        config = self._node.config
        wanted = config.tenant(tenant_id)
        databases = list(wanted.databases) if wanted else []
        await self._sync.add_tenant(tenant, databases)
        self._tenants[tenant_id] = _TenantPeers()
        self._start_peers(tenant_id, config)
        if self._network is not None:
            await self._network.refresh()

    def _start_peers(self, tenant_id: str, config: Config) -> None:
        assert self._sync is not None
        peers = self._tenants.setdefault(tenant_id, _TenantPeers())
        for peer in config.peers:
            if peer.tenants and tenant_id not in peer.tenants:
                continue
            host, port = split_address(peer.address)
            peers.tasks.append(self._sync.add_peer(host, port, tenant_id))
        for upstream in config.upstreams:
            if upstream.tenant == tenant_id:
                host, port = split_address(upstream.address)
                peers.tasks.append(self._sync.add_peer(host, port, tenant_id, upstream=True))

    async def _deactivate(self, tenant_id: str, *, drop_tenant: bool = True) -> None:
        peers = self._tenants.get(tenant_id)
        if peers is None:
            return
        for task in peers.tasks:
            task.cancel()
        for task in peers.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        peers.tasks.clear()
        if drop_tenant:
            del self._tenants[tenant_id]
            if self._sync is not None:
                await self._sync.remove_tenant(tenant_id)
            if self._network is not None:
                await self._network.refresh()

    # -- events ------------------------------------------------------------------------------
    def _on_event(self, kind: str, data: dict[str, Any]) -> None:
        peers = self._node.peers
        if kind == "peer.connected":
            peers.connected(
                PeerInfo(
                    peer_id=peer_key(str(data.get("identity", ""))),
                    address=str(data.get("peer", "")),
                    tenants=(str(data.get("tenant", "")),),
                    transport=str(data.get("transport", "")),
                )
            )
        elif kind == "peer.disconnected":
            peers.disconnected(peer_key(str(data.get("identity", ""))), str(data.get("reason", "")))
        elif kind == "sync.progress":
            store = str(data.get("store", ""))
            self._node.bus.publish(
                SyncProgress(
                    peer_id=str(data.get("peer", "")),
                    tenant=str(data.get("tenant", "")),
                    db=store.split("/")[0],
                    received=int(data.get("transferred", 0)),
                    done=data.get("position") == data.get("bound"),
                )
            )

    # -- SyncControl -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        peers = self._sync.peers() if self._sync is not None else []
        return {
            "listening": list(self._listening),
            "tenants": sorted(self._tenants),
            "peers": [asdict(p) for p in peers],
            "network": self._network.status() if self._network is not None else None,
        }

    async def sync_now(
        self, tenant: str | None, db: str | None, peer: str | None
    ) -> dict[str, Any]:
        links: list[PeerLink] = self._sync.links() if self._sync is not None else []
        chosen = [
            link
            for link in links
            if (tenant is None or link.context.tenant_id == tenant)
            and (peer is None or peer in (link.address, peer_key(link.peer_identity)))
        ]
        for link in chosen:
            await (link.pull_database(db) if db else link.pull_all())
        return {"peers": len(chosen), "transferred": sum(lk.stats.transferred for lk in chosen)}


def sync_service(node: Node) -> SyncService:
    return SyncService(node)
