"""One authenticated peer of one tenant: the node's side of the protocol's typed seam.

``PeerLink`` implements ``protocol.driver.SyncModel`` (and so ``protocol.serve.ServeModel``)
with the tenant's databases, cursors, admission and directory; the protocol's ``PullDriver``
pulls and follows, its ``StoreService`` answers. What is left here is node business: which
stores a peer may reach, the size and trust checks before storing, and signal relaying.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mindood.db import MindooDB
from mindood.sync.connection import PeerConnection
from mindood.sync.context import TenantSyncContext
from mindood.sync.cursors import CursorBook
from mindood.sync.members import member_name, node_id_hex
from mindood.sync.traffic import DbProgress, LinkTraffic, NodeEvent, Transferred
from protocol.driver import DIRECTORY, PullDriver, RetryPolicy, SessionPeer, SyncStats
from protocol.errors import ErrorCode, RequestError
from protocol.events import SyncEvent, SyncFailed, SyncProgress
from protocol.interfaces import PeerInfo
from protocol.messages import Notify
from protocol.notifications import SignalDelivered, StoreChanged, parse_notification
from protocol.requests import RelaySignal, parse_request
from protocol.serve import ServeLimits, StoreService
from protocol.store_ops import StoreKind
from store.base import ContentAddressedStore, StoreHead
from store.chained import ChainedStore
from store.entry import StoreEntry
from store.errors import StoreClosedError
from store.limits import MAX_ENTRY_BYTES
from store.origin import OrderRange
from store.replicate import ReplicationCursor
from store.verify import VerifiedBatch

__all__ = [
    "DIRECTORY",
    "LinkModel",
    "PeerLink",
    "PeerStatus",
    "SignalRouter",
    "SyncStats",
    "TenantSync",
]


def split_oversized(
    entries: Sequence[StoreEntry], limit: int
) -> tuple[list[StoreEntry], tuple[tuple[str, str], ...]]:
    """The entries within ``limit`` bytes, and a rejection (id, reason) for each larger one.

    The size check every admission makes before the database's own (costlier) checks.
    """
    fitting = [e for e in entries if len(e.encrypted_data) <= limit]
    oversized = tuple(
        (e.id, f"entry of {len(e.encrypted_data)} bytes exceeds the limit of {limit}")
        for e in entries
        if len(e.encrypted_data) > limit
    )
    return fitting, oversized


@dataclass(frozen=True, slots=True)
class PeerStatus:
    """One session as ``sync.status`` and ``peers.list`` show it."""

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
    deferred: int = 0
    unavailable: int = 0
    #: Databases whose last pull from this peer failed, with the error (retried with backoff).
    errors: tuple[tuple[str, str], ...] = ()
    #: The peer's node id (``members.node_id_hex`` of its signing key).
    node_id: str = ""
    #: The user the directory names for the peer's key (None: a relay cannot read names).
    user: str | None = None
    #: The device label its grant carries ("admin" for the tenant admin).
    device: str = ""
    #: unverified | syncing | failing | up-to-date (our pulls from it).
    state: str = ""
    connected_at: float = 0.0
    databases: tuple[DbProgress, ...] = ()


class SignalRouter(Protocol):
    def deliver_signal(self, tenant_id: str, sender: str, payload: bytes) -> None: ...

    async def forward_signal(
        self, tenant_id: str, sender: str, target: str, payload: bytes
    ) -> bool: ...


@dataclass(slots=True)
class TenantSync:
    """What every link of one tenant shares: its context, cursors and synced databases."""

    context: TenantSyncContext
    cursors: CursorBook
    databases: set[str]
    adopt: Callable[[str], None]
    emit: Callable[[NodeEvent], None]
    #: Entries of a database were found damaged: every link asks its peer for good copies.
    heal: Callable[[str], None]
    #: Entries from a peer were stored in a database: tell the other peers. The database's own
    #: change listeners miss entries a reader already folded into its cache (a read between
    #: the store and ``sync_store_changes``), so a relay would otherwise keep them to itself.
    grew: Callable[[str], None] = lambda _db: None

    def follows(self, name: str) -> bool:
        return name in self.databases

    async def followed_db(self, name: str) -> MindooDB:
        """The open database ``name`` while it is synced. Once it was dropped here, work still
        in flight for it (a pull, a peer's push, an announcement) must not open it: that would
        create it again, empty, and sync would fill it back."""
        if name not in self.databases:
            raise StoreClosedError(f"database {name!r} was dropped on this node")
        db: MindooDB = await self.context.tenant.open_db(name)
        return db


class LinkModel:
    """The part of ``SyncModel`` every link of a tenant shares, whatever the wire protocol:
    local stores, cursors, admission (size limit, then the database's own checks) and
    progress. A subclass sets the attributes named below and adds what its protocol needs.
    """

    context: TenantSyncContext
    address: str
    traffic: LinkTraffic
    is_upstream: bool
    max_entry_bytes: int
    _tenant: TenantSync
    #: The key this link's cursors are kept under (the peer's node id).
    _cursor_key: str

    @property
    def peer_identity(self) -> str:
        raise NotImplementedError

    @property
    def stats(self) -> SyncStats:
        raise NotImplementedError

    def _report(self, db: str) -> None:
        progress = self.traffic.progress(db, self.stats.errors)
        self._tenant.emit(Transferred(self.tenant_id, self.address, self.peer_identity, progress))

    async def local_db(self, name: str) -> MindooDB:
        return await self._tenant.followed_db(name)

    async def admit(self, db: str, entries: Sequence[StoreEntry]) -> VerifiedBatch:
        """The size limit first, then the database's own checks (signature, trust)."""
        limit = self.max_entry_bytes
        fitting, oversized = split_oversized(entries, limit)
        # Logged with every other refusal by whoever asked (replicate, or the put handler).
        verdict = await (await self.local_db(db)).admit_entries(fitting)
        size = sum(len(e.encrypted_data) for e in verdict.accepted)
        if self.traffic.received(db, len(verdict.accepted), size):
            self._report(db)
        return VerifiedBatch(verdict.accepted, (*oversized, *verdict.rejected), verdict.deferred)

    async def took_in(self, db: str) -> None:
        """Entries arrived in ``db``: apply them and tell the other peers."""
        if not self._tenant.follows(db):
            return  # dropped here while they were on their way
        await (await self.local_db(db)).sync_store_changes()
        self._tenant.grew(db)
        if db == DIRECTORY:
            await self.context.tenant.refresh_directory()

    # -- SyncModel ---------------------------------------------------------------------------
    @property
    def tenant_id(self) -> str:
        return self.context.tenant_id

    def databases(self) -> list[str]:
        return sorted(self._tenant.databases)

    def adopt(self, db: str) -> None:
        self._tenant.adopt(db)

    async def pull_target(self, db: str, kind: StoreKind) -> ContentAddressedStore | None:
        if db not in self._tenant.databases:
            return None  # dropped here meanwhile: opening it would create it again
        local = await self.local_db(db)
        store = local.get_store() if kind is StoreKind.DOCS else local.get_attachment_store()
        if self.is_upstream and isinstance(store, ChainedStore):
            return store.local  # from the upstream: keep, do not forward back to it
        return store

    async def load_cursor(self, slot: str) -> ReplicationCursor | None:
        return await self._tenant.cursors.get(self._cursor_key, slot)

    async def put_cursor(self, slot: str, state: ReplicationCursor) -> None:
        await self._tenant.cursors.put(self._cursor_key, slot, state)

    async def flush_cursors(self) -> None:
        await self._tenant.cursors.save()

    def emit(self, event: SyncEvent) -> None:
        self._tenant.emit(event)
        match event:
            case SyncProgress():
                if self.traffic.pull_moved(event.db, event.kind, done=event.done):
                    self._report(event.db)
            case SyncFailed():
                self.traffic.pull_ended(event.db)
                self._report(event.db)
            case _:
                pass


class PeerLink(LinkModel):
    """The sync relationship with one connected peer for one tenant."""

    def __init__(
        self,
        conn: PeerConnection,
        tenant: TenantSync,
        address: str,
        peer: PeerInfo,
        *,
        signals: SignalRouter | None = None,
        is_upstream: bool = False,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        retry: RetryPolicy | None = None,
        direction: str = "?",
    ) -> None:
        self.conn = conn
        self.context = tenant.context
        self.address = address
        self.direction = direction
        self.connected_at = time.time()
        self.traffic = LinkTraffic()
        self._named: tuple[PeerInfo, str | None] | None = None
        self.is_upstream = is_upstream
        self.max_entry_bytes = max_entry_bytes
        self._tenant = tenant
        self._signals = signals
        self._node_id = node_id_hex(conn.peer_identity or "")
        self._cursor_key = self._node_id
        #: Databases the peer follows on our side.
        self.subscriptions: set[str] = set()
        #: The store heads last announced per database: a database that reports changed
        #: documents without new entries (a restart folding its store into the cache) is not
        #: announced again, each announcement costing the peer a round of head requests.
        self._announced: dict[str, tuple[StoreHead, StoreHead | None]] = {}
        self.driver = PullDriver(SessionPeer(conn, address), self, peer, address, retry=retry)
        limits = conn.session.limits
        self.service = StoreService(
            self,
            conn,
            limits=limits,
            serve_limits=ServeLimits(limits.max_batch_bytes, min(max_entry_bytes, MAX_ENTRY_BYTES)),
            origins=self._origins,
        )
        conn.handle_request = self._handle
        conn.on_notify = self._on_notify

    @property
    def peer(self) -> PeerInfo:
        return self.driver.peer

    @property
    def stats(self) -> SyncStats:
        return self.driver.stats

    @property
    def peer_identity(self) -> str:
        return self.conn.peer_identity or ""

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def user(self) -> str | None:
        """The peer's user name, looked up again whenever the directory re-checked the peer."""
        peer = self.peer
        if self._named is None or self._named[0] is not peer:
            name = None if peer.provisional else member_name(self.context, self.peer_identity)
            self._named = (peer, name)
        return self._named[1]

    @property
    def state(self) -> str:
        if self.peer.provisional:
            return "unverified"
        if self.stats.errors:
            return "failing"
        if not self.stats.synced_once.is_set() or self.traffic.syncing():
            return "syncing"
        return "up-to-date"

    def status(self) -> PeerStatus:
        stats, conn = self.stats, self.conn
        return PeerStatus(
            address=self.address,
            tenant_id=self.context.tenant_id,
            identity=self.peer_identity,
            transport=conn.channel.transport_name,
            direction=self.direction,
            connected=not conn.closed.is_set(),
            synced=stats.synced_once.is_set(),
            transferred=stats.transferred,
            rejected=stats.rejected,
            bytes_sent=conn.bytes_sent,
            bytes_received=conn.bytes_received,
            deferred=stats.deferred,
            unavailable=stats.unavailable,
            errors=tuple(sorted(stats.errors.items())),
            node_id=self.node_id,
            user=self.user,
            device=self.peer.label,
            state=self.state,
            connected_at=self.connected_at,
            databases=self.traffic.snapshot(self.databases(), stats.errors),
        )

    # -- requests and notifications from the peer --------------------------------------------
    async def _handle(self, operation: str, args: Sequence[Any]) -> Any:
        request = parse_request(operation, args, self.conn.session.limits)
        if isinstance(request, RelaySignal):
            return await self._relay_signal(request)
        return await self.service.handle(request)

    async def _relay_signal(self, request: RelaySignal) -> bool:
        if self._signals is None or self.peer.provisional:
            raise RequestError(ErrorCode.REFUSED, "this node relays no signals")
        return await self._signals.forward_signal(
            self.context.tenant_id, self.peer_identity, request.target, request.payload
        )

    def _on_notify(self, notify: Notify) -> None:
        note = parse_notification(notify, self.conn.session.limits)
        if isinstance(note, SignalDelivered):
            if self._signals is not None:
                self._signals.deliver_signal(self.context.tenant_id, note.sender, note.payload)
        elif isinstance(note, StoreChanged):
            self.driver.notified(note)

    # -- ServeModel --------------------------------------------------------------------------
    def served_databases(self) -> list[str]:
        if self.peer.provisional:
            return []  # serve nothing to a peer we have not verified
        return sorted(self._tenant.databases)

    async def served_store(self, db: str, kind: StoreKind) -> ContentAddressedStore | None:
        if self.peer.provisional or db not in self._tenant.databases:
            return None
        local = await self.local_db(db)
        return local.get_store() if kind is StoreKind.DOCS else local.get_attachment_store()

    async def _origins(
        self, db: str, kind: StoreKind, scanner_epoch: str, own_epoch: str
    ) -> tuple[OrderRange, ...]:
        """What we stored from this peer, valid while both stores kept the epochs it was
        recorded under (a peer that wiped its store gets everything back). Not towards an
        upstream: what we serve it is a chained store, not the local one we track."""
        if self.is_upstream:
            return ()
        state = await self.load_cursor(f"{db}/{kind.value}")
        return () if state is None else state.origin_towards(scanner_epoch, own_epoch)

    def subscribed(self, db: str, kind: StoreKind) -> None:
        self.subscriptions.add(db)

    def damaged(self, db: str) -> None:
        self._tenant.heal(db)

    def served(self, db: str, entries: int, size: int) -> None:
        if self.traffic.sent(db, entries, size):
            self._report(db)

    def recheck(self, peer: PeerInfo) -> PeerInfo:
        return self.context.check_peer(self.peer_identity, peer.encryption_public_key, dialed=False)

    # -- driven by the node ------------------------------------------------------------------
    async def run(self) -> None:
        await self.driver.run()

    async def pull_database(self, name: str) -> None:
        await self.driver.pull(name)

    async def pull_all(self) -> None:
        await self.driver.pull_all()

    async def recheck_peer(self) -> bool:
        return await self.driver.recheck()

    async def announce(self, db: str) -> None:
        if not self._tenant.follows(db):
            return
        local = await self.local_db(db)
        docs = await local.get_store().get_store_head()
        attachments = local.get_attachment_store()
        heads = (docs, None if attachments is None else await attachments.get_store_head())
        if self._announced.get(db) == heads:
            return
        if await self.driver.announce(db, docs):
            self._announced[db] = heads
