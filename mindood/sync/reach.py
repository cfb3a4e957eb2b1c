"""Keep a session with each wanted member: direct TCP first, WebRTC through a rendezvous next.

A member becomes *wanted* when some source names it (an mDNS advertisement, the directory
through a connected relay); it stays wanted while any source still does. For each wanted
member one task keeps a session up: if we already have one with that identity (whoever dialed)
it just waits for it to end; otherwise it tries the advertised addresses over TLS with a short
timeout, then a WebRTC data channel signaled through a connected peer, then backs off.

Of two members that want each other, the one with the lower node id dials at once; the other
waits a grace period first, so they rarely open two sessions, yet one still connects if only it
can see the other.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from mindood.sync.connection import PeerConnection
from mindood.sync.members import dials_first, identity_for, node_id
from mindood.sync.node import SyncNode
from mindood.sync.webrtc_dial import WebRtcDialer
from transports.tasks import cancel_and_wait
from transports.tcp import Backoff

log = logging.getLogger("mindood.sync.reach")

Address = tuple[str, int]


@dataclass(slots=True)
class _Target:
    tenant_id: str
    node_id: bytes
    sources: dict[str, tuple[Address, ...]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    attempts: int = 0
    last_route: str = ""

    def addresses(self) -> list[Address]:
        return list(dict.fromkeys(a for addrs in self.sources.values() for a in addrs))


class PeerReach:
    """The wanted members of every tenant and the tasks that keep sessions with them."""

    def __init__(
        self,
        node: SyncNode,
        webrtc: WebRtcDialer | None = None,
        *,
        dial_timeout: float = 3.0,
        grace: float = 3.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._node = node
        self._webrtc = webrtc
        self._dial_timeout = dial_timeout
        self._grace = grace
        self._backoff = backoff or Backoff(initial=0.5, maximum=15.0)
        self._targets: dict[tuple[str, bytes], _Target] = {}
        self._closing = False

    # -- wanting -----------------------------------------------------------------------------
    def want(
        self, tenant_id: str, peer: bytes, source: str, addresses: tuple[Address, ...] = ()
    ) -> None:
        if self._closing or peer == self._own_id(tenant_id):
            return
        target = self._targets.setdefault((tenant_id, peer), _Target(tenant_id, peer))
        target.sources[source] = addresses
        if target.task is None or target.task.done():
            target.task = self._node.spawn(self._maintain(target), name="sync-reach")

    def unwant(self, tenant_id: str, peer: bytes, source: str) -> None:
        """``source`` no longer names the member; stop trying once nothing does."""
        target = self._targets.get((tenant_id, peer))
        if target is None:
            return
        target.sources.pop(source, None)
        if not target.sources:
            del self._targets[(tenant_id, peer)]
            if target.task is not None:
                target.task.cancel()  # an open session stays up; we only stop redialing

    def wants(self, tenant_id: str, peer: bytes) -> bool:
        return (tenant_id, peer) in self._targets

    def wanted(self) -> list[dict[str, Any]]:
        return [
            {
                "tenant": t.tenant_id,
                "node_id": t.node_id.hex(),
                "sources": sorted(t.sources),
                "addresses": [f"{h}:{p}" for h, p in t.addresses()],
                "connected": self.linked(t.tenant_id, t.node_id) is not None,
                "attempts": t.attempts,
                "route": t.last_route,
            }
            for t in self._targets.values()
        ]

    def linked(self, tenant_id: str, peer: bytes) -> PeerConnection | None:
        for link in self._node.links():
            conn = link.conn
            if (
                link.context.tenant_id == tenant_id
                and not conn.closed.is_set()
                and node_id(link.peer_identity) == peer
            ):
                return conn
        return None

    def _own_id(self, tenant_id: str) -> bytes | None:
        for context in self._node.tenant_contexts():
            if context.tenant_id == tenant_id:
                return node_id(context.identity)
        return None

    # -- keeping a session -------------------------------------------------------------------
    async def _maintain(self, target: _Target) -> None:
        delays = self._backoff.delays()
        try:
            while not self._closing:
                conn = self.linked(target.tenant_id, target.node_id)
                own = self._own_id(target.tenant_id)
                if own is None:
                    return  # the tenant was locked
                if conn is None and not dials_first(own, target.node_id):
                    await asyncio.sleep(self._grace)
                    conn = self.linked(target.tenant_id, target.node_id)
                if conn is None:
                    conn = await self._reach_once(target)
                if conn is not None:
                    delays.reset()
                    await conn.closed.wait()
                    continue
                await asyncio.sleep(delays.next())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("keeping a peer session failed")

    async def _reach_once(self, target: _Target) -> PeerConnection | None:
        target.attempts += 1
        for host, port in target.addresses():
            try:
                conn = await self._node.connect(
                    host, port, target.tenant_id, connect_timeout=self._dial_timeout
                )
            except Exception as exc:
                log.info("direct TCP failed", extra={"peer": f"{host}:{port}", "reason": str(exc)})
                continue
            target.last_route = f"tcp {host}:{port}"
            return conn
        if self._webrtc is None:
            return None
        context = next(
            (c for c in self._node.tenant_contexts() if c.tenant_id == target.tenant_id), None
        )
        identity = identity_for(context, target.node_id) if context is not None else None
        if identity is None:
            return None
        try:
            if not await self._webrtc.probe(target.tenant_id, identity):
                return None
            conn = await self._webrtc.dial(target.tenant_id, identity)
        except Exception as exc:
            log.info("WebRTC failed", extra={"peer": target.node_id.hex(), "reason": str(exc)})
            return None
        target.last_route = f"webrtc {conn.channel.peer_address}"
        return conn

    async def aclose(self) -> None:
        self._closing = True
        tasks = [t.task for t in self._targets.values() if t.task is not None]
        self._targets.clear()
        await cancel_and_wait(tasks)
