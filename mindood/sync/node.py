"""The sync side of a node: listen, dial, keep peers connected, and fan out changes.

``SyncNode`` owns every connection task. Each accepted or dialed channel runs one protocol
session; once authenticated it becomes a ``PeerLink`` that pulls from the peer and serves it.
Local changes (writes, or entries pulled from another peer) are announced to every peer that
follows that database, which is how a mesh converges without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mindood.crypto.pem import normalize_pem
from mindood.sync.connection import PeerConnection
from mindood.sync.context import TenantRegistry, TenantSyncContext
from mindood.sync.cursors import CursorBook
from mindood.sync.link import DIRECTORY, PeerLink
from mindood.tenant import Tenant
from protocol.errors import ErrorCode, ProtocolError
from protocol.messages import DEFAULT_LIMITS, Limits
from protocol.remote_store import RemoteStore
from protocol.session import Opened, Role, Session
from protocol.store_ops import SIGNAL, StoreKind
from transports.channel import Channel, ChannelClosed
from transports.tcp import Backoff, NodeCertificate, PreAuthLimits, TcpListener, dial, listen

log = logging.getLogger("mindood.sync.node")

EventListener = Callable[[str, dict[str, Any]], None]
SignalListener = Callable[[str, str, bytes], None]
_DATABASES_META = "sync-databases"


@dataclass(frozen=True, slots=True)
class PeerStatus:
    address: str
    tenant_id: str
    identity: str
    transport: str
    direction: str
    connected: bool
    synced: bool
    transferred: int
    rejected: int
    bytes_sent: int
    bytes_received: int


@dataclass(slots=True)
class _TenantState:
    context: TenantSyncContext
    cursors: CursorBook
    databases: set[str]
    watched: set[str]


class SyncNode:
    """Peers, sessions and live sync for the tenants this node has unlocked."""

    def __init__(
        self,
        cert: NodeCertificate,
        *,
        node_name: str = "",
        limits: Limits = DEFAULT_LIMITS,
        adopt_databases: bool = True,
        backoff: Backoff | None = None,
        max_entry_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._max_entry_bytes = max_entry_bytes
        self._cert = cert
        self._node_name = node_name
        self._limits = limits
        self._adopt_all = adopt_databases
        self._backoff = backoff or Backoff()
        self._registry = TenantRegistry()
        self._tenants: dict[str, _TenantState] = {}
        self._links: dict[PeerConnection, PeerLink] = {}
        self._directions: dict[PeerConnection, str] = {}
        #: Connections to the configured upstream node, per tenant (edge-cache mode).
        self._upstream: dict[str, PeerConnection] = {}
        self._servers: list[TcpListener] = []  # issue 13: our own accept loop, not asyncio's
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listeners: list[EventListener] = []
        self._signal_listeners: list[SignalListener] = []
        self._closing = False

    # -- events ------------------------------------------------------------------------------
    def on_event(self, listener: EventListener) -> Callable[[], None]:
        """Receive ``peer.connected``, ``peer.disconnected``, ``sync.progress``, ``sync.synced``."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, data)
            except Exception:
                log.exception("sync event listener failed")

    # -- tenants -----------------------------------------------------------------------------
    async def add_tenant(self, tenant: Tenant, databases: list[str] | None = None) -> None:
        """Serve and sync ``tenant``; ``databases`` adds names to the persisted list."""
        context = self._registry.add(tenant)
        raw = await tenant.store_factory.read_meta(tenant.tenant_id, _DATABASES_META)
        known = set(json.loads(raw)) if raw else set()
        known.update(await tenant.store_factory.list_databases(tenant.tenant_id))
        state = _TenantState(
            context,
            CursorBook(tenant.store_factory, tenant.tenant_id),
            {DIRECTORY, *known, *(databases or [])},
            set(),
        )
        self._tenants[tenant.tenant_id] = state
        for name in sorted(state.databases):
            await self._watch(state, name)
        await self._save_databases(state)

    def tenant_contexts(self) -> list[TenantSyncContext]:
        """The tenants this node serves (discovery advertises them, WebRTC checks offers)."""
        return [state.context for state in self._tenants.values()]

    async def remove_tenant(self, tenant_id: str) -> None:
        """Stop serving a tenant (it was locked): close its sessions."""
        self._registry.remove(tenant_id)
        self._tenants.pop(tenant_id, None)
        for conn, link in list(self._links.items()):
            if link.context.tenant_id == tenant_id:
                await conn.close(ErrorCode.SHUTDOWN, "tenant locked")

    async def add_database(self, tenant_id: str, name: str) -> None:
        """Sync ``name`` too (a database created after the tenant was added); peers hear of it."""
        state = self._tenants.get(tenant_id)
        if state is None:
            return
        if name not in state.watched:
            state.databases.add(name)
            await self._watch(state, name)
            await self._save_databases(state)
            self._spawn(self._local_change(tenant_id, name))

    async def _save_databases(self, state: _TenantState) -> None:
        tenant = state.context.tenant
        data = json.dumps(sorted(state.databases)).encode()
        await tenant.store_factory.write_meta(tenant.tenant_id, _DATABASES_META, data)

    async def _watch(self, state: _TenantState, name: str) -> None:
        if name in state.watched:
            return
        state.watched.add(name)
        db = await state.context.tenant.open_db(name)
        tenant_id = state.context.tenant_id

        def changed(_doc_ids: set[str]) -> None:
            self._spawn(self._local_change(tenant_id, name))

        db.on_change(changed)

    def _adopter(self, state: _TenantState) -> Callable[[str], None]:
        def adopt(name: str) -> None:
            if self._adopt_all and name not in state.databases:
                state.databases.add(name)
                self._spawn(self.add_database(state.context.tenant_id, name))

        return adopt

    async def _local_change(self, tenant_id: str, db: str) -> None:
        if db == DIRECTORY:
            state = self._tenants.get(tenant_id)
            if state is not None:
                await state.context.tenant.refresh_directory()
            for link in [lk for lk in self._links.values() if lk.context.tenant_id == tenant_id]:
                await link.recheck()
        for link in list(self._links.values()):
            if link.context.tenant_id == tenant_id and not link.conn.closed.is_set():
                with contextlib.suppress(ChannelClosed, OSError):
                    await link.announce(db)

    # -- connections -------------------------------------------------------------------------
    async def listen(
        self, host: str, port: int, *, pre_auth: PreAuthLimits | None = None
    ) -> tuple[str, int]:
        server = await listen(
            host,
            port,
            self._cert,
            self._serve_channel,
            max_frame=self._limits.max_message_bytes + 1024,
            pre_auth=pre_auth,  # issue 13: what a stranger may cost (transports.tcp)
        )
        self._servers.append(server)
        bound = server.sockets[0].getsockname()
        log.info("listening for peers", extra={"host": bound[0], "port": bound[1]})
        return str(bound[0]), int(bound[1])

    async def _serve_channel(self, channel: Channel) -> None:
        session = Session(
            Role.SERVER,
            binding=channel.binding,
            resolver=self._registry,
            limits=self._limits,
            now=time.monotonic(),
        )
        await self._run_connection(channel, session, "in")

    async def connect(
        self,
        host: str,
        port: int,
        tenant_id: str,
        *,
        upstream: bool = False,
        connect_timeout: float = 10.0,
    ) -> PeerConnection:
        """Dial once and authenticate; raises if the peer refuses or is unreachable.

        ``upstream`` marks the peer as this node's upstream: chained stores read and write
        through it (edge-cache mode).
        """
        channel = await dial(
            host,
            port,
            connect_timeout=connect_timeout,
            max_frame=self._limits.max_message_bytes + 1024,
        )
        return await self.attach(channel, tenant_id, upstream=upstream)

    async def attach(
        self, channel: Channel, tenant_id: str | None = None, *, upstream: bool = False
    ) -> PeerConnection:
        """Run a session over any transport's channel (TCP, a WebRTC data channel, ...).

        With ``tenant_id`` we are the client (we chose the peer); without it we serve whatever
        tenant the peer asks for. Returns once the handshake ended; raises if it failed.
        """
        if tenant_id is None:
            session = Session(
                Role.SERVER,
                binding=channel.binding,
                resolver=self._registry,
                limits=self._limits,
                now=time.monotonic(),
            )
        else:
            session = Session(
                Role.CLIENT,
                binding=channel.binding,
                context=self._tenants[tenant_id].context,
                limits=self._limits,
                now=time.monotonic(),
            )
        conn = PeerConnection(channel, session)
        if upstream and tenant_id is not None:
            self._upstream[tenant_id] = conn
        direction = "in" if tenant_id is None else "out"
        self._spawn(self._run_connection(channel, session, direction, conn))
        await conn.opened.wait()
        if conn.close_reason is not None:
            reason = conn.close_reason
            raise ConnectionRefusedError(f"peer refused the session: {reason.message}")
        return conn

    # -- signaling (a shared peer as rendezvous, e.g. for WebRTC offers and answers) ---------
    def on_signal(self, listener: SignalListener) -> Callable[[], None]:
        """Receive ``(tenant_id, from_identity, payload)`` sent to this node via any peer."""
        self._signal_listeners.append(listener)
        return lambda: self._signal_listeners.remove(listener)

    def deliver_signal(self, tenant_id: str, sender: str, payload: bytes) -> None:
        for listener in list(self._signal_listeners):
            try:
                listener(tenant_id, sender, payload)
            except Exception:
                log.exception("signal listener failed")

    async def forward_signal(
        self, tenant_id: str, sender: str, target: str, payload: bytes
    ) -> bool:
        """Pass a signal from ``sender`` to the connected peer ``target`` (we are rendezvous)."""
        state = self._tenants.get(tenant_id)
        if state is not None and normalize_pem(target) == normalize_pem(state.context.identity):
            self.deliver_signal(tenant_id, sender, payload)
            return True
        for link in self._links.values():
            if link.context.tenant_id == tenant_id and normalize_pem(
                link.peer_identity
            ) == normalize_pem(target):
                await link.conn.notify(SIGNAL, [sender, payload])
                return True
        return False

    async def send_signal(self, tenant_id: str, target: str, payload: bytes) -> bool:
        """Send ``payload`` to peer ``target``: directly if connected, else through any
        connected peer of the tenant that is connected to it. True once some peer took it."""
        links = [lk for lk in self._links.values() if lk.context.tenant_id == tenant_id]
        direct = [lk for lk in links if normalize_pem(lk.peer_identity) == normalize_pem(target)]
        for link in direct + [lk for lk in links if lk not in direct]:
            try:
                if await link.conn.call(SIGNAL, [target, payload]):
                    return True
            except ProtocolError:
                continue
        return False

    def add_peer(
        self, host: str, port: int, tenant_id: str, *, upstream: bool = False
    ) -> asyncio.Task[None]:
        """Keep a session with ``host:port`` up, reconnecting with backoff."""
        return self._spawn(self._maintain(host, port, tenant_id, upstream))

    async def _maintain(self, host: str, port: int, tenant_id: str, upstream: bool) -> None:
        delays = self._backoff.delays()
        while not self._closing:
            try:
                conn = await self.connect(host, port, tenant_id, upstream=upstream)
                delays.reset()
                await conn.closed.wait()
                reason = conn.close_reason
                if reason is not None and reason.code in (
                    int(ErrorCode.REVOKED),
                    int(ErrorCode.NOT_TRUSTED),
                    int(ErrorCode.REFUSED),  # issue 13: the one refusal for strangers
                ):
                    log.warning(
                        "peer refused us; not retrying soon",
                        extra={"peer": f"{host}:{port}", "reason": reason.message},
                    )
            except (OSError, ChannelClosed, ConnectionRefusedError, TimeoutError) as exc:
                log.info("peer unreachable", extra={"peer": f"{host}:{port}", "reason": str(exc)})
            if self._closing:
                return
            await asyncio.sleep(delays.next())

    async def _run_connection(
        self, channel: Channel, session: Session, direction: str, conn: PeerConnection | None = None
    ) -> None:
        conn = conn or PeerConnection(channel, session)
        self._directions[conn] = direction
        conn.on_open = lambda c, event: self._opened(c, event, channel)
        try:
            await conn.run()
        finally:
            for tenant_id, upstream in list(self._upstream.items()):
                if upstream is conn:
                    del self._upstream[tenant_id]
            link = self._links.pop(conn, None)
            self._directions.pop(conn, None)
            if link is not None:
                self._emit(
                    "peer.disconnected",
                    {
                        "peer": link.address,
                        "tenant": link.context.tenant_id,
                        "identity": link.peer_identity,
                        "reason": conn.close_reason.message if conn.close_reason else "",
                    },
                )

    def _opened(self, conn: PeerConnection, event: Opened, channel: Channel) -> Any:
        state = self._tenants.get(event.tenant_id)
        if state is None:
            return None
        link = PeerLink(
            conn,
            state.context,
            state.cursors,
            lambda: sorted(state.databases),
            self._adopter(state),
            self._emit,
            channel.peer_address,
            event.peer,
            signals=self,
            is_upstream=self._upstream.get(event.tenant_id) is conn,
            max_entry_bytes=self._max_entry_bytes,
        )
        self._links[conn] = link
        self._emit(
            "peer.connected",
            {
                "peer": link.address,
                "tenant": event.tenant_id,
                "identity": event.peer.identity,
                "transport": channel.transport_name,
            },
        )
        return link.run()

    def upstream_store(self, tenant_id: str, db: str, kind: StoreKind) -> RemoteStore | None:
        """The upstream node's store ``db``/``kind`` over the live session, if connected."""
        conn = self._upstream.get(tenant_id)
        if conn is None or conn.closed.is_set() or not conn.session.is_open:
            return None
        return RemoteStore(conn, db, kind, "upstream")

    # -- status ------------------------------------------------------------------------------
    def peers(self) -> list[PeerStatus]:
        return [
            PeerStatus(
                address=link.address,
                tenant_id=link.context.tenant_id,
                identity=link.peer_identity,
                transport=link.conn.channel.transport_name,
                direction=self._directions.get(conn, "?"),
                connected=not conn.closed.is_set(),
                synced=link.stats.synced_once.is_set(),
                transferred=link.stats.transferred,
                rejected=link.stats.rejected,
                bytes_sent=conn.bytes_sent,
                bytes_received=conn.bytes_received,
            )
            for conn, link in self._links.items()
        ]

    def links(self) -> list[PeerLink]:
        return list(self._links.values())

    # -- lifecycle ---------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        """Close every session politely, stop listening, cancel every task (idempotent)."""
        if self._closing:
            return
        self._closing = True
        for server in self._servers:
            server.close()
        for conn in list(self._links):
            with contextlib.suppress(Exception):
                await conn.close(ErrorCode.SHUTDOWN, "node shutting down")
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                async with asyncio.timeout(5):
                    await task
        for server in self._servers:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await server.wait_closed()
