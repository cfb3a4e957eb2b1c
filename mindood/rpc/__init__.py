"""The local RPC: msgpack-RPC over a Unix socket, shared by the daemon and its clients.

``wire`` holds the message shapes and bounded decoding, ``errors`` the error codes (one table
from library errors to codes), ``connection`` and ``server`` the daemon's side. The client lives
in :mod:`mindood.client`; the methods themselves in :mod:`mindood.daemon.methods`.
"""

from mindood.rpc.errors import RpcError
from mindood.rpc.wire import FrameLimits

__all__ = ["FrameLimits", "RpcError"]
