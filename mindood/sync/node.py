"""The sync side of a node: listen, dial, keep peers connected, and fan out changes.

``SyncNode`` owns every task it starts, in one ``TaskGroup`` run by the node's supervisor task:
connections (accepted and dialed), peer maintainers, the change announcer, and what discovery
and WebRTC start through ``spawn``. A peer's failure ends that peer's session only; a task that
fails unexpectedly is logged and ends the node, which ``wait`` and ``aclose`` report. Each
authenticated channel runs one protocol session; it becomes a ``PeerLink`` that pulls from the
peer and serves it. Local changes (writes, or entries pulled from another peer) are announced
to every peer, coalesced to one announcement per database while it is dirty, which is how a
mesh converges without polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from mindood.crypto.pem import normalize_pem
from mindood.sync.connection import PeerConnection
from mindood.sync.context import TenantRegistry, TenantSyncContext
from mindood.sync.cursors import CursorBook
from mindood.sync.http_link import HttpLink, http_client, run_http_link
from mindood.sync.known_databases import (
    DROPPED_META_NAME,
    load_known_databases,
    save_known_databases,
)
from mindood.sync.link import DIRECTORY, PeerLink, PeerStatus, TenantSync
from mindood.sync.traffic import NodeEvent
from mindood.tenant import Tenant
from protocol.driver import RetryPolicy
from protocol.errors import ErrorCode, ProtocolError
from protocol.events import PeerConnected, PeerDisconnected, Refused
from protocol.messages import DEFAULT_LIMITS, Limits
from protocol.remote_store import RemoteStore
from protocol.session import Opened, Role, Session
from protocol.store_ops import SIGNAL, StoreKind
from store.base import ContentAddressedStore
from store.errors import StoreError
from store.limits import MAX_ENTRY_BYTES
from transports.channel import Channel, ChannelClosed
from transports.tcp import Backoff, NodeCertificate, PreAuthLimits, TcpListener, dial, listen

log = logging.getLogger("mindood.sync.node")

EventListener = Callable[[NodeEvent], None]
SignalListener = Callable[[str, str, bytes], None]
#: ``(tenant_id, db)``: the database grew here (a local write or entries from any peer).
ChangeListener = Callable[[str, str], None]


class SessionRefused(ConnectionRefusedError):
    """The peer ended the handshake; ``code`` says why (``REVOKED``: our key was revoked)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"peer refused the session: {message}")
        self.code = code
        self.reason = message

    @property
    def revoked(self) -> bool:
        return self.code == int(ErrorCode.REVOKED)


@dataclass(frozen=True, slots=True)
class RefusalStatus:
    """A peer refused this node's session for a tenant (``revoked``: our key was revoked)."""

    tenant_id: str
    address: str
    revoked: bool
    reason: str
    at: float


@dataclass(slots=True)
class _TenantState:
    sync: TenantSync
    watched: set[str]
    #: Dropped here: not adopted again when a peer shares them (until created again).
    dropped: set[str] = field(default_factory=set)

    @property
    def context(self) -> TenantSyncContext:
        return self.sync.context


