"""One authenticated peer of one tenant: serve its requests, pull what it has, follow it live.

Replication is pull-only in both directions: each side pulls from the other and verifies what
it receives (signature, content hash, trust) before storing, so no node ever has to trust a
push. Live sync is notification-driven: a peer that subscribed to a store gets ``changed`` when
it grows and pulls the delta from its cursor; nothing polls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mindood.db import MindooDB
from mindood.sync.connection import PeerConnection
from mindood.sync.context import TenantSyncContext
from mindood.sync.cursors import CursorBook, peer_key
from protocol.errors import ErrorCode, ProtocolError, RequestError
from protocol.interfaces import PeerInfo, PeerRefused
from protocol.messages import Notify
from protocol.remote_store import RemoteStore
from protocol.serve import StoreService
from protocol.store_ops import CHANGED, MAX_SIGNAL_BYTES, SIGNAL, StoreKind
from store.base import ContentAddressedStore
from store.chained import ChainedStore
from store.entry import StoreEntry
from store.replicate import ReplicationCursor, ReplicationProgress, replicate
from store.verify import VerifiedBatch

log = logging.getLogger("mindood.sync.link")

DIRECTORY = "directory"


@dataclass(slots=True)
class SyncStats:
    rounds: int = 0
    transferred: int = 0
    rejected: int = 0
    last_error: str | None = None
    synced_once: asyncio.Event = field(default_factory=asyncio.Event)


class PeerLink:
    """The sync relationship with one connected peer for one tenant."""

    def __init__(
        self,
        conn: PeerConnection,
        context: TenantSyncContext,
        cursors: CursorBook,
        databases: Callable[[], list[str]],
        adopt: Callable[[str], None],
        emit: Callable[[str, dict[str, Any]], None],
        address: str,
        peer: PeerInfo,
        *,
        signals: SignalRouter | None = None,
        is_upstream: bool = False,
        max_entry_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.is_upstream = is_upstream
        self._signals = signals
        self.max_entry_bytes = max_entry_bytes
        self.conn = conn
        self.peer = peer
        self.context = context
        self.address = address
        self.stats = SyncStats()
        self._cursors = cursors
        self._databases = databases
        self._adopt = adopt
        self._emit = emit
        self._peer = peer_key(conn.peer_identity or "")
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        #: Databases the peer follows on our side, and those we follow on the peer's side.
        self.subscriptions: set[str] = set()
        self._following: set[str] = set()
        self.service = StoreService(
            _Provider(self),
            conn,
            self._admit,
            on_subscribe=self._peer_subscribed,
            on_stored=self._peer_stored,
        )
        conn.handle_request = self._handle
        conn.on_notify = self._on_notify

    @property
    def tenant(self) -> Any:
        return self.context.tenant

    @property
    def peer_identity(self) -> str:
        return self.conn.peer_identity or ""

    # -- serving -----------------------------------------------------------------------------
    async def local_db(self, name: str) -> MindooDB:
        db: MindooDB = await self.context.tenant.open_db(name)
        return db

    async def _admit(
        self, db: str, kind: StoreKind, entries: Sequence[StoreEntry]
    ) -> VerifiedBatch:
        return await self._admission(await self.local_db(db))(entries)

    def _admission(
        self, db: MindooDB
    ) -> Callable[[Sequence[StoreEntry]], Awaitable[VerifiedBatch]]:
        """The node's size limit first, then the database's own checks (signature, trust)."""

        async def admit(entries: Sequence[StoreEntry]) -> VerifiedBatch:
            limit = self.max_entry_bytes
            fitting = [e for e in entries if len(e.encrypted_data) <= limit]
            oversized = [
                (
                    e.id,
                    f"entry of {len(e.encrypted_data)} bytes exceeds this node's limit of {limit}",
                )
                for e in entries
                if len(e.encrypted_data) > limit
            ]
            for entry_id, reason in oversized:
                log.warning(
                    "peer entry refused",
                    extra={
                        "entry_id": entry_id,
                        "reason": reason,
                        "peer": self.address,
                        "db": db.db_id,
                    },
                )
            verdict: VerifiedBatch = await db.admit_entries(fitting)
            return VerifiedBatch(verdict.accepted, (*oversized, *verdict.rejected))

        return admit

    async def _peer_stored(self, db: str, kind: StoreKind) -> None:
        """The peer pushed entries into our store: take them in (listeners then announce)."""
        local = await self.local_db(db)
        await local.sync_store_changes()
        if db == DIRECTORY:
            await self.context.tenant.refresh_directory()

    def _peer_subscribed(self, db: str, kind: StoreKind) -> None:
        self.subscriptions.add(db)

    # -- pulling -----------------------------------------------------------------------------
    async def _handle(self, operation: str, args: Sequence[Any]) -> Any:
        if operation == SIGNAL:
            return await self._relay_signal(args)
        return await self.service.handle(operation, args)

    async def _relay_signal(self, args: Sequence[Any]) -> bool:
        if self._signals is None or self.peer.provisional:
            raise RequestError(ErrorCode.REFUSED, "this node relays no signals")
        if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], bytes):
            raise RequestError(ErrorCode.BAD_ARGUMENTS, "signal takes [target identity, payload]")
        if len(args[1]) > MAX_SIGNAL_BYTES or len(args[0]) > 8192:
            raise RequestError(ErrorCode.BAD_ARGUMENTS, "signal too large")
        return await self._signals.forward_signal(
            self.context.tenant_id, self.peer_identity, args[0], args[1]
        )

    def _on_notify(self, notify: Notify) -> None:
        if notify.topic == SIGNAL and self._signals is not None and len(notify.args) == 2:
            sender, payload = notify.args
            if isinstance(sender, str) and isinstance(payload, bytes):
                self._signals.deliver_signal(self.context.tenant_id, sender, payload)
            return
        if notify.topic == CHANGED and notify.args and isinstance(notify.args[0], str):
            name = notify.args[0]
            self._adopt(name)
            self._dirty.add(name)
            self._wake.set()

    async def run(self) -> None:
        """Initial full round, then pull whatever the peer announces, until the session ends."""
        try:
            if self.peer.provisional:
                if not await self._verify_provisional_peer():
                    return
                # While unverified we served the peer nothing; tell it what it can pull now.
                for name in self._databases():
                    await self.conn.notify(CHANGED, [name, StoreKind.DOCS.value])
            remote_dbs = await self.conn.call("dbs", [])
            names = (
                {str(n) for n in remote_dbs if isinstance(n, str)}
                if isinstance(remote_dbs, list)
                else set()
            )
            for name in names:
                self._adopt(name)
            order = [DIRECTORY, *sorted(set(self._databases()) - {DIRECTORY})]
            for name in order:
                if name in names:
                    await self._pull(name)
            self.stats.synced_once.set()
            self._emit("sync.synced", {"peer": self.address, "databases": order})
            while not self.conn.closed.is_set():
                await self._wake.wait()
                self._wake.clear()
                pending, self._dirty = self._dirty, set()
                for name in sorted(pending, key=lambda n: n != DIRECTORY):
                    await self._pull(name)
        except ProtocolError as exc:
            self.stats.last_error = exc.message
            log.info("sync with peer ended", extra={"peer": self.address, "reason": exc.message})
        finally:
            self.stats.synced_once.set()

    async def pull_database(self, name: str) -> None:
        """Pull one database the peer shares now."""
        await self._pull(name)

    async def pull_all(self) -> None:
        """Pull every database the peer shares now (a manual re-sync; normally notifications
        drive pulls)."""
        for name in [DIRECTORY, *sorted(set(self._databases()) - {DIRECTORY})]:
            await self._pull(name)

    async def _follow(self, name: str) -> None:
        """Subscribe to the peer's stores of ``name`` (once) so it tells us when they grow."""
        if name in self._following:
            return
        self._following.add(name)
        for kind in (StoreKind.DOCS, StoreKind.ATTACHMENTS):
            await RemoteStore(self.conn, name, kind, self.address).subscribe()

    async def _pull(self, name: str) -> None:
        await self._follow(name)
        db = await self.local_db(name)
        pairs: list[tuple[StoreKind, ContentAddressedStore | None]] = [
            (StoreKind.DOCS, db.get_store()),
            (StoreKind.ATTACHMENTS, db.get_attachment_store()),
        ]
        changed = False
        for kind, local in pairs:
            if local is None:
                continue
            if self.is_upstream and isinstance(local, ChainedStore):
                local = local.local  # from the upstream: keep, do not forward back to it
            remote = RemoteStore(self.conn, name, kind, self.address)
            slot = f"{name}/{kind.value}"
            state = await self._cursors.get(self._peer, slot)

            def progress(p: ReplicationProgress, slot: str = slot) -> None:
                self._emit(
                    "sync.progress",
                    {
                        "peer": self.address,
                        "tenant": self.context.tenant_id,
                        "store": slot,
                        "scanned": p.scanned,
                        "transferred": p.transferred,
                        "position": p.position,
                        "bound": p.bound,
                    },
                )

            async def checkpoint(state: ReplicationCursor, slot: str = slot) -> None:
                await self._cursors.put(self._peer, slot, state)

            try:
                result = await replicate(
                    remote,
                    local,
                    state,
                    admit=self._admission(db),
                    on_progress=progress,
                    on_checkpoint=checkpoint,
                )
            finally:
                await self._cursors.save()
            await self._cursors.put(self._peer, slot, result.state)
            self.stats.transferred += result.transferred
            self.stats.rejected += len(result.rejected)
            changed = changed or result.transferred > 0
        self.stats.rounds += 1
        await self._cursors.save()
        if changed:
            await db.sync_store_changes()
            if name == DIRECTORY:
                await self.context.tenant.refresh_directory()

    # -- trust -------------------------------------------------------------------------------
    async def _verify_provisional_peer(self) -> bool:
        """Take the directory from a peer we could not verify yet, then verify it for real.

        Safe because the directory only accepts entries signed by the tenant admin.
        """
        await self._pull(DIRECTORY)
        await self.context.tenant.refresh_directory()
        await self.recheck()
        return not self.peer.provisional and not self.conn.closed.is_set()

    async def recheck(self) -> None:
        """Close the session if the directory does not (or no longer) trust the peer."""
        try:
            info = self.context.check_peer(
                self.peer_identity, self.peer.encryption_public_key, dialed=False
            )
            self.peer = info
        except PeerRefused as exc:
            log.warning(
                "closing session of a peer the directory no longer trusts",
                extra={"peer": self.address, "reason": str(exc)},
            )
            await self.conn.close(
                ErrorCode.REVOKED if exc.revoked else ErrorCode.NOT_TRUSTED, str(exc)
            )

    async def announce(self, db: str) -> None:
        """Tell the peer ``db`` grew (a peer not following it yet adopts it and pulls)."""
        if self.peer.provisional:
            return
        local = await self.local_db(db)
        head = await local.get_store().get_store_head()
        await self.conn.notify(
            CHANGED, [db, StoreKind.DOCS.value, head.epoch, head.max_receipt_order]
        )


class SignalRouter(Protocol):
    def deliver_signal(self, tenant_id: str, sender: str, payload: bytes) -> None: ...

    async def forward_signal(
        self, tenant_id: str, sender: str, target: str, payload: bytes
    ) -> bool: ...


class _Provider:
    def __init__(self, link: PeerLink) -> None:
        self._link = link

    def databases(self) -> list[str]:
        if self._link.peer.provisional:
            return []  # serve nothing to a peer we have not verified
        return sorted(set(self._link._databases()))

    async def store(self, db: str, kind: StoreKind) -> ContentAddressedStore | None:
        if self._link.peer.provisional or db not in self._link._databases():
            return None
        local = await self._link.local_db(db)
        return local.get_store() if kind is StoreKind.DOCS else local.get_attachment_store()
