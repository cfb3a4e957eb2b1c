"""Bloom summaries of a store's ids (reference-formats §3.5, "bloom-v1").

A peer sends its summary so the other side can skip existence checks for ids that are
certainly missing. A Bloom filter has false positives and never false negatives, so "maybe
present" is always confirmed with ``has_entries``; an unknown version means "maybe".

The hashes follow the reference bit for bit (FNV-1a 32 and DJB2 over UTF-16 code units, double
hashing without 32-bit wrap, LSB-first bitset) so summaries interoperate.

Building is vectorised with numpy (:func:`id_hash_arrays`, :meth:`BloomSummary.from_arrays`): in
pure Python the hashes cost ~100 interpreted steps per id and 100,000 ids took seconds. The
scalar functions stay for single lookups (:meth:`BloomSummary.might_contain`), where numpy's
per-call overhead would cost more than the loop; tests check both against each other.

Stores keep each id's two base hashes once computed; :func:`id_hash_bytes` packs them (8 bytes
an id) so the on-disk store writes them with the id and builds a summary from a few blobs
(:meth:`BloomSummary.from_hash_bytes`) without reading or hashing ids.
"""

from __future__ import annotations

import base64
import itertools
import math
import struct
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from store.errors import EntryFormatError

BLOOM_VERSION = "bloom-v1"
BLOOM_SALT = "mindoodb-bloom-v1"
FALSE_POSITIVE_RATE = 0.01
#: A summary larger than this is refused on input (about 80 million ids at 1 %).
MAX_BITSET_BYTES = 96 * 1024 * 1024


#: The native-order UTF-16 codec, so ``memoryview.cast("H")`` reads code units as numbers.
_UTF16 = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"


def _utf16_units(text: str) -> memoryview:
    # "surrogatepass" keeps a lone surrogate as the one code unit JavaScript holds for it.
    return memoryview(text.encode(_UTF16, "surrogatepass")).cast("H")


def fnv1a32(text: str) -> int:
    value = 0x811C9DC5
    for unit in _utf16_units(text):
        value = ((value ^ unit) * 0x01000193) & 0xFFFFFFFF
    return value


def djb2_32(text: str) -> int:
    value = 5381
    for unit in _utf16_units(text):
        value = (value * 33 + unit) & 0xFFFFFFFF
    return value


def id_hash_pair(entry_id: str, salt: str = BLOOM_SALT) -> tuple[int, int]:
    """The two base hashes of an id; stores may cache them, they never change."""
    h2 = djb2_32(f"{entry_id}:{salt}")
    return fnv1a32(f"{salt}:{entry_id}"), h2 or 1


_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_DJB2_START = 5381

U32Array = npt.NDArray[np.uint32]


#: Ids hashed per block: a block's code units, transposed, stay in the CPU cache.
_BLOCK_IDS = 4096


def _code_units(text: str) -> npt.NDArray[np.uint16]:
    # "surrogatepass" keeps a lone surrogate as the one code unit JavaScript holds for it.
    return np.frombuffer(text.encode("utf-16-le", "surrogatepass"), dtype="<u2")


