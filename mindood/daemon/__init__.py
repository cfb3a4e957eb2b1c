"""The mindood daemon: a node (tenants, stores, events, services) served over a local RPC.

``mindood run`` starts it (:func:`mindood.daemon.main.run`); :class:`Daemon` is the lifecycle,
:class:`Node` what it holds, :mod:`mindood.daemon.methods` the RPC methods, and
:mod:`mindood.daemon.config` the TOML configuration.
"""

from mindood.daemon.config import Config, ConfigError, Limits, load_config
from mindood.daemon.daemon import Daemon, DaemonOptions
from mindood.daemon.events import EventBus
from mindood.daemon.node import Node
from mindood.daemon.services import PeerInfo, PeerRegistry, Service, SyncControl

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
