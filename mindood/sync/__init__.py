"""Node-to-node sync: protocol sessions over transports, wired to the node's tenants."""

from mindood.sync.link import PeerStatus
from mindood.sync.node import SyncNode

__all__ = ["PeerStatus", "SyncNode"]