def id_hash_arrays(ids: Sequence[str], salt: str = BLOOM_SALT) -> tuple[U32Array, U32Array]:
    """:func:`id_hash_pair` of every id at once: the arrays ``(h1, h2)``, in the order given.

    All ids' UTF-16 code units are laid end to end and cut into one matrix per id length (ids
    of one store mostly share a few lengths); each code-unit position is then one vector step
    over a block of ids (uint32 arithmetic wraps as ``Math.imul``/``>>> 0`` do). ``h1`` starts
    from the FNV state after the shared ``salt + ":"``, ``h2`` ends with the shared
    ``":" + salt``, so neither is hashed once per id.
    """
    count = len(ids)
    h1 = np.full(count, _fnv_of(_code_units(salt + ":")), np.uint32)
    h2 = np.full(count, _DJB2_START, np.uint32)
    joined = "".join(ids)
    units: npt.NDArray[np.unsignedinteger[Any]]
    if joined.isascii():  # the usual case: one byte per code unit, and a fast encode
        units = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    else:
        units = _code_units(joined)
    if units.size == len(joined):  # no astral characters: code units == characters
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=count)
    else:
        lengths = np.fromiter(
            (len(i.encode("utf-16-le", "surrogatepass")) // 2 for i in ids),
            dtype=np.int64,
            count=count,
        )
    starts = np.zeros(count, np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    for length in np.unique(lengths).tolist():
        if length == 0:
            continue
        where = np.flatnonzero(lengths == length)
        if where.size == count:
            matrix = units.reshape(count, length)
        else:
            matrix = units[starts[where][:, None] + np.arange(length)]
        for block in range(0, where.size, _BLOCK_IDS):
            rows = slice(block, block + _BLOCK_IDS)
            # All ids one length (the common case): plain slices instead of gathers.
            at = rows if where.size == count else where[rows]
            a, b = _hash_block(np.ascontiguousarray(matrix[rows].T), h1[at])
            h1[at], h2[at] = a, b
    for unit in _code_units(":" + salt).tolist():
        h2 = h2 * np.uint32(33) + np.uint32(unit)
    h2[h2 == 0] = 1
    return h1, h2


#: Below this many ids the scalar hashes are cheaper than numpy's fixed cost per call (about
#: 0.4 ms for a few ids, against some 30 µs an id in the loop).
_SCALAR_BELOW = 16
#: ``id_hash_bytes`` layout: per id, ``h1`` then ``h2``, each an unsigned 32-bit little-endian.
HASH_PAIR_BYTES = 8
_PAIR = struct.Struct("<II")


def id_hash_bytes(ids: Sequence[str], salt: str = BLOOM_SALT) -> bytes:
    """The base hashes of ``ids`` packed as ``HASH_PAIR_BYTES`` per id, in the order given.

    The compact form a store keeps next to its ids, so a summary only sets bits
    (:meth:`BloomSummary.from_hash_bytes`). A few ids (a single put) take the scalar loop,
    many the vectorised one.
    """
    if len(ids) < _SCALAR_BELOW:
        return b"".join(_PAIR.pack(*id_hash_pair(i, salt)) for i in ids)
    h1, h2 = id_hash_arrays(ids, salt)
    pairs = np.empty((len(ids), 2), dtype="<u4")
    pairs[:, 0], pairs[:, 1] = h1, h2
    return pairs.tobytes()


def _hash_block(
    columns: npt.NDArray[np.unsignedinteger[Any]], fnv: U32Array
) -> tuple[U32Array, U32Array]:
    """FNV-1a (from ``fnv``) and DJB2 (from 5381) over ``columns[j]``, the j-th code units."""
    fnv = fnv.copy()
    djb = np.full(fnv.size, _DJB2_START, np.uint32)
    prime, times = np.uint32(_FNV_PRIME), np.uint32(33)
    for column in columns:
        np.bitwise_xor(fnv, column, out=fnv)
        np.multiply(fnv, prime, out=fnv)
        np.multiply(djb, times, out=djb)
        np.add(djb, column, out=djb)
    return fnv, djb


def _fnv_of(units: npt.NDArray[np.uint16]) -> int:
    value = _FNV_OFFSET
    for unit in units.tolist():
        value = ((value ^ unit) * _FNV_PRIME) & 0xFFFFFFFF
    return value


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
        flat = np.fromiter(itertools.chain.from_iterable(pairs), dtype=np.uint64)
        return cls.from_arrays(flat[0::2], flat[1::2], count)

    @classmethod
    def from_arrays(
        cls, h1: npt.ArrayLike, h2: npt.ArrayLike, count: int | None = None
    ) -> BloomSummary:
        """Build from the base hashes of the ids as two arrays (see :func:`id_hash_arrays`).

        ``count`` (the number of ids, which sizes the filter) defaults to the arrays' length.
        The indexes ``h1 + i * h2`` are exact in uint64 (below 2**39 for up to 64 hashes), as
        the reference's double arithmetic is; the bitset is packed LSB-first.
        """
        first = np.asarray(h1, dtype=np.uint64)
        step = np.asarray(h2, dtype=np.uint64)
        if count is None:
            count = int(first.size)
        bit_count, hash_count = parameters(count)
        bits = np.zeros(bit_count, dtype=np.bool_)
        modulus = np.uint64(bit_count)
        for i in range(hash_count):
            bits[(first + np.uint64(i) * step) % modulus] = True
        packed = np.packbits(bits, bitorder="little").tobytes()
        return cls(BLOOM_VERSION, count, bit_count, hash_count, BLOOM_SALT, packed)

    @classmethod
    def from_hash_bytes(cls, packed: bytes, count: int | None = None) -> BloomSummary:
        """Build from :func:`id_hash_bytes` output (of every id, concatenated in any order)."""
        if len(packed) % HASH_PAIR_BYTES:
            raise ValueError("packed Bloom hashes must be whole (h1, h2) pairs")
        pairs = np.frombuffer(packed, dtype="<u4").reshape(-1, 2)
        return cls.from_arrays(pairs[:, 0], pairs[:, 1], count)

    @classmethod
    def of_ids(cls, ids: Iterable[str]) -> BloomSummary:
        return cls.from_arrays(*id_hash_arrays(list(ids)))

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
