"""How bytes move between nodes: TLS over TCP, WebRTC data channels, mDNS discovery.

Imports neither ``protocol`` nor ``mindood``.
"""