class SyncNode:
    """Peers, sessions and live sync for the tenants this node has unlocked."""

    def __init__(
        self,
        cert: NodeCertificate,
        *,
        limits: Limits = DEFAULT_LIMITS,
        adopt_databases: bool = True,
        backoff: Backoff | None = None,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._max_entry_bytes = max_entry_bytes
        self._cert = cert
        self._limits = limits
        self._adopt_all = adopt_databases
        self._backoff = backoff or Backoff()
        self._retry = retry
        self._registry = TenantRegistry()
        self._tenants: dict[str, _TenantState] = {}
        self._links: dict[PeerConnection, PeerLink] = {}
        #: Links to HTTP sync servers, per (tenant, server URL).
        self._http_links: dict[tuple[str, str], HttpLink] = {}
        self._directions: dict[PeerConnection, str] = {}
        #: Connections to the configured upstream node, per tenant (edge-cache mode).
        self._upstream: dict[str, PeerConnection] = {}
        #: Or the configured upstream HTTP sync server's link, per tenant, while it runs.
        self._http_upstream: dict[str, HttpLink] = {}
        self._servers: list[TcpListener] = []
        self._listeners: list[EventListener] = []
        self._signal_listeners: list[SignalListener] = []
        self._change_listeners: list[ChangeListener] = []
        self._refusals: dict[tuple[str, str], RefusalStatus] = {}
        #: Databases changed locally since the announcer last ran, per tenant, and adoptions.
        self._dirty: dict[str, set[str]] = {}
        self._adoptions: dict[str, set[str]] = {}
        self._announce = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._children: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._closing = False

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the node's supervisor (idempotent; every other async method calls it)."""
        if self._supervisor is not None:
            return
        ready = asyncio.Event()
        self._supervisor = asyncio.create_task(self._supervise(ready), name="sync-node")
        async with asyncio.timeout(5):
            await ready.wait()

    async def _supervise(self, ready: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._children.add(group.create_task(self._announcer(), name="sync-announcer"))
                ready.set()
                await self._stop.wait()
                for task in list(self._children):
                    task.cancel()
        except* Exception as failures:
            log.error("the sync node stopped: one of its tasks failed", exc_info=failures)
            raise
        finally:
            self._group = None
            ready.set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a child of the node: cancelled at close, its failure not lost."""
        if self._group is None or self._closing:
            coro.close()
            raise RuntimeError("the sync node is not running")
        task = self._group.create_task(coro, name=name)
        self._children.add(task)
        task.add_done_callback(self._children.discard)
        return task

    async def __aenter__(self) -> SyncNode:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def wait(self) -> None:
        """Until the node is closed; raises the failure that stopped it, if one did."""
        if self._supervisor is not None:
            await asyncio.shield(self._supervisor)

    async def aclose(self) -> None:
        """Close every session politely, stop listening, end every task (idempotent)."""
        if self._closing:
            return
        self._closing = True
        for server in self._servers:
            server.close()
        for conn in list(self._links):
            with contextlib.suppress(ChannelClosed, OSError, TimeoutError):
                await conn.close(ErrorCode.SHUTDOWN, "node shutting down")
        self._stop.set()
        if self._supervisor is not None:
            # A failure that stopped the node was logged as it happened; ``wait`` raises it.
            with contextlib.suppress(Exception):
                await self._supervisor
        for server in self._servers:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(5):
                    await server.wait_closed()

    # -- events ------------------------------------------------------------------------------
    def on_event(self, listener: EventListener) -> Callable[[], None]:
        """Receive every event the node and its links emit (``NodeEvent``)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, event: NodeEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("sync event listener failed", extra={"event": type(event).__name__})

    # -- tenants -----------------------------------------------------------------------------
    async def add_tenant(self, tenant: Tenant, databases: list[str] | None = None) -> None:
        """Serve and sync ``tenant``; ``databases`` adds names to the persisted list."""
        await self.start()
        context = self._registry.add(tenant)
        known = await load_known_databases(tenant.store_factory, tenant.tenant_id)
        known.update(await tenant.store_factory.list_databases(tenant.tenant_id))
        tenant_id = tenant.tenant_id
        sync = TenantSync(
            context,
            CursorBook(tenant.store_factory, tenant_id),
            {DIRECTORY, *known, *(databases or [])},
            lambda name: self._want_adoption(tenant_id, name),
            self._emit,
            lambda name: self._heal(tenant_id, name),
            lambda name: self._changed(tenant_id, name),
        )
        dropped = await load_known_databases(tenant.store_factory, tenant_id, DROPPED_META_NAME)
        state = _TenantState(sync, set(), dropped)
        self._tenants[tenant_id] = state
        for name in sorted(state.sync.databases):
            await self._watch(state, name)
        await self._save_databases(state)

    def tenant_sync(self, tenant_id: str) -> TenantSync | None:
        """What the links of a served tenant share (the HTTP API serves through it too)."""
        state = self._tenants.get(tenant_id)
        return None if state is None else state.sync

    def is_dropped(self, tenant_id: str, name: str) -> bool:
        """Whether ``name`` was dropped here (not adopted again when a client names it)."""
        state = self._tenants.get(tenant_id)
        return state is not None and name in state.dropped

    def on_change(self, listener: ChangeListener) -> Callable[[], None]:
        """Hear of every database that grows here, whatever put the entries in."""
        self._change_listeners.append(listener)
        return lambda: self._change_listeners.remove(listener)

    def tenant_contexts(self) -> list[TenantSyncContext]:
        """The tenants this node serves (discovery advertises them, WebRTC checks offers)."""
        return [state.context for state in self._tenants.values()]

    async def remove_tenant(self, tenant_id: str) -> None:
        """Stop serving a tenant (it was locked): close its sessions."""
        self._registry.remove(tenant_id)
        self._tenants.pop(tenant_id, None)
        self._dirty.pop(tenant_id, None)
        self._adoptions.pop(tenant_id, None)
        for conn, link in list(self._links.items()):
            if link.context.tenant_id == tenant_id:
                await conn.close(ErrorCode.SHUTDOWN, "tenant locked")

    async def add_database(self, tenant_id: str, name: str) -> None:
        """Sync ``name`` too (created here or adopted from a peer after the tenant was added):
        peers hear of it, and the connected peers that share it are pulled from."""
        state = self._tenants.get(tenant_id)
        if state is None:
            return
        if name in state.dropped:
            state.dropped.discard(name)
            await self._save_dropped(state)
        if name not in state.watched:
            state.sync.databases.add(name)
            await self._watch(state, name)
            await self._save_databases(state)
            self._changed(tenant_id, name)
            for link in self._tenant_links(tenant_id):
                link.driver.pull_soon(name)  # a round may have skipped it while adopting

    async def remove_database(self, tenant_id: str, name: str) -> None:
        """Stop syncing ``name`` (it is being dropped here) and do not adopt it again."""
        state = self._tenants.get(tenant_id)
        if state is None:
            return
        state.sync.databases.discard(name)
        state.watched.discard(name)
        state.dropped.add(name)
        for pending in (self._dirty.get(tenant_id), self._adoptions.get(tenant_id)):
            if pending is not None:
                pending.discard(name)
        await self._save_databases(state)
        await self._save_dropped(state)

    async def _save_dropped(self, state: _TenantState) -> None:
        tenant = state.context.tenant
        await save_known_databases(
            tenant.store_factory, tenant.tenant_id, state.dropped, DROPPED_META_NAME
        )

    async def _save_databases(self, state: _TenantState) -> None:
        tenant = state.context.tenant
        await save_known_databases(tenant.store_factory, tenant.tenant_id, state.sync.databases)

    async def _watch(self, state: _TenantState, name: str) -> None:
        if name in state.watched:
            return
        db = await state.context.tenant.open_db(name)
        state.watched.add(name)
        tenant_id = state.context.tenant_id
        db.on_change(lambda _doc_ids: self._changed(tenant_id, name))

    def _want_adoption(self, tenant_id: str, name: str) -> None:
        state = self._tenants.get(tenant_id)
        if (
            self._adopt_all
            and state is not None
            and name not in state.sync.databases
            and name not in state.dropped
        ):
            self._adoptions.setdefault(tenant_id, set()).add(name)
            self._announce.set()

    def _heal(self, tenant_id: str, db: str) -> None:
        log.warning(
            "damaged entries found; asking every peer for good copies",
            extra={"tenant": tenant_id, "db": db},
        )
        for link in self._tenant_links(tenant_id):
            link.driver.heal(db)

    def _changed(self, tenant_id: str, db: str) -> None:
        """``db`` grew locally: mark it; the announcer tells peers once per dirty spell."""
        self._dirty.setdefault(tenant_id, set()).add(db)
        self._announce.set()
        for listener in list(self._change_listeners):
            try:
                listener(tenant_id, db)
            except Exception:
                log.exception("change listener failed", extra={"tenant": tenant_id, "db": db})

    async def _announcer(self) -> None:
        """The one task that adopts databases and announces changes, coalescing bursts."""
        while True:
            await self._announce.wait()
            self._announce.clear()
            adoptions, self._adoptions = self._adoptions, {}
            for tenant_id, names in adoptions.items():
                for name in sorted(names):
                    await self._adopt(tenant_id, name)
            dirty, self._dirty = self._dirty, {}
            for tenant_id, names in dirty.items():
                for name in sorted(names, key=lambda n: (n != DIRECTORY, n)):
                    await self._announce_change(tenant_id, name)

    async def _adopt(self, tenant_id: str, name: str) -> None:
        try:
            await self.add_database(tenant_id, name)
        except (StoreError, OSError) as exc:
            log.warning(
                "a database a peer shares could not be opened; not synced",
                extra={"tenant": tenant_id, "db": name, "error": str(exc)},
            )

    async def _refresh_directory(self, tenant_id: str) -> bool:
        """Read the directory's news; a store that fails costs this refresh, not the node."""
        state = self._tenants.get(tenant_id)
        if state is None:
            return False
        try:
            await state.context.tenant.refresh_directory()
        except StoreError as exc:
            log.warning(
                "the tenant directory could not be read; trust stays as it was",
                extra={"tenant": tenant_id, "error": str(exc)},
            )
            return False
        return True

    def _tenant_links(self, tenant_id: str) -> list[PeerLink | HttpLink]:
        """Every link of the tenant: native sessions and HTTP servers."""
        native = [lk for lk in self._links.values() if lk.context.tenant_id == tenant_id]
        http = [lk for (t, _), lk in self._http_links.items() if t == tenant_id]
        return [*native, *http]

    async def _announce_change(self, tenant_id: str, db: str) -> None:
        links = self._tenant_links(tenant_id)
        if db == DIRECTORY and await self._refresh_directory(tenant_id):
            for link in links:
                if await link.recheck_peer():
                    link.driver.trust_changed()
        for link in links:
            if isinstance(link, PeerLink) and link.conn.is_closed:
                continue
            try:
                await link.announce(db)
            except (ChannelClosed, OSError, ProtocolError, StoreError) as exc:
                log.info(
                    "announcing a change failed",
                    extra={"peer": link.address, "db": db, "error": str(exc)},
                )

    # -- connections -------------------------------------------------------------------------
    async def listen(
        self, host: str, port: int, *, pre_auth: PreAuthLimits | None = None
    ) -> tuple[str, int]:
        """Accept peers on ``host:port``; ``pre_auth`` bounds what strangers may cost."""
        await self.start()
        server = await listen(
            host,
            port,
            self._cert,
            self._serve_channel,
            max_frame=self._limits.max_message_bytes + 1024,
            pre_auth=pre_auth,
            spawn=self.spawn,
        )
        self._servers.append(server)
        bound = server.sockets[0].getsockname()
        log.info("listening for peers", extra={"host": bound[0], "port": bound[1]})
        return str(bound[0]), int(bound[1])

    def _server_session(self, channel: Channel) -> Session:
        return Session(
            Role.SERVER,
            binding=channel.binding,
            resolver=self._registry,
            limits=self._limits,
            now=time.monotonic(),
        )

    async def _serve_channel(self, channel: Channel) -> None:
        """An accepted channel: its session runs as the node's child; the listener waits."""
        if self._closing or self._group is None:
            return
        conn = PeerConnection(channel, self._server_session(channel))
        await self.spawn(self._run_connection(conn, "in"), name=f"sync-in:{channel.peer_address}")

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
        tenant the peer asks for. Returns once the handshake ended; raises ``SessionRefused``
        if it failed.
        """
        await self.start()
        if tenant_id is None:
            session = self._server_session(channel)
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
        self.spawn(
            self._run_connection(conn, direction), name=f"sync-{direction}:{channel.peer_address}"
        )
        await conn.opened.wait()
        if conn.close_reason is not None:
            reason = conn.close_reason
            raise SessionRefused(reason.code, reason.message)
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
        """Keep a session with ``host:port`` up, reconnecting with backoff (node must run)."""
        task: asyncio.Task[None] = self.spawn(
            self._maintain(host, port, tenant_id, upstream), name=f"sync-peer:{host}:{port}"
        )
        return task

    async def _maintain(self, host: str, port: int, tenant_id: str, upstream: bool) -> None:
        address = f"{host}:{port}"
        delays = self._backoff.delays()
        while not self._closing:
            try:
                conn = await self.connect(host, port, tenant_id, upstream=upstream)
                delays.reset()
                self._refusals.pop((tenant_id, address), None)
                await conn.closed.wait()
                reason = conn.close_reason
                if reason is not None and reason.by_peer and reason.code == int(ErrorCode.REVOKED):
                    self._refused(tenant_id, address, SessionRefused(reason.code, reason.message))
                    return
            except SessionRefused as exc:
                self._refused(tenant_id, address, exc)
                if exc.revoked:
                    return  # retrying cannot help: our key is revoked in the tenant
            except (OSError, ChannelClosed, TimeoutError) as exc:
                log.info("peer unreachable", extra={"peer": address, "reason": str(exc)})
            if self._closing:
                return
            await asyncio.sleep(delays.next())

    def add_http_peer(
        self, url: str, tenant_id: str, *, upstream: bool = False
    ) -> asyncio.Task[None]:
        """Sync ``tenant_id`` with the HTTP sync server at ``url``, both ways, following its
        change feed (node must run; ``ValueError`` for a URL that is not http(s)).

        ``upstream`` makes the server this node's upstream (edge-cache mode): chained stores
        fetch their misses from it and forward writes to it while the link runs.
        """
        tenant = self._tenants[tenant_id].context.tenant
        fetcher, client = http_client(tenant, url)
        link = HttpLink(
            self._tenants[tenant_id].sync,
            client,
            retry=self._retry,
            max_entry_bytes=self._max_entry_bytes,
            is_upstream=upstream,
        )
        delays = self._backoff.delays()
        task: asyncio.Task[None] = self.spawn(
            run_http_link(
                link,
                fetcher,
                on_start=self._http_started,
                on_end=self._http_ended,
                restart_delay=lambda _failures: delays.next(),
            ),
            name=f"sync-http:{link.address}",
        )
        return task

    def _http_started(self, link: HttpLink) -> None:
        tenant_id = link.context.tenant_id
        self._http_links[(tenant_id, link.address)] = link
        if link.is_upstream:
            self._http_upstream[tenant_id] = link
        log.info("syncing with an HTTP server", extra={"server": link.address, "tenant": tenant_id})
        self._emit(PeerConnected(tenant_id, link.address, link.peer_identity, "http"))

    def _http_ended(self, link: HttpLink, reason: str) -> None:
        tenant_id = link.context.tenant_id
        if self._http_links.get((tenant_id, link.address)) is link:
            del self._http_links[(tenant_id, link.address)]
        if self._http_upstream.get(tenant_id) is link:
            del self._http_upstream[tenant_id]
        self._emit(PeerDisconnected(tenant_id, link.address, link.peer_identity, reason))

    def http_links(self) -> list[HttpLink]:
        return list(self._http_links.values())

    def _refused(self, tenant_id: str, address: str, exc: SessionRefused) -> None:
        key = (tenant_id, address)
        first = key not in self._refusals or self._refusals[key].revoked != exc.revoked
        self._refusals[key] = RefusalStatus(
            tenant_id, address, exc.revoked, exc.reason, time.time()
        )
        if first:
            log.warning(
                "this device's key was revoked in the tenant; the peer refuses to sync"
                if exc.revoked
                else "a peer refused our session",
                extra={"tenant": tenant_id, "peer": address, "reason": exc.reason},
            )
        self._emit(Refused(tenant_id, address, exc.revoked, exc.reason))

    def refusals(self) -> list[RefusalStatus]:
        """Peers that refused this node (``revoked`` ones are no longer retried)."""
        return list(self._refusals.values())

    def revoked(self, tenant_id: str) -> bool:
        """Whether a peer said the tenant's directory revoked this device's key."""
        return any(r.revoked for r in self._refusals.values() if r.tenant_id == tenant_id)

    async def _run_connection(self, conn: PeerConnection, direction: str) -> None:
        self._directions[conn] = direction
        conn.on_open = self._opened
        try:
            await conn.run()
        finally:
            for tenant_id, upstream in list(self._upstream.items()):
                if upstream is conn:
                    del self._upstream[tenant_id]
            link = self._links.pop(conn, None)
            self._directions.pop(conn, None)
            if link is not None:
                reason = conn.close_reason.message if conn.close_reason else "connection lost"
                log.info(
                    "peer disconnected",
                    extra={
                        "peer": link.node_id,
                        "address": link.address,
                        "transport": conn.channel.transport_name,
                        "tenant": link.context.tenant_id,
                        "reason": reason,
                    },
                )
                self._emit(
                    PeerDisconnected(
                        link.context.tenant_id, link.address, link.peer_identity, reason
                    )
                )

    def _opened(self, conn: PeerConnection, event: Opened) -> Coroutine[Any, Any, None] | None:
        state = self._tenants.get(event.tenant_id)
        if state is None:
            return None
        channel = conn.channel
        link = PeerLink(
            conn,
            state.sync,
            channel.peer_address,
            event.peer,
            signals=self,
            is_upstream=self._upstream.get(event.tenant_id) is conn,
            max_entry_bytes=self._max_entry_bytes,
            retry=self._retry,
            direction=self._directions.get(conn, "?"),
        )
        self._links[conn] = link
        log.info(
            "peer connected",
            extra={
                "peer": link.node_id,
                "address": link.address,
                "transport": channel.transport_name,
                "tenant": event.tenant_id,
                "direction": link.direction,
                "user": link.user or "",
                "device": link.peer.label,
            },
        )
        self._emit(
            PeerConnected(
                event.tenant_id, link.address, event.peer.identity, channel.transport_name
            )
        )
        return self._run_link(link)

    async def _run_link(self, link: PeerLink) -> None:
        """Run a new session once its peer is checked again against the directory.

        The handshake checked the peer before the link was listed here; a revocation that
        landed in between rechecked every listed link but not this one, and would have left
        the session open until the next directory change. A provisional peer is checked
        after its bootstrap instead (``SyncDriver._bootstrap``).
        """
        if link.peer.provisional or await link.recheck_peer():
            await link.run()

    def upstream_connected(self, tenant_id: str) -> bool:
        """Whether the session with the tenant's configured upstream node is up (an HTTP
        upstream: its link runs; each request then stands alone)."""
        http = self._http_upstream.get(tenant_id)
        if http is not None:
            return not http.peer_session.is_closed
        conn = self._upstream.get(tenant_id)
        return conn is not None and not conn.closed.is_set() and conn.session.is_open

    def upstream_store(
        self, tenant_id: str, db: str, kind: StoreKind
    ) -> ContentAddressedStore | None:
        """The upstream's store ``db``/``kind``, if connected: over the live native session,
        or the HTTP server's store (sharing the link's client and token)."""
        if not self.upstream_connected(tenant_id):
            return None
        http = self._http_upstream.get(tenant_id)
        if http is not None:
            return http.client.store(db, kind)
        return RemoteStore(self._upstream[tenant_id], db, kind, "upstream")

    # -- status ------------------------------------------------------------------------------
    def peers(self) -> list[PeerStatus]:
        links: list[PeerLink | HttpLink] = [*self._links.values(), *self._http_links.values()]
        return [link.status() for link in links]

    def peer_status(
        self, tenant_id: str, address: str, identity: str | None = None
    ) -> PeerStatus | None:
        """The session at ``address`` for ``tenant_id`` (of ``identity``, if given), if it is up."""
        for link in self._tenant_links(tenant_id):
            if link.address == address and identity in (None, link.peer_identity):
                return link.status()
        return None

    def links(self) -> list[PeerLink]:
        """The native sessions (HTTP servers: ``http_links``)."""
        return list(self._links.values())
