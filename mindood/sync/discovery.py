"""mDNS discovery wired to the node: advertise our tenants, want the members we find.

Each unlocked tenant with ``$publicinfos`` is advertised as a sealed tag (see
``transports.mdns``). A found node whose tags open with one of our tenant keys becomes a
wanted member in ``PeerReach`` (which dials it: TCP to the advertised addresses first); a node
none of our keys opens is only counted as foreign. When a service says goodbye or expires, its
member is no longer wanted (an open session stays until it ends); when it comes back it is
wanted again and the session resumes from its replication cursors.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from mindood.sync.members import discovery_key, node_id
from mindood.sync.node import SyncNode
from mindood.sync.reach import PeerReach
from transports.mdns import Advertiser, Browser, Found, Mdns, Membership, resolve_interfaces

log = logging.getLogger("mindood.sync.discovery")


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """``[discovery]``: mDNS on exactly the named interfaces; none named means off."""

    #: Interface names (``eth0``) or IPv4 addresses; mDNS never goes anywhere else.
    interfaces: tuple[str, ...] = ()
    #: Advertise our own service (a node may browse without being findable).
    advertise: bool = True
    #: TCP connect timeout for an advertised address before trying WebRTC.
    dial_timeout: float = 3.0
    #: How long the higher node id waits for the lower one to dial before dialing itself.
    grace: float = 3.0

    @property
    def enabled(self) -> bool:
        return bool(self.interfaces)


class Discovery:
    """Owns the mDNS advertiser and browser for one ``SyncNode``."""

    def __init__(
        self, node: SyncNode, reach: PeerReach, config: DiscoveryConfig, port: int
    ) -> None:
        self._node = node
        self._reach = reach
        self._config = config
        self._port = port
        self._stack = contextlib.AsyncExitStack()
        self._advertiser: Advertiser | None = None
        self._browser: Browser | None = None
        self._found: dict[str, list[tuple[str, bytes]]] = {}
        self.foreign: set[str] = set()

    def memberships(self) -> list[Membership]:
        out = []
        for context in self._node.tenant_contexts():
            key = discovery_key(context)
            if key is not None:
                out.append(Membership(context.tenant_id, key, node_id(context.identity)))
        return out

    async def start(self) -> None:
        addresses = resolve_interfaces(self._config.interfaces)
        mdns = await self._stack.enter_async_context(Mdns(addresses))
        if self._config.advertise:
            self._advertiser = await self._stack.enter_async_context(
                Advertiser(mdns, self._port, self.memberships())
            )
        own = self._advertiser.name if self._advertiser is not None else None
        browser = Browser(
            mdns,
            self.memberships,
            self._on_found,
            self._on_lost,
            spawn=lambda coro, name: self._node.spawn(coro, name=name),
            ignore=lambda n: n == own,
        )
        self._browser = await self._stack.enter_async_context(browser)
        log.info("mDNS discovery on %s", ", ".join(addresses))

    async def refresh(self) -> None:
        """Re-advertise after tenants were unlocked or locked, and look at every node again."""
        if self._advertiser is not None:
            await self._advertiser.update(self.memberships())
        if self._browser is not None:
            self._browser.rescan()

    async def aclose(self) -> None:
        await self._stack.aclose()
        for name in list(self._found):
            self._on_lost(name)

    def _on_found(self, found: Found) -> None:
        if not found.members:
            if found.name not in self.foreign:
                log.info("found a node of no tenant we serve", extra={"service": found.name})
            self.foreign.add(found.name)
            return
        self.foreign.discard(found.name)
        addresses = tuple((host, found.port) for host in found.addresses)
        previous = self._found.get(found.name, [])
        current = list(found.members.items())
        for tenant_id, peer in previous:
            if (tenant_id, peer) not in current:
                self._reach.unwant(tenant_id, peer, found.name)
        self._found[found.name] = current
        for tenant_id, peer in current:
            self._reach.want(tenant_id, peer, found.name, addresses)

    def _on_lost(self, name: str) -> None:
        self.foreign.discard(name)
        for tenant_id, peer in self._found.pop(name, []):
            self._reach.unwant(tenant_id, peer, name)

    def status(self) -> dict[str, Any]:
        return {
            "interfaces": list(self._config.interfaces),
            "advertised": self._advertiser.name if self._advertiser is not None else None,
            "members_found": len(self._found),
            "foreign_found": len(self.foreign),
        }
