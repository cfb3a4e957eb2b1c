"""The pull/follow driver: what a node does with one authenticated peer of one tenant.

Replication is pull-only in both directions: each side pulls from the other and checks what it
receives (signature, content hash, size, trust) before storing, so no node has to trust a push.
The driver runs one full round (the directory first), follows every shared store, then pulls
whatever the peer announces; nothing polls. A database whose pull fails is retried with backoff
while the others go on; entries the node could not take are retried when that can help: ids
its store quarantined (a good copy heals them) and ids by authors it did not trust yet (asked
for again once trust changed).

The node implements ``SyncModel`` (its stores, cursors, admission and trust); the driver holds
no key and imports nothing of the node. The peer is reached through ``SyncPeer``: a native
session (``SessionPeer``) or an HTTP sync server (``protocol.http.remote.HttpPeer``). A peer that
never pulls from us (an HTTP server) says so with ``pushes``, and the driver then also pushes
our entries to it after each pull, on a cursor of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol.errors import ErrorCode, PeerClosedError, RequestError
from protocol.events import RoundFinished, SyncEvent, SyncFailed, SyncProgress
from protocol.interfaces import PeerInfo, PeerRefused
from protocol.notifications import StoreChanged
from protocol.remote_store import RemoteStore, Requester, ask
from protocol.requests import ListDatabases
from protocol.serve import ServeModel
from protocol.store_ops import StoreKind
from store.base import ContentAddressedStore, StoreHead
from store.entry import StoreEntry
from store.errors import StoreError
from store.replicate import ReplicationCursor, ReplicationProgress, replicate
from store.verify import VerifiedBatch

log = logging.getLogger("mindood.protocol.driver")

#: The tenant directory: pulled first, since it decides whom every other entry is trusted from.
DIRECTORY = "directory"
KINDS = (StoreKind.DOCS, StoreKind.ATTACHMENTS)


class PeerSession(Requester, Protocol):
    """The live session the driver talks through."""

    async def notify(self, topic: str, args: list[Any]) -> None: ...

    async def close(self, code: ErrorCode, message: str) -> None: ...

    @property
    def is_closed(self) -> bool: ...


class SyncPeer(Protocol):
    """The peer as the driver reaches it: what it shares, its stores, its change feed."""

    @property
    def is_closed(self) -> bool: ...

    @property
    def pushes(self) -> bool:
        """True when the peer never pulls from us: the driver pushes our entries to it."""
        ...

    async def list_databases(self) -> set[str] | None:
        """The databases the peer shares (``None``: it cannot say; assume ours)."""
        ...

    def store(self, db: str, kind: StoreKind) -> ContentAddressedStore: ...

    async def follow(self, db: str) -> None:
        """Ask the peer to tell us when ``db`` grows (once per database)."""
        ...

    async def announce(self, db: str, head: StoreHead | None) -> None:
        """Tell the peer ``db`` grew here."""
        ...

    async def close(self, code: ErrorCode, message: str) -> None: ...


class SessionPeer:
    """A native protocol session as a ``SyncPeer``: it pulls from us itself."""

    pushes = False

    def __init__(self, session: PeerSession, address: str) -> None:
        self._session = session
        self._address = address

    @property
    def is_closed(self) -> bool:
        return self._session.is_closed

    async def list_databases(self) -> set[str] | None:
        remote = await ask(self._session, ListDatabases())
        return {str(n) for n in remote if isinstance(n, str)} if isinstance(remote, list) else set()

    def store(self, db: str, kind: StoreKind) -> RemoteStore:
        return RemoteStore(self._session, db, kind, self._address)

    async def follow(self, db: str) -> None:
        for kind in KINDS:
            await self.store(db, kind).subscribe()

    async def announce(self, db: str, head: StoreHead | None) -> None:
        note = (
            StoreChanged(db)
            if head is None
            else StoreChanged(db, StoreKind.DOCS, head.epoch, head.max_receipt_order)
        )
        await self._session.notify(StoreChanged.TOPIC, note.to_args())

    async def close(self, code: ErrorCode, message: str) -> None:
        await self._session.close(code, message)


async def _as_own(entries: Sequence[StoreEntry]) -> VerifiedBatch:
    """Admission for a push: our own stored entries, checked when they came in."""
    return VerifiedBatch(tuple(entries), ())


class SyncModel(ServeModel, Protocol):
    """One tenant as the driver sees it, for one peer (the node implements it)."""

    @property
    def tenant_id(self) -> str: ...

    def databases(self) -> list[str]:
        """The databases this node syncs for the tenant."""
        ...

    def adopt(self, db: str) -> None:
        """The peer shares ``db``: sync it too, if the node adopts what peers share."""
        ...

    async def pull_target(self, db: str, kind: StoreKind) -> ContentAddressedStore | None:
        """Where entries pulled from this peer go (``None``: this kind is not kept)."""
        ...

    async def load_cursor(self, slot: str) -> ReplicationCursor | None: ...

    async def put_cursor(self, slot: str, state: ReplicationCursor) -> None: ...

    async def flush_cursors(self) -> None:
        """Persist the cursors put so far (after each store's run, even a failed one)."""
        ...

    def recheck(self, peer: PeerInfo) -> PeerInfo:
        """The peer as the directory sees it now; raise ``PeerRefused`` if it is not trusted."""
        ...

    def emit(self, event: SyncEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delays before a failed database is pulled again: doubling, capped."""

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        return float(min(self.maximum, self.initial * self.factor ** max(0, failures - 1)))


@dataclass(slots=True)
class SyncStats:
    rounds: int = 0
    transferred: int = 0
    #: Entries the peer took from our pushes (only to peers that never pull from us).
    pushed: int = 0
    rejected: int = 0
    #: Entries put off per store (author not granted yet), as the cursors hold them now.
    deferred_by_store: dict[str, int] = field(default_factory=dict)
    unavailable: int = 0
    #: The last failure per database still waiting for its retry.
    errors: dict[str, str] = field(default_factory=dict)
    synced_once: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def deferred(self) -> int:
        return sum(self.deferred_by_store.values())


@dataclass(slots=True)
class _Retry:
    failures: int
    due: float


class PullDriver:
    """Pulls from one peer and follows it, until the session ends."""

    def __init__(
        self,
        session: SyncPeer,
        model: SyncModel,
        peer: PeerInfo,
        address: str,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._session = session
        self._model = model
        self.peer = peer
        self.address = address
        self.stats = SyncStats()
        self._retry_policy = retry or RetryPolicy()
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._retries: dict[str, _Retry] = {}
        self._following: set[str] = set()
        self._shared: set[str] = set()
        #: Slots whose deferred ids were asked for since trust last changed.
        self._trust_fresh_slots: set[str] = set()

    # -- news from the peer and the node -----------------------------------------------------
    def notified(self, note: StoreChanged) -> None:
        self._model.adopt(note.db)
        self._shared.add(note.db)
        self._dirty.add(note.db)
        self._wake.set()

    def pull_soon(self, name: str) -> None:
        """Pull ``name`` in the next turn if this peer shares it (the node just began syncing
        it, or needs good copies of damaged entries)."""
        if name in self._shared:
            self._dirty.add(name)
            self._wake.set()

    def heal(self, name: str) -> None:
        """``name`` has quarantined entries: pull it, which asks this peer for good copies."""
        self.pull_soon(name)

    def trust_changed(self) -> None:
        """The directory changed: deferred entries may be admissible now; pull everything."""
        self._trust_fresh_slots.clear()
        self._dirty.update(self._shared)
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Bootstrap if provisional, one full round, then follow, until the session ends."""
        try:
            if self.peer.provisional and not await self._bootstrap():
                return
            await self._round(initial=True)
            while not self._session.is_closed:
                await self._wait()
                due = {db for db, r in self._retries.items() if r.due <= time.monotonic()}
                pending, self._dirty = self._dirty | due, set()
                for name in sorted(pending, key=lambda n: (n != DIRECTORY, n)):
                    await self._pull(name)
        except PeerClosedError as exc:
            log.info("sync with peer ended", extra={"peer": self.address, "reason": exc.message})
        finally:
            self.stats.synced_once.set()

    async def _wait(self) -> None:
        if self._dirty:
            return
        timeout = None
        if self._retries:
            timeout = max(0.0, min(r.due for r in self._retries.values()) - time.monotonic())
        try:
            async with asyncio.timeout(timeout):
                await self._wake.wait()
        except TimeoutError:
            return
        finally:
            self._wake.clear()

    async def _round(self, *, initial: bool) -> None:
        listed = await self._session.list_databases()
        names = set(self._model.databases()) if listed is None else listed
        self._shared |= names
        for name in names:
            self._model.adopt(name)
        order = [DIRECTORY, *sorted(set(self._model.databases()) - {DIRECTORY})]
        for name in order:
            if name in names:
                await self._pull(name)
        self.stats.synced_once.set()
        self._model.emit(
            RoundFinished(self._model.tenant_id, self.address, tuple(order), initial=initial)
        )

    async def pull(self, name: str) -> None:
        """Pull one database the peer shares, now."""
        await self._pull(name)

    async def pull_all(self) -> None:
        """Pull every shared database now (a manual re-sync; notifications drive the rest)."""
        await self._round(initial=False)

    # -- one database ------------------------------------------------------------------------
    async def _pull(self, name: str) -> None:
        try:
            await self._pull_once(name)
        except (RequestError, StoreError) as exc:
            self._failed(name, exc)
        else:
            if self._retries.pop(name, None) is not None:
                log.info("sync recovered", extra={"peer": self.address, "db": name})
            self.stats.errors.pop(name, None)

    def _failed(self, name: str, exc: Exception) -> None:
        message = getattr(exc, "message", None) or str(exc)
        previous = self._retries.get(name)
        failures = (previous.failures if previous else 0) + 1
        delay = self._retry_policy.delay(failures)
        self._retries[name] = _Retry(failures, time.monotonic() + delay)
        self.stats.errors[name] = message
        log.warning(
            "pulling a database from a peer failed; retrying",
            extra={
                "peer": self.address,
                "db": name,
                "error": message,
                "failures": failures,
                "retry_in": round(delay, 2),
            },
        )
        self._model.emit(SyncFailed(self._model.tenant_id, self.address, name, message, delay))

    async def _follow(self, name: str) -> None:
        """Subscribe to the peer's stores of ``name`` (once) so it tells us when they grow."""
        if name in self._following:
            return
        await self._session.follow(name)
        self._following.add(name)

    async def _pull_once(self, name: str) -> None:
        await self._follow(name)
        changed = False
        for kind in KINDS:
            target = await self._model.pull_target(name, kind)
            if target is not None:
                changed = await self._replicate(name, kind, target) or changed
                if self._session.pushes:
                    await self._push(name, kind, target)
        self.stats.rounds += 1
        log.debug("pulled", extra={"peer": self.address, "db": name, "changed": changed})
        if changed:
            await self._model.took_in(name)

    async def _replicate(self, name: str, kind: StoreKind, target: ContentAddressedStore) -> bool:
        model = self._model
        slot = f"{name}/{kind.value}"
        remote = self._session.store(name, kind)
        state = await model.load_cursor(slot)
        retry: list[str] = list(await target.quarantined_ids())
        if state is not None and state.deferred and slot not in self._trust_fresh_slots:
            retry.extend(state.deferred)
        self._trust_fresh_slots.add(slot)

        def progress(p: ReplicationProgress) -> None:
            model.emit(
                SyncProgress(
                    model.tenant_id,
                    self.address,
                    name,
                    kind.value,
                    p.scanned,
                    p.transferred,
                    p.position,
                    p.bound,
                )
            )

        async def checkpoint(cursor: ReplicationCursor) -> None:
            await model.put_cursor(slot, cursor)

        async def admit(entries: Sequence[Any]) -> Any:
            return await model.admit(name, entries)

        try:
            result = await replicate(
                remote,
                target,
                state,
                admit=admit,
                on_progress=progress,
                on_checkpoint=checkpoint,
                retry=retry,
                track_origin=True,
            )
        finally:
            await model.flush_cursors()
        await model.put_cursor(slot, result.state)
        await model.flush_cursors()
        newly_deferred = len(result.state.deferred) - len(state.deferred if state else ())
        self.stats.deferred_by_store[slot] = len(result.state.deferred)
        self.stats.transferred += result.transferred
        self.stats.rejected += len(result.rejected)
        self.stats.unavailable += len(result.unavailable)
        if newly_deferred > 0:
            log.info(
                "entries by authors the directory does not grant were not stored",
                extra={"peer": self.address, "store": slot, "count": newly_deferred},
            )
        return result.transferred > 0

    async def _push(self, name: str, kind: StoreKind, local: ContentAddressedStore) -> None:
        """Copy what the peer lacks from ``local`` to it (a peer that never pulls from us);
        the peer checks what it receives, and refusals are counted and logged."""
        model = self._model
        slot = f"{name}/{kind.value}/push"
        state = await model.load_cursor(slot)
        # What we pulled from the peer is not pushed back, nor even listed.
        pulled = await model.load_cursor(f"{name}/{kind.value}")

        async def checkpoint(cursor: ReplicationCursor) -> None:
            await model.put_cursor(slot, cursor)

        try:
            result = await replicate(
                local,
                self._session.store(name, kind),
                state,
                admit=_as_own,
                use_target_bloom=True,
                on_checkpoint=checkpoint,
                reverse=pulled,
            )
        finally:
            await model.flush_cursors()
        await model.put_cursor(slot, result.state)
        await model.flush_cursors()
        self.stats.pushed += result.transferred
        if result.transferred:
            model.served(name, result.transferred, result.transferred_bytes)
        self.stats.rejected += len(result.rejected)
        if result.rejected:
            log.warning(
                "the peer refused entries we pushed",
                extra={
                    "peer": self.address,
                    "store": slot,
                    "count": len(result.rejected),
                    "reason": result.rejected[0][1][:200],
                },
            )

    # -- trust -------------------------------------------------------------------------------
    async def _bootstrap(self) -> bool:
        """Take the directory from a peer we could not verify yet, then verify it for real.

        Safe because the directory admits only entries signed by the tenant administrator.
        """
        self._shared.add(DIRECTORY)
        await self._pull(DIRECTORY)
        if not await self.recheck():
            return False
        # While unverified we served the peer nothing; tell it what it can pull now.
        for name in self._model.databases():
            await self._session.announce(name, None)
        return not self._session.is_closed

    async def recheck(self) -> bool:
        """Close the session if the directory does not (or no longer) trust the peer."""
        try:
            self.peer = self._model.recheck(self.peer)
        except PeerRefused as exc:
            log.warning(
                "closing the session of a peer the directory does not trust",
                extra={"peer": self.address, "reason": str(exc)},
            )
            await self._session.close(
                ErrorCode.REVOKED if exc.revoked else ErrorCode.NOT_TRUSTED, str(exc)
            )
            return False
        return True

    async def announce(self, db: str, head: StoreHead) -> bool:
        """Tell the peer ``db`` grew (a peer not following it yet adopts it and pulls); False
        when it was not told (not verified yet, or gone)."""
        if self.peer.provisional or self._session.is_closed:
            return False
        if self._session.pushes:
            self._shared.add(db)
            self.pull_soon(db)  # the peer never pulls: push to it now (and pull, cheaply)
            return True
        await self._session.announce(db, head)
        return True
