"""``Node``: everything a running mindood holds, independent of how it is reached.

The node owns the tenants (and through them the stores), the event bus, the peer list, the
registered services and the current configuration. The daemon wraps it with the RPC server, the
signal handling and systemd notification; an application could embed a node without any of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mindood import __version__
from mindood.daemon.config import Config
from mindood.daemon.events import EventBus
from mindood.daemon.paths import TENANTS_DIR
from mindood.daemon.services import PeerRegistry, ServiceRegistry, SyncControl
from mindood.daemon.tenants import TenantRegistry
from mindood.rpc.errors import UnavailableError
from mindood.storefactory import OnDiskStoreFactory, StoreFactory
from mindood.sync.chaining import ChainingStoreFactory, LateUpstream

log = logging.getLogger("mindood.node")


class Node:
    def __init__(self, data_dir: Path, config: Config, env: Mapping[str, str]) -> None:
        self.data_dir = data_dir
        self.env = env
        self._config = config
        self.bus = EventBus(config.limits.subscription_queue)
        #: Edge-cache mode: with ``[[upstreams]]`` configured, every store reads and writes
        #: through the upstream node (the sync service binds the lookup once it runs).
        self.upstream = LateUpstream()
        factory: StoreFactory = OnDiskStoreFactory(data_dir / TENANTS_DIR)
        if config.upstreams:
            factory = ChainingStoreFactory(factory, self.upstream)
        self.tenants = TenantRegistry(data_dir, self.bus, env, store_factory=factory)
        self.peers = PeerRegistry(self.bus)
        self.services = ServiceRegistry()
        self._sync: SyncControl | None = None
        self.started_at = time.time()
        self._started_monotonic = time.monotonic()

    @property
    def config(self) -> Config:
        return self._config

    def apply_config(self, config: Config) -> None:
        """Take the live-changeable parts of a reloaded configuration."""
        self._config = config
        self.bus.default_queue = config.limits.subscription_queue

    # -- sync seam ---------------------------------------------------------------------------
    def set_sync(self, control: SyncControl | None) -> None:
        self._sync = control

    def sync_or_none(self) -> SyncControl | None:
        return self._sync

    def sync(self) -> SyncControl:
        if self._sync is None:
            raise UnavailableError("sync is not available on this node (no sync service runs)")
        return self._sync

    # -- reporting ---------------------------------------------------------------------------
    def uptime(self) -> float:
        return time.monotonic() - self._started_monotonic

    def status(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "data_dir": str(self.data_dir),
            "config": str(self._config.source) if self._config.source else None,
            "uptime_seconds": round(self.uptime(), 3),
            "tenants": self.tenants.describe(),
            "peers": {
                "connected": len(self.peers),
                "configured": len(self._config.peers),
                "upstreams": len(self._config.upstreams),
            },
            "services": self.services.describe(),
            "sync": self._sync.status() if self._sync is not None else None,
        }

    async def close(self) -> None:
        self.bus.close()
        await self.tenants.close()


__all__ = ["Node"]
