"""The mindood daemon: a node (tenants, stores, events, services) served over a local RPC.

``mindood run`` starts it (:func:`mindood.daemon.main.run`); :class:`Daemon` is the lifecycle,
:class:`Node` what it holds, :mod:`mindood.daemon.methods` the RPC methods, and
:mod:`mindood.daemon.config` the TOML configuration.

Names are resolved on first use (PEP 562), so that light submodules (``paths``, ``secrets``,
``events``) can be imported by the CLI and the client without loading the crypto and document
layers behind the node.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mindood.daemon.config import Config, ConfigError, Limits, load_config
    from mindood.daemon.daemon import Daemon, DaemonOptions
    from mindood.daemon.events import EventBus
    from mindood.daemon.node import Node
    from mindood.daemon.services import PeerInfo, PeerRegistry, Service, SyncControl

_EXPORTS = {
    "Config": "mindood.daemon.config",
    "ConfigError": "mindood.daemon.config",
    "Limits": "mindood.daemon.config",
    "load_config": "mindood.daemon.config",
    "Daemon": "mindood.daemon.daemon",
    "DaemonOptions": "mindood.daemon.daemon",
    "EventBus": "mindood.daemon.events",
    "Node": "mindood.daemon.node",
    "PeerInfo": "mindood.daemon.services",
    "PeerRegistry": "mindood.daemon.services",
    "Service": "mindood.daemon.services",
    "SyncControl": "mindood.daemon.services",
}

__all__ = [
    "Config",
    "ConfigError",
    "Daemon",
    "DaemonOptions",
    "EventBus",
    "Limits",
    "Node",
    "PeerInfo",
    "PeerRegistry",
    "Service",
    "SyncControl",
    "load_config",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mindood.daemon' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
