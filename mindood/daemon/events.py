"""The daemon's event bus: what happened (documents changed, peers came and went, sync moved on),
published by whoever knows and read by whoever subscribed (RPC ``subscribe``, future services).

Publishing is synchronous and never blocks: every subscription has a bounded buffer, and an event
that does not fit is counted instead of queued. The subscriber then receives a :class:`Lagged`
marker, in order, saying how many events it missed, so a slow client can resynchronise (e.g. with
``doc.changes`` since its last cursor) rather than slow down the daemon or grow its memory.

The sync service publishes :class:`PeerConnected`, :class:`PeerDisconnected` and
:class:`SyncProgress`; the tenant registry publishes :class:`DocChanged` (for every database of
an unlocked tenant, whoever opened it) and :class:`TenantStateChanged`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

log = logging.getLogger("mindood.events")


@dataclass(frozen=True, slots=True)
class DocChanged:
    """Documents of one database changed (written here, or taken in from a peer)."""

    topic: ClassVar[str] = "doc.changed"
    tenant: str
    db: str
    doc_ids: tuple[str, ...]

    def to_wire(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "db": self.db, "doc_ids": list(self.doc_ids)}


@dataclass(frozen=True, slots=True)
class TenantStateChanged:
    """A tenant was created, unlocked or locked on this node."""

    topic: ClassVar[str] = "tenant.state"
    tenant: str
    state: str  # "unlocked" | "locked"

    def to_wire(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "state": self.state}


@dataclass(frozen=True, slots=True)
class PeerConnected:
    """A sync session with a peer was established and authenticated.

    ``peer_id`` is the peer's node id (every event names a peer so); ``address`` where it is.
    """

    topic: ClassVar[str] = "peer.connected"
    peer_id: str
    address: str
    tenants: tuple[str, ...] = ()
    transport: str = ""
    user: str | None = None
    device: str = ""

    def to_wire(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "address": self.address,
            "tenants": list(self.tenants),
            "transport": self.transport,
            "user": self.user,
            "device": self.device,
        }


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    """A peer's session ended (``reason`` is a short human-readable cause)."""

    topic: ClassVar[str] = "peer.disconnected"
    peer_id: str
    reason: str = ""
    address: str = ""
    tenants: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "address": self.address,
            "tenants": list(self.tenants),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """Running totals of one database with one peer since the session began.

    ``sent``: entries this node served to the peer; ``received``: entries the peer delivered
    that passed admission; ``*_bytes`` their payload sizes. ``done``: no pull of the database
    from the peer is under way.
    """

    topic: ClassVar[str] = "sync.progress"
    peer_id: str
    tenant: str
    db: str
    sent: int = 0
    received: int = 0
    done: bool = False
    address: str = ""
    sent_bytes: int = 0
    received_bytes: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "address": self.address,
            "tenant": self.tenant,
            "db": self.db,
            "sent": self.sent,
            "sent_bytes": self.sent_bytes,
            "received": self.received,
            "received_bytes": self.received_bytes,
            "done": self.done,
        }


@dataclass(frozen=True, slots=True)
class Lagged:
    """Not an event: ``dropped`` events were lost because this subscriber fell behind."""

    topic: ClassVar[str] = "lagged"
    dropped: int

    def to_wire(self) -> dict[str, Any]:
        return {"dropped": self.dropped}


Event = DocChanged | TenantStateChanged | PeerConnected | PeerDisconnected | SyncProgress
EVENT_TYPES: tuple[type[Event], ...] = (
    DocChanged,
    TenantStateChanged,
    PeerConnected,
    PeerDisconnected,
    SyncProgress,
)
TOPICS: frozenset[str] = frozenset(cls.topic for cls in EVENT_TYPES)

#: Decides whether a subscription wants an event (topic filtering happens before it).
EventFilter = Callable[[Event], bool]


class SubscriptionClosedError(Exception):
    """The subscription was closed (by its owner or because the bus shut down)."""


class Subscription:
    """A bounded, ordered inbox of events; read it with ``await get()`` or ``async for``."""

    _ids = itertools.count(1)

    def __init__(
        self,
        bus: EventBus,
        topics: frozenset[str],
        maxsize: int,
        accept: EventFilter | None = None,
    ) -> None:
        self.id = next(Subscription._ids)
        self.topics = topics
        self._bus = bus
        self._accept = accept
        self._maxsize = max(2, maxsize)
        self._items: deque[Event | Lagged] = deque()
        self._dropped = 0
        self._wakeup = asyncio.Event()
        self._closed = False
        self.delivered = 0
        self.total_dropped = 0

    def wants(self, event: Event) -> bool:
        return event.topic in self.topics and (self._accept is None or self._accept(event))

    def offer(self, event: Event) -> None:
        """Queue ``event`` or count it as dropped; never blocks, never raises."""
        if self._closed:
            return
        needed = 2 if self._dropped else 1
        if len(self._items) + needed > self._maxsize:
            self._dropped += 1
            self.total_dropped += 1
            return
        if self._dropped:
            self._items.append(Lagged(self._dropped))
            self._dropped = 0
        self._items.append(event)
        self._wakeup.set()

    async def get(self) -> Event | Lagged:
        """The next event, or a :class:`Lagged` marker where events were dropped."""
        while not self._items:
            if self._dropped:
                dropped, self._dropped = self._dropped, 0
                return Lagged(dropped)
            if self._closed:
                raise SubscriptionClosedError(f"subscription {self.id} is closed")
            self._wakeup.clear()
            await self._wakeup.wait()
        self.delivered += 1
        return self._items.popleft()

    def pending(self) -> int:
        return len(self._items)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._bus._remove(self)
        self._wakeup.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event | Lagged:
        try:
            return await self.get()
        except SubscriptionClosedError:
            raise StopAsyncIteration from None


class EventBus:
    """Fan-out of events to subscriptions; all on the event loop thread."""

    def __init__(self, default_queue: int = 1000) -> None:
        self.default_queue = default_queue
        self._subscriptions: dict[int, Subscription] = {}
        self.published = 0

    def subscribe(
        self,
        topics: Iterable[str] | None = None,
        *,
        maxsize: int | None = None,
        accept: EventFilter | None = None,
    ) -> Subscription:
        wanted = frozenset(topics) if topics is not None else TOPICS
        unknown = wanted - TOPICS
        if unknown:
            raise ValueError(f"unknown topics: {sorted(unknown)}")
        sub = Subscription(self, wanted, maxsize or self.default_queue, accept)
        self._subscriptions[sub.id] = sub
        return sub

    def publish(self, event: Event) -> None:
        self.published += 1
        for sub in list(self._subscriptions.values()):
            try:
                if sub.wants(event):
                    sub.offer(event)
            except Exception:  # a faulty filter must not stop delivery to the others
                log.exception("event filter of subscription %d failed", sub.id)

    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def close(self) -> None:
        for sub in list(self._subscriptions.values()):
            sub.close()

    def _remove(self, sub: Subscription) -> None:
        self._subscriptions.pop(sub.id, None)


__all__ = [
    "EVENT_TYPES",
    "TOPICS",
    "DocChanged",
    "Event",
    "EventBus",
    "Lagged",
    "PeerConnected",
    "PeerDisconnected",
    "Subscription",
    "SubscriptionClosedError",
    "SyncProgress",
    "TenantStateChanged",
]
