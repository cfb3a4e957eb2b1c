"""The daemon's node-to-node sync: a ``SyncNode`` run as a daemon service.

It listens on ``[network] listen``, keeps a session with every configured ``[[peers]]`` and
``[[upstreams]]`` entry for each unlocked tenant (a ``[[peers]]`` address that is an http(s) URL
is a MindooDB HTTP sync server, synced both ways and followed by its change feed), adds a
tenant when it is unlocked and drops its sessions when it is locked, and reports peers,
progress, failures and refusals to status and to RPC subscribers. It takes the few parts of
the daemon it needs (``SyncHost``), not the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mindood.daemon.config import Config, is_http_address, parse_address
from mindood.daemon.events import DocChanged, EventBus, SyncProgress, TenantStateChanged
from mindood.daemon.services import PeerInfo, PeerRegistry, ServiceStartError, SyncControl
from mindood.daemon.tenants import RegistrationConflictError, TenantRegistry
from mindood.sync import SyncNode
from mindood.sync.chaining import LateUpstream
from mindood.sync.http_link import HttpLink
from mindood.sync.http_serve import HttpGateway, ServerIdentity
from mindood.sync.link import PeerLink, PeerStatus
from mindood.sync.members import node_id_hex
from mindood.sync.network import PeerNetwork
from mindood.sync.traffic import NodeEvent, Transferred
from mindood.tenant import Tenant
from mindood.tenant.directory import DEFAULT_KEY_ID
from protocol import events
from protocol.http.system import RegisterTenantRequest, RegistrationConflict, SystemAdmin
from transports.http_cors import CorsPolicy
from transports.http_server import HttpListener, listen_http, server_ssl_context
from transports.tasks import cancel_and_wait
from transports.tcp import NodeCertificate, PreAuthLimits

log = logging.getLogger("mindood.sync.service")

TLS_DIR = "node-tls"


def split_address(address: str) -> tuple[str, int]:
    """An address the configuration validated, into host and port."""
    return parse_address(address)


class SyncHost(Protocol):
    """What the sync service needs from the daemon."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def config(self) -> Config: ...

    @property
    def tenants(self) -> TenantRegistry: ...

    @property
    def bus(self) -> EventBus: ...

    @property
    def peers(self) -> PeerRegistry: ...

    @property
    def upstream(self) -> LateUpstream: ...

    def set_sync(self, control: SyncControl | None) -> None: ...


