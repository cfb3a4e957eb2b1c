"""Bloom summaries of a store's ids (reference-formats §3.5, "bloom-v1").

A peer sends its summary so the other side can skip existence checks for ids that are
certainly missing. A Bloom filter has false positives and never false negatives, so "maybe
present" is always confirmed with ``has_entries``; an unknown version means "maybe".

The hashes follow the reference bit for bit (FNV-1a 32 and DJB2 over UTF-16 code units, double
hashing without 32-bit wrap, LSB-first bitset) so summaries interoperate.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from dataclasses import dataclass

from store.errors import EntryFormatError

BLOOM_VERSION = "bloom-v1"
BLOOM_SALT = "mindoodb-bloom-v1"
FALSE_POSITIVE_RATE = 0.01
#: A summary larger than this is refused on input (about 80 million ids at 1 %).
MAX_BITSET_BYTES = 96 * 1024 * 1024


def _utf16_units(text: str) -> Iterable[int]:
    for char in text:
        code = ord(char)
        if code < 0x10000:
            yield code
        else:
            code -= 0x10000
            yield 0xD800 | (code >> 10)
            yield 0xDC00 | (code & 0x3FF)


def fnv1a32(text: str) -> int:
    value = 0x811C9DC5
    for unit in _utf16_units(text):
        value = ((value ^ unit) * 0x01000193) & 0xFFFFFFFF
    return value


def djb2_32(text: str) -> int:
    value = 5381
    for unit in _utf16_units(text):
        value = ((value << 5) + value + unit) & 0xFFFFFFFF
    return value


def id_hash_pair(entry_id: str, salt: str = BLOOM_SALT) -> tuple[int, int]:
    """The two base hashes of an id; stores may cache them, they never change."""
    h2 = djb2_32(f"{entry_id}:{salt}")
    return fnv1a32(f"{salt}:{entry_id}"), h2 or 1


def parameters(count: int) -> tuple[int, int]:
    """``(bit_count, hash_count)`` for ``count`` ids at a 1 % false positive rate."""
    if count == 0:
        return 64, 2
    bits = max(64, math.ceil(-count * math.log(FALSE_POSITIVE_RATE) / (math.log(2) ** 2)))
    return bits, max(1, math.floor(bits / count * math.log(2) + 0.5))


@dataclass(frozen=True, slots=True)
class BloomSummary:
    version: str
    total_ids: int
    bit_count: int
    hash_count: int
    salt: str
    bitset: bytes

    @classmethod
    def build(cls, pairs: Iterable[tuple[int, int]], count: int) -> BloomSummary:
        """Build from cached ``id_hash_pair`` values of ``count`` ids."""
        bit_count, hash_count = parameters(count)
        bits = bytearray((bit_count + 7) // 8)
        for h1, h2 in pairs:
            for i in range(hash_count):
                index = (h1 + i * h2) % bit_count
                bits[index >> 3] |= 1 << (index & 7)
        return cls(BLOOM_VERSION, count, bit_count, hash_count, BLOOM_SALT, bytes(bits))

    @classmethod
    def of_ids(cls, ids: Iterable[str]) -> BloomSummary:
        id_list = list(ids)
        return cls.build((id_hash_pair(i) for i in id_list), len(id_list))

    def might_contain(self, entry_id: str) -> bool:
        """False only when the id is certainly absent."""
        if self.version != BLOOM_VERSION or self.bit_count <= 0:
            return True
        h1, h2 = id_hash_pair(entry_id, self.salt)
        for i in range(self.hash_count):
            index = (h1 + i * h2) % self.bit_count
            if not self.bitset[index >> 3] & (1 << (index & 7)):
                return False
        return True

    def to_wire(self) -> dict[str, object]:
        return {
            "version": self.version,
            "totalIds": self.total_ids,
            "bitCount": self.bit_count,
            "hashCount": self.hash_count,
            "salt": self.salt,
            "bitsetBase64": base64.b64encode(self.bitset).decode("ascii"),
        }

    @classmethod
    def from_wire(cls, obj: object) -> BloomSummary:
        """Parse a peer's summary; malformed input raises ``EntryFormatError``."""
        if not isinstance(obj, dict):
            raise EntryFormatError("a Bloom summary must be a map")
        try:
            version, salt = obj["version"], obj["salt"]
            total, bits, hashes = obj["totalIds"], obj["bitCount"], obj["hashCount"]
            encoded = obj["bitsetBase64"]
        except KeyError as exc:
            raise EntryFormatError(f"Bloom summary lacks {exc}") from exc
        if not (isinstance(version, str) and isinstance(salt, str) and isinstance(encoded, str)):
            raise EntryFormatError("Bloom summary fields have wrong types")
        numbers = (total, bits, hashes)
        if any(not isinstance(n, int) or isinstance(n, bool) or n < 0 for n in numbers):
            raise EntryFormatError("Bloom summary counts must be non-negative integers")
        if len(encoded) > MAX_BITSET_BYTES * 4 // 3 + 4 or hashes > 64 or len(salt) > 256:
            raise EntryFormatError("Bloom summary exceeds the size limits")
        try:
            bitset = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise EntryFormatError("Bloom bitset is not base64") from exc
        if version == BLOOM_VERSION and len(bitset) != (bits + 7) // 8:
            raise EntryFormatError("Bloom bitset length does not match bitCount")
        return cls(version, total, bits, hashes, salt, bitset)
