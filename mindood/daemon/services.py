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
    peer_id: str
    address: str
    tenants: tuple[str, ...] = ()
    transport: str = ""
    connected_at: float = field(default_factory=time.time)

    def to_wire(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "address": self.address,
            "tenants": list(self.tenants),
            "transport": self.transport,
            "connected_at": self.connected_at,
        }


class PeerRegistry:
    """The peers with a live session; empty until the sync service fills it."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._peers: dict[str, PeerInfo] = {}

    def connected(self, info: PeerInfo) -> None:
        self._peers[info.peer_id] = info
        self._bus.publish(PeerConnected(info.peer_id, info.address, info.tenants))

    def disconnected(self, peer_id: str, reason: str = "") -> None:
        if self._peers.pop(peer_id, None) is not None:
            self._bus.publish(PeerDisconnected(peer_id, reason))

    def list(self) -> list[PeerInfo]:
        return sorted(self._peers.values(), key=lambda p: p.peer_id)

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