@dataclass
class _TenantPeers:
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class SyncService:
    """Implements the daemon's ``Service`` and ``SyncControl`` seams."""

    name = "sync"

    def __init__(self, host: SyncHost) -> None:
        self._host = host
        self._sync: SyncNode | None = None
        self._listening: list[str] = []
        self._http: list[HttpListener] = []
        self._http_listening: list[str] = []
        self._gateway: HttpGateway | None = None
        self._tenants: dict[str, _TenantPeers] = {}
        self._network: PeerNetwork | None = None
        self._started = asyncio.Event()

    # -- Service -----------------------------------------------------------------------------
    async def run(self) -> None:
        host = self._host
        config = host.config
        cert = await asyncio.to_thread(NodeCertificate.load_or_create, host.data_dir / TLS_DIR)
        subscription = host.bus.subscribe(["tenant.state", "doc.changed"])
        try:
            async with SyncNode(cert) as sync:
                self._sync = sync
                host.upstream.target = sync.upstream_store
                sync.on_event(self._on_event)
                host.set_sync(self)
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(sync.wait(), name="sync-node-watch")
                        if config.http.enabled:
                            gateway = self._gateway = await self._start_http(sync, config)
                            group.create_task(gateway.run(), name="http-change-events")
                        await self._start(sync, config)
                        await self._follow(sync, subscription)
                finally:
                    self._gateway = None
                    await self._stop_http()
                    await self._stop(sync)
        finally:
            subscription.close()
            host.set_sync(None)
            host.upstream.target = None
            self._sync = None

    async def _start_http(self, sync: SyncNode, config: Config) -> HttpGateway:
        """Serve every unlocked tenant over the reference's HTTP sync API (``[http]``)."""
        wanted = config.http
        identity = await asyncio.to_thread(
            ServerIdentity.load_or_create, self._host.data_dir / TLS_DIR
        )
        await self._host.tenants.registrations()  # read before the first request needs them
        gateway = HttpGateway(
            sync,
            identity,
            name=wanted.name,
            body_limit=wanted.max_body_bytes,
            registrar=_Registrar(self),
            system_admins=[SystemAdmin(u, k) for u, k in wanted.system_admins],
            system_allowed_ips=wanted.system_allowed_ips,
            rate_limits=wanted.rate_limits,
        )
        context = None
        if wanted.tls_cert is not None and wanted.tls_key is not None:
            try:
                context = server_ssl_context(wanted.tls_cert, wanted.tls_key)
            except (OSError, ValueError) as exc:
                raise ServiceStartError(f"cannot load [http] tls_cert/tls_key: {exc}") from None
        for address in wanted.listen:
            host, port = split_address(address)
            try:
                listener = await listen_http(
                    gateway.handle,
                    host,
                    port,
                    body_limit=wanted.max_body_bytes,
                    ssl_context=context,
                    gate=gateway.gate,
                    cors=CorsPolicy.of(wanted.cors_origins),
                )
            except OSError as exc:
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise ServiceStartError(
                    f"cannot serve http on {host}:{port}: {reason.lower()}"
                ) from None
            self._http.append(listener)
            assert listener.bound is not None
            bound_host, bound_port = listener.bound
            self._http_listening.append(f"{listener.scheme}://{bound_host}:{bound_port}")
            log.info(
                "serving the http sync api",
                extra={"address": self._http_listening[-1], "tls": context is not None},
            )
        return gateway

    async def _stop_http(self) -> None:
        listeners, self._http = self._http, []
        for listener in listeners:
            try:
                await listener.aclose()
            except (OSError, TimeoutError) as exc:
                log.warning("closing an http listener failed", extra={"error": str(exc)})
        self._http_listening.clear()

    async def wait_started(self) -> None:
        await self._started.wait()

    async def _start(self, sync: SyncNode, config: Config) -> None:
        strangers = PreAuthLimits(
            max_pending=config.network.max_pending_handshakes,
            deadline=config.network.handshake_timeout,
        )
        for address in config.network.listen:
            host, port = split_address(address)
            try:
                bound_host, bound_port = await sync.listen(host, port, pre_auth=strangers)
            except OSError as exc:
                shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise ServiceStartError(f"cannot listen on {shown}: {reason.lower()}") from None
            self._listening.append(f"{bound_host}:{bound_port}")
        self._started.set()
        wanted = config.peer_network
        if wanted.discovery.enabled or wanted.webrtc.enabled:
            if wanted.discovery.enabled and not self._listening:
                log.warning("mDNS discovery needs [network] listen to advertise; not started")
            else:
                self._network = PeerNetwork(sync, wanted)
                port = split_address(self._listening[0])[1] if self._listening else 0
                await self._network.start(port)
        tenants = self._host.tenants
        for tenant_id in tenants.known_ids():
            if not tenants.slot(tenant_id).locked:
                await self._activate(tenant_id)

    async def _follow(self, sync: SyncNode, subscription: Any) -> None:
        async for event in subscription:
            if isinstance(event, DocChanged):
                # A database created after activation joins the sync on its first change.
                if event.tenant in self._tenants:
                    await sync.add_database(event.tenant, event.db)
            elif isinstance(event, TenantStateChanged):
                if event.state == "unlocked":
                    await self._activate(event.tenant)
                elif event.state == "locked":
                    await self._deactivate(event.tenant)

    async def _stop(self, sync: SyncNode) -> None:
        for tenant_id in list(self._tenants):
            await self._deactivate(tenant_id)
        if self._network is not None:
            await self._network.aclose()
            self._network = None

    async def reload(self, config: Config) -> None:
        """Peers and upstreams apply live: every active tenant's sessions are re-planned."""
        for tenant_id in list(self._tenants):
            await self._deactivate(tenant_id, drop_tenant=False)
            self._start_peers(tenant_id, config)

    def describe(self) -> dict[str, Any]:
        return {
            "listening": list(self._listening),
            "http": list(self._http_listening),
            "tenants": sorted(self._tenants),
        }

    async def follow_database(self, tenant: str, db: str) -> None:
        if self._sync is not None and tenant in self._tenants:
            await self._sync.add_database(tenant, db)

    async def forget_database(self, tenant: str, db: str) -> None:
        if self._sync is not None:
            await self._sync.remove_database(tenant, db)

    # -- tenants -----------------------------------------------------------------------------
    async def _activate(self, tenant_id: str) -> None:
        if self._sync is None or tenant_id in self._tenants:
            return
        tenant = self._host.tenants.unlocked(tenant_id)
        config = self._host.config
        wanted = config.tenant(tenant_id)
        databases = list(wanted.databases) if wanted else []
        # an HTTP server cannot list its databases: an upstream's named ones are synced too
        for upstream in config.upstreams:
            if upstream.tenant == tenant_id:
                databases += [d for d in upstream.databases if d not in databases]
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
            if is_http_address(peer.address):
                peers.tasks.append(self._sync.add_http_peer(peer.address, tenant_id))
                continue
            host, port = split_address(peer.address)
            peers.tasks.append(self._sync.add_peer(host, port, tenant_id))
        for upstream in config.upstreams:
            if upstream.tenant == tenant_id and is_http_address(upstream.address):
                peers.tasks.append(
                    self._sync.add_http_peer(upstream.address, tenant_id, upstream=True)
                )
            elif upstream.tenant == tenant_id:
                host, port = split_address(upstream.address)
                peers.tasks.append(self._sync.add_peer(host, port, tenant_id, upstream=True))

    async def _deactivate(self, tenant_id: str, *, drop_tenant: bool = True) -> None:
        peers = self._tenants.get(tenant_id)
        if peers is None:
            return
        await cancel_and_wait(peers.tasks)
        peers.tasks.clear()
        if drop_tenant:
            del self._tenants[tenant_id]
            if self._sync is not None:
                await self._sync.remove_tenant(tenant_id)
            if self._network is not None:
                await self._network.refresh()

    # -- events ------------------------------------------------------------------------------
    def _on_event(self, event: NodeEvent) -> None:
        host = self._host
        match event:
            case events.PeerConnected():
                status = self._status_of(event.tenant_id, event.address, event.identity)
                host.peers.connected(
                    peer_info(status)
                    if status is not None
                    else PeerInfo(
                        node_id_hex(event.identity),
                        event.address,
                        (event.tenant_id,),
                        event.transport,
                    )
                )
            case events.PeerDisconnected():
                host.peers.disconnected(
                    node_id_hex(event.identity),
                    event.reason,
                    address=event.address,
                    tenants=(event.tenant_id,),
                )
            case Transferred(progress=p):
                host.bus.publish(
                    SyncProgress(
                        peer_id=node_id_hex(event.identity),
                        tenant=event.tenant_id,
                        db=p.db,
                        sent=p.sent,
                        received=p.received,
                        done=not p.syncing,
                        address=event.address,
                        sent_bytes=p.sent_bytes,
                        received_bytes=p.received_bytes,
                    )
                )
                self._refresh(event.tenant_id, event.address, event.identity)
            case events.RoundFinished():  # the first round's end: syncing -> up-to-date
                self._refresh(event.tenant_id, event.address)
            case events.Refused(revoked=True):
                host.tenants.set_sync_note(event.tenant_id, "revoked", event.reason)
            case _:
                pass

    def _status_of(
        self, tenant_id: str, address: str, identity: str | None = None
    ) -> PeerStatus | None:
        return self._sync.peer_status(tenant_id, address, identity) if self._sync else None

    def _refresh(self, tenant_id: str, address: str, identity: str | None = None) -> None:
        status = self._status_of(tenant_id, address, identity)
        if status is not None:
            self._host.peers.update(peer_info(status))

    # -- SyncControl -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        sync = self._sync
        unlocked = self._unlocked()
        roles = {tenant.tenant_id: self._role(tenant) for tenant in unlocked}
        gateway = self._gateway
        return {
            "listening": list(self._listening),
            "http": list(self._http_listening),
            #: Requests the HTTP API refused for a spent rate limit, per tier, since start.
            "http_refused": dict(gateway.server.limiter.refused) if gateway is not None else {},
            "tenants": sorted(self._tenants),
            "node_ids": {
                t.tenant_id: node_id_hex(t.user.private.signing_public_key) for t in unlocked
            },
            "role": summary_role(roles, upstreams=bool(self._host.config.upstreams)),
            "roles": roles,
            "upstreams": [
                {
                    "address": u.address,
                    "tenant": u.tenant,
                    "connected": sync is not None and sync.upstream_connected(u.tenant),
                }
                for u in self._host.config.upstreams
            ],
            "peers": [asdict(p) for p in sync.peers()] if sync is not None else [],
            "refused": [asdict(r) for r in sync.refusals()] if sync is not None else [],
            "network": self._network.status() if self._network is not None else None,
        }

    def _unlocked(self) -> list[Tenant]:
        registry = self._host.tenants
        slots = [registry.slot(tenant_id) for tenant_id in registry.known_ids()]
        return [slot.tenant for slot in slots if slot.tenant is not None]

    def _role(self, tenant: Tenant) -> str:
        """edge cache (it reads and writes through an upstream), relay (it holds no content
        key, only ``$publicinfos``), or member."""
        if any(u.tenant == tenant.tenant_id for u in self._host.config.upstreams):
            return "edge cache"
        if not tenant.key_bag.has(tenant.tenant_id, DEFAULT_KEY_ID):
            return "relay"
        return "member"

    async def sync_now(
        self, tenant: str | None, db: str | None, peer: str | None
    ) -> dict[str, Any]:
        links: list[PeerLink | HttpLink] = (
            [*self._sync.links(), *self._sync.http_links()] if self._sync is not None else []
        )
        chosen = [
            link
            for link in links
            if (tenant is None or link.context.tenant_id == tenant)
            and (peer is None or peer in (link.address, link.node_id))
        ]
        for link in chosen:
            await (link.pull_database(db) if db else link.pull_all())
        return {"peers": len(chosen), "transferred": sum(lk.stats.transferred for lk in chosen)}


