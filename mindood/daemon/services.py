"""Seams for what runs beside the RPC: long-running services, the peer list, sync control.

The sync service (node-to-node sync, a later issue) plugs in here without touching the daemon:

* it is a :class:`Service`, built by a factory that is handed the node and keeps only what it
  needs; the daemon runs ``service.run()`` as a named task in its
  ``TaskGroup`` and cancels it at shutdown, and calls ``reload(config)`` on SIGHUP;
* the daemon signals readiness only once every ``wait_started()`` returned, so a service that
  cannot start as configured (its listen port is taken) raises :class:`ServiceStartError` from
  ``run()`` before ``READY=1``, and ``mindood run`` exits 2 with that one line;
* it reports sessions through :class:`PeerRegistry` (``connected`` / ``disconnected``), which
  publishes ``peer.connected`` / ``peer.disconnected`` on the event bus for RPC subscribers;
* it publishes ``SyncProgress`` events on ``node.bus``;
* it registers a :class:`SyncControl` with ``node.set_sync`` so the ``sync.status`` and
  ``sync.now`` RPC methods reach it. Until then those methods answer "unavailable".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from mindood.daemon.config import Config
from mindood.daemon.events import EventBus, PeerConnected, PeerDisconnected
from mindood.errors import MindoodError


class ServiceStartError(MindoodError):
    """A service cannot start as configured (e.g. a listen address in use); a restart won't help."""


class Service(Protocol):
    """A long-running part of the node (sync, discovery, upstream chaining, ...)."""

    name: str

    async def run(self) -> None:
        """Serve until cancelled; raising ends the daemon (after a clean shutdown)."""
        ...

    async def wait_started(self) -> None:
        """Return once ``run()`` serves (its listeners are bound); READY waits for this."""
        ...

    async def reload(self, config: Config) -> None:
        """Apply a reloaded configuration (what cannot change live is logged, not applied)."""
        ...

    def describe(self) -> dict[str, Any]:
        """A small status summary for ``mindood status``."""
        ...


class SyncControl(Protocol):
    """What the ``sync.*`` RPC methods call."""

    def status(self) -> dict[str, Any]: ...

    async def sync_now(
        self, tenant: str | None, db: str | None, peer: str | None
    ) -> dict[str, Any]: ...

    async def follow_database(self, tenant: str, db: str) -> None:
        """Sync ``db`` from now on (it was just created here), announcing it to peers."""
        ...

    async def forget_database(self, tenant: str, db: str) -> None:
        """Stop syncing ``db`` before it is dropped, and do not adopt it from peers again."""
        ...


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One live session with a peer, as ``peers.list`` shows it (``peer_id``: its node id)."""

    peer_id: str
    address: str
    tenants: tuple[str, ...] = ()
    transport: str = ""
    user: str | None = None
    device: str = ""
    direction: str = ""
    state: str = ""
    #: Per database: ``{db, sent, sent_bytes, received, received_bytes, syncing, error}``.
    databases: tuple[dict[str, Any], ...] = ()
    connected_at: float = field(default_factory=time.time)

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        """One session: a peer may hold several (per tenant, or dialed from both ends)."""
        return (self.peer_id, self.address, self.tenants)

    def to_wire(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "address": self.address,
            "tenants": list(self.tenants),
            "transport": self.transport,
            "user": self.user,
            "device": self.device,
            "direction": self.direction,
            "state": self.state,
            "databases": [dict(d) for d in self.databases],
            "connected_at": self.connected_at,
        }


class PeerRegistry:
    """The sessions with peers that are up; empty until the sync service fills it."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._peers: dict[tuple[str, str, tuple[str, ...]], PeerInfo] = {}

    def connected(self, info: PeerInfo) -> None:
        self._peers[info.key] = info
        self._bus.publish(
            PeerConnected(
                info.peer_id, info.address, info.tenants, info.transport, info.user, info.device
            )
        )

    def update(self, info: PeerInfo) -> None:
        """Newer counters or state for a session that is up (no event: ``sync.progress`` is)."""
        if info.key in self._peers:
            self._peers[info.key] = info

    def disconnected(
        self,
        peer_id: str,
        reason: str = "",
        *,
        address: str | None = None,
        tenants: tuple[str, ...] | None = None,
    ) -> None:
        """The sessions of ``peer_id`` ended (only the one at ``address`` for ``tenants``, if
        given)."""
        for key, info in list(self._peers.items()):
            if info.peer_id != peer_id:
                continue
            if (address is not None and info.address != address) or (
                tenants is not None and info.tenants != tenants
            ):
                continue
            del self._peers[key]
            self._bus.publish(PeerDisconnected(peer_id, reason, info.address, info.tenants))

    def list(self) -> list[PeerInfo]:
        return sorted(self._peers.values(), key=lambda p: (p.peer_id, p.tenants, p.address))

    def __len__(self) -> int:
        return len(self._peers)


class ServiceRegistry:
    """Services the daemon starts after the RPC socket is up, in registration order."""

    def __init__(self) -> None:
        self._services: list[Service] = []

    def add(self, service: Service) -> None:
        if any(s.name == service.name for s in self._services):
            raise ValueError(f"a service named {service.name!r} is registered already")
        self._services.append(service)

    def __iter__(self) -> Iterator[Service]:
        return iter(list(self._services))

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": s.name, **s.describe()} for s in self._services]


__all__ = [
    "PeerInfo",
    "PeerRegistry",
    "Service",
    "ServiceRegistry",
    "ServiceStartError",
    "SyncControl",
]
