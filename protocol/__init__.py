"""The node-to-node sync protocol: frames, handshake and sync sessions, free of I/O.

May import ``store``; never ``mindood`` or ``transports``.
"""
