"""The reference's HTTP sync API (reference-formats §3), sans-I/O.

``wire`` holds the shapes both sides share (entry JSON, binary framing, session-key wrap,
request and response objects, errors, capabilities, SSE); ``auth`` the challenge/JWT logic;
``server`` maps requests onto the same store operations as the native protocol. The HTTP
server and client themselves live in ``transports/``.
"""