class _Registrar:
    """``protocol.http.system.TenantRegistrar``: a registered tenant is a relay tenant of the
    registry, served at once (before the 201 goes out, so the admin's next push finds it)."""

    def __init__(self, service: SyncService) -> None:
        self._service = service

    @property
    def _tenants(self) -> TenantRegistry:
        return self._service._host.tenants

    async def register(self, request: RegisterTenantRequest, public_infos_key: bytes) -> bool:
        try:
            created = await self._tenants.register_relay(
                request.tenant_id,
                admin_username=request.admin_username,
                admin_signing_public_key=request.admin_signing_public_key,
                admin_encryption_public_key=request.admin_encryption_public_key,
                public_infos_key=public_infos_key,
            )
        except RegistrationConflictError as exc:
            raise RegistrationConflict(str(exc)) from None
        await self._service._activate(request.tenant_id)
        return created

    def registered_tenants(self) -> list[str]:
        tenants = self._tenants
        return [t for t in tenants.known_ids() if tenants.registration(t) is not None]

    def admin_username(self, tenant_id: str) -> str | None:
        registration = self._tenants.registration(tenant_id)
        return registration.admin_username if registration is not None else None

    async def remove(self, tenant_id: str) -> bool:
        if self._tenants.registration(tenant_id) is None:
            return False
        await self._service._deactivate(tenant_id)
        return await self._tenants.remove_registered(tenant_id)


def peer_info(status: PeerStatus) -> PeerInfo:
    """A session as ``peers.list`` shows it."""
    return PeerInfo(
        peer_id=status.node_id,
        address=status.address,
        tenants=(status.tenant_id,),
        transport=status.transport,
        user=status.user,
        device=status.device,
        direction=status.direction,
        state=status.state,
        databases=tuple(asdict(d) for d in status.databases),
        connected_at=status.connected_at,
    )


def summary_role(roles: dict[str, str], *, upstreams: bool) -> str | None:
    """The node's role when its tenants agree (an edge cache by configuration alone)."""
    distinct = set(roles.values())
    if len(distinct) == 1:
        return distinct.pop()
    if not distinct:
        return "edge cache" if upstreams else None
    return "mixed"


def sync_service(host: SyncHost) -> SyncService:
    return SyncService(host)


__all__ = ["SyncHost", "SyncService", "peer_info", "split_address", "summary_role", "sync_service"]
