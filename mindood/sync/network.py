"""Finding and reaching peers beyond the configured ones: mDNS discovery and WebRTC.

``PeerNetwork`` is what the daemon starts next to its ``SyncNode``: it answers WebRTC offers,
advertises and browses mDNS on the allowed interfaces, and (``webrtc.auto_connect``) reaches
every directory member that a connected peer can relay signals to. All of it feeds one
``PeerReach``, which prefers a direct TCP connection and falls back to WebRTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from mindood.crypto.pem import normalize_pem
from mindood.sync.discovery import Discovery, DiscoveryConfig
from mindood.sync.members import dials_first, member_identities, node_id
from mindood.sync.node import SyncNode
from mindood.sync.reach import PeerReach
from mindood.sync.traffic import NodeEvent
from mindood.sync.webrtc_dial import WebRtcConfig, WebRtcDialer
from protocol.events import PeerConnected
from transports.tasks import cancel_and_wait
from transports.tcp import Backoff

log = logging.getLogger("mindood.sync.network")

_DIRECTORY_SOURCE = "directory"


@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """Discovery and WebRTC settings (TOML ``[discovery]`` and ``[webrtc]``)."""

    discovery: DiscoveryConfig = field(default_factory=DiscoveryConfig)
    webrtc: WebRtcConfig = field(default_factory=WebRtcConfig)
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.5, maximum=15.0))


class PeerNetwork:
    """Discovery, WebRTC answering and automatic reach for one ``SyncNode``."""

    def __init__(self, node: SyncNode, config: NetworkConfig) -> None:
        self._node = node
        self._config = config
        self.webrtc = WebRtcDialer(node, config.webrtc) if config.webrtc.enabled else None
        self.reach = PeerReach(
            node,
            self.webrtc,
            dial_timeout=config.discovery.dial_timeout,
            grace=config.discovery.grace,
            backoff=config.backoff,
        )
        self.discovery: Discovery | None = None
        self._auto: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._unsubscribe: Any = None

    async def start(self, advertise_port: int) -> None:
        """Start what the configuration enables; ``advertise_port`` is our TCP listener's."""
        if self.webrtc is not None:
            self.webrtc.start()
            if self._config.webrtc.auto_connect:
                self._unsubscribe = self._node.on_event(self._on_event)
                self._auto = self._node.spawn(self._auto_connect(), name="webrtc-auto-connect")
        if self._config.discovery.enabled:
            self.discovery = Discovery(
                self._node, self.reach, self._config.discovery, advertise_port
            )
            await self.discovery.start()

    async def refresh(self) -> None:
        """Tenants were unlocked or locked: re-advertise and look for members again."""
        if self.discovery is not None:
            await self.discovery.refresh()
        self._wake.set()

    async def aclose(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._auto is not None:
            await cancel_and_wait([self._auto])
            self._auto = None
        if self.discovery is not None:
            await self.discovery.aclose()
        await self.reach.aclose()
        if self.webrtc is not None:
            await self.webrtc.aclose()

    def status(self) -> dict[str, Any]:
        return {
            "discovery": self.discovery.status() if self.discovery is not None else None,
            "webrtc": self.webrtc is not None,
            "wanted": self.reach.wanted(),
        }

    # -- reaching directory members through a rendezvous -------------------------------------
    def _on_event(self, event: NodeEvent) -> None:
        if isinstance(event, PeerConnected):
            self._wake.set()

    async def _auto_connect(self) -> None:
        interval = self._config.webrtc.auto_interval
        while True:
            self._wake.clear()
            try:
                await self._auto_round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("WebRTC auto-connect round failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()

    async def _auto_round(self) -> None:
        assert self.webrtc is not None
        for context in self._node.tenant_contexts():
            own_pem = normalize_pem(context.identity)
            own = node_id(own_pem)
            members = [m for m in member_identities(context) if normalize_pem(m) != own_pem]
            granted = {node_id(m) for m in members}
            for entry in self.reach.wanted():
                peer = bytes.fromhex(entry["node_id"])
                if entry["tenant"] == context.tenant_id and peer not in granted:
                    self.reach.unwant(context.tenant_id, peer, _DIRECTORY_SOURCE)
            for member in members:
                peer = node_id(member)
                if not dials_first(own, peer) or self.reach.wants(context.tenant_id, peer):
                    continue
                if self.reach.linked(context.tenant_id, peer) is not None:
                    continue
                if await self.webrtc.probe(context.tenant_id, member):
                    self.reach.want(context.tenant_id, peer, _DIRECTORY_SOURCE)
