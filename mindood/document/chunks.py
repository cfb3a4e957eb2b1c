"""Automerge change chunks as bytes: header checks, hashes, and the sync-message wrapper.

The binding has no ``apply_changes``. A version-1 sync message whose "changes" list carries the
chunks is the fastest correct way in: ``0x42``, three empty lists (heads, need, have) as uLEB128
zeros, then the count and each chunk as uLEB128 length + bytes. Receiving such a message applies
the changes in any order, silently holding back those whose dependencies are missing, so callers
must check the result against the hashes they expected (``AutomergeDoc.apply_changes`` does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from automerge.core import Message

from mindood.errors import ChangeFormatError, DocumentError

#: Every Automerge chunk starts with these four bytes.
MAGIC = bytes.fromhex("856f4a83")
#: Chunk types (the byte after magic and checksum).
CHUNK_DOCUMENT = 0
CHUNK_CHANGE = 1
CHUNK_COMPRESSED_CHANGE = 2

_SYNC_MESSAGE_V1 = 0x42
_HASH_SIZE = 32


def encode_uleb128(value: int) -> bytes:
    """Unsigned LEB128, the integer encoding of Automerge's binary formats."""
    if value < 0:
        raise ValueError("uLEB128 encodes non-negative integers only")
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def decode_uleb128(data: bytes, pos: int) -> tuple[int, int]:
    """The uLEB128 integer at ``pos`` and the position after it (malformed: format error)."""
    if pos < len(data) and data[pos] < 0x80:  # one byte: most sizes, specs and counts
        return data[pos], pos + 1
    result = 0
    shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ChangeFormatError("truncated or oversized uLEB128 in change chunk header")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def chunk_type(chunk: bytes) -> int:
    """Check a chunk's framing and return its type.

    Verifies magic, declared length and (for uncompressed changes, where it is computable) the
    checksum, so one bad chunk is reported by itself instead of spoiling a whole sync message.
    """
    if len(chunk) < 10 or chunk[:4] != MAGIC:
        raise ChangeFormatError("not an Automerge chunk (bad magic or too short)")
    kind = chunk[8]
    length, body_start = decode_uleb128(chunk, 9)
    if body_start + length != len(chunk):
        raise ChangeFormatError("Automerge chunk length does not match its header")
    if kind == CHUNK_CHANGE and hashlib.sha256(chunk[8:]).digest()[:4] != chunk[4:8]:
        raise ChangeFormatError("Automerge change chunk has a bad checksum")
    if kind not in (CHUNK_DOCUMENT, CHUNK_CHANGE, CHUNK_COMPRESSED_CHANGE):
        raise ChangeFormatError(f"unknown Automerge chunk type {kind}")
    return kind


def change_hash(chunk: bytes) -> str:
    """The hex hash of an uncompressed change chunk: ``sha256(chunk[8:])``, as Automerge does.

    A compressed change hashes its uncompressed form, which this module cannot rebuild; callers
    that may hold compressed chunks must pass the expected hashes explicitly.
    """
    kind = chunk_type(chunk)
    if kind != CHUNK_CHANGE:
        raise ChangeFormatError(f"cannot compute the hash of a chunk of type {kind}")
    return hashlib.sha256(chunk[8:]).hexdigest()


def hash_bytes(value: bytes | str) -> bytes:
    """A 32-byte change hash from raw bytes or hex; anything else is a caller error."""
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise DocumentError(f"change hash is not hex: {value!r}") from None
    else:
        raw = bytes(value)
    if len(raw) != _HASH_SIZE:
        raise DocumentError(f"change hash must be {_HASH_SIZE} bytes, got {len(raw)}")
    return raw


def hashes_bytes(values: Iterable[bytes | str]) -> list[bytes]:
    """``hash_bytes`` over a collection."""
    return [hash_bytes(v) for v in values]


def sync_message(chunks: Sequence[bytes]) -> Message:
    """Wrap change chunks in a version-1 sync message the binding can receive."""
    out = bytearray((_SYNC_MESSAGE_V1, 0, 0, 0))
    out += encode_uleb128(len(chunks))
    for chunk in chunks:
        out += encode_uleb128(len(chunk))
        out += chunk
    try:
        return Message.decode(bytes(out))
    except Exception as exc:  # the binding raises a bare Exception for any parse failure
        raise ChangeFormatError(f"change chunks rejected by Automerge: {exc}") from exc
