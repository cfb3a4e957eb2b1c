"""Node-to-node sync: protocol sessions over transports, wired to the node's tenants."""

from mindood.sync.node import PeerStatus, SyncNode

__all__ = ["PeerStatus", "SyncNode"]
