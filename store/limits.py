"""Sizes every node of a tenant enforces alike, so nothing is written that cannot sync.

``MAX_ENTRY_BYTES`` bounds one entry's encrypted payload. A session moves an entry in one
message: its payload sealed once more for the peer (12-byte IV and 16-byte tag, plus msgpack
framing) and its metadata (a few KiB), inside protocol's 32 MiB message limit. 16 MiB leaves
half the message for that overhead and for batching, and is far above what a document change
needs: large content belongs in attachments, which are split into 256 KiB chunks.
"""

from __future__ import annotations

MAX_ENTRY_BYTES = 16 * 1024 * 1024
