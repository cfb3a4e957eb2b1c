"""The tenant-wide maximum entry size: nothing is written that cannot sync.

Every node refuses to write, and refuses to accept from a peer, an entry whose encrypted payload
is longer than ``MAX_ENTRY_BYTES``. It lives in ``store/`` because every layer may import it:
``mindood/`` checks its own writes, ``protocol/`` sizes its messages from it, stores check what
they are given.

Why 16 MiB. A sync ``get`` response always carries at least one entry (the server stops adding
entries at its 8 MiB batch budget, but never before the first), so one entry must fit in one
protocol message of 32 MiB (``protocol.messages.Limits.max_message_bytes``) on its own:

    payload                        16 MiB  (MAX_ENTRY_BYTES)
    + metadata                   <= 4 MiB  (ENTRY_ENVELOPE_BYTES; the codec's own allowance,
                                            ids and keys of real entries take a few KiB)
    + session seal (IV + tag)        28 B
    + msgpack framing              < 1 KiB
    = about 20 MiB                 < 32 MiB, with 12 MiB to spare.

A larger entry would be written locally and then stop every sync of that database at the frame
limit; large content belongs in attachments, which are cut into small chunks (256 KiB default).
The daemon's RPC request limit defaults to ``MAX_ENTRY_BYTES + ENTRY_ENVELOPE_BYTES``, so a
document just over the limit reaches the database and gets its clear refusal. Reading is not
bound by this: the codec still decodes payloads up to its own 64 MiB, so entries stored before
the limit existed stay readable where they are.
"""

from __future__ import annotations

from store.entry import EntryType

#: Longest encrypted payload (``encryptedData``: IV, ciphertext and tag) of any entry.
MAX_ENTRY_BYTES = 16 * 1024 * 1024
#: Room for one entry's metadata and wire wrapping next to its payload in one message.
ENTRY_ENVELOPE_BYTES = 4 * 1024 * 1024

_MIB = 1024 * 1024


def format_mib(size: int) -> str:
    """A size as people read it in an error: ``16 MiB``, or ``34.0 MiB (35,651,612 bytes)``.

    Bytes are added for sizes that are not whole MiB, so "16.0 MiB exceeds 16 MiB" cannot
    happen for a payload just over the limit.
    """
    if size % _MIB == 0:
        return f"{size // _MIB} MiB"
    return f"{size / _MIB:.1f} MiB ({size:,} bytes)"


def oversize_reason(entry_type: EntryType, size: int) -> str | None:
    """Why an entry with a payload of ``size`` bytes may not be stored, or ``None`` if it may."""
    if size <= MAX_ENTRY_BYTES:
        return None
    return (
        f"{entry_type.value} entry of {format_mib(size)} exceeds the tenant-wide limit of "
        f"{format_mib(MAX_ENTRY_BYTES)} per entry"
    )
