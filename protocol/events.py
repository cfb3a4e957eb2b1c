"""What the sync layer tells the node that runs it: one frozen class per kind of news.

The node turns these into status, log lines and RPC notifications; nothing here is a
``(kind, dict)`` pair that a typo could silently drop.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerConnected:
    tenant_id: str
    address: str
    identity: str
    transport: str


@dataclass(frozen=True, slots=True)
class PeerDisconnected:
    tenant_id: str
    address: str
    identity: str
    reason: str


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """Replication of one store from one peer moved on (``position`` of ``bound``)."""

    tenant_id: str
    address: str
    db: str
    kind: str
    scanned: int
    transferred: int
    position: int
    bound: int

    @property
    def done(self) -> bool:
        return self.position >= self.bound


@dataclass(frozen=True, slots=True)
class RoundFinished:
    """A full pull of every shared database from one peer ended (the first one: ``initial``)."""

    tenant_id: str
    address: str
    databases: tuple[str, ...]
    initial: bool


@dataclass(frozen=True, slots=True)
class SyncFailed:
    """Pulling ``db`` from a peer failed; it is tried again in ``retry_in`` seconds."""

    tenant_id: str
    address: str
    db: str
    error: str
    retry_in: float


@dataclass(frozen=True, slots=True)
class Refused:
    """A peer refused our session; ``revoked``: it says the directory revoked our key."""

    tenant_id: str
    address: str
    revoked: bool
    reason: str


SyncEvent = PeerConnected | PeerDisconnected | SyncProgress | RoundFinished | SyncFailed | Refused
