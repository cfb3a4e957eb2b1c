"""A list of values kept in order of unique keys, with cheap inserts, removals and positions.

A view category can hold 100,000 documents, and an update inserts and removes a handful of them.
A flat Python list with ``bisect`` finds the spot in O(log n) but shifts every later element on
each insert; sorting again costs O(n log n). Here the items live in chunks of a few hundred:
finding a chunk is a bisection over the chunks' last keys, an insert or removal shifts at most one
chunk, and the absolute position of an item (what "1.2.3" needs) is the chunk's offset plus the
index inside it, offsets being recomputed lazily after a change (one pass over the chunks, not the
items).

Keys must be unique and comparable with ``<``; views make them so by ending every key with the
entry's identity.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from itertools import accumulate, pairwise
from operator import itemgetter
from typing import Any, Generic, TypeVar

V = TypeVar("V")

#: Target chunk length; a chunk splits at twice this.
LOAD = 256

_first = itemgetter(0)


class SortedKeyList(Generic[V]):
    """Values ordered by their (unique) keys; positions are 0-based."""

    __slots__ = ("_keys", "_len", "_maxes", "_offsets", "_vals")

    def __init__(self, pairs: Iterable[tuple[Any, V]] = ()) -> None:
        self._keys: list[list[Any]] = []
        self._vals: list[list[V]] = []
        self._maxes: list[Any] = []
        self._offsets: list[int] | None = None
        self._len = 0
        pairs = list(pairs)
        if pairs:
            self.add_many(pairs)

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self) -> Iterator[V]:
        for chunk in self._vals:
            yield from chunk

    def __reversed__(self) -> Iterator[V]:
        for chunk in reversed(self._vals):
            yield from reversed(chunk)

    def __contains__(self, key: Any) -> bool:
        return self._find(key) is not None

    def iter_from(self, position: int) -> Iterator[V]:
        """Values from ``position`` (0-based) to the end."""
        if position >= self._len:
            return
        i, j = self._at(max(position, 0))
        yield from self._vals[i][j:]
        for chunk in self._vals[i + 1 :]:
            yield from chunk

    def iter_before(self, position: int) -> Iterator[V]:
        """Values before ``position``, backwards (``position - 1`` first)."""
        if position <= 0:
            return
        i, j = self._at(min(position, self._len) - 1)
        yield from reversed(self._vals[i][: j + 1])
        for chunk in reversed(self._vals[:i]):
            yield from reversed(chunk)

    def keys(self) -> Iterator[Any]:
        for chunk in self._keys:
            yield from chunk

    # -- changes -----------------------------------------------------------------------------
    def add(self, key: Any, value: V) -> None:
        """Insert ``value`` under ``key``; a key already present is a bug (``ValueError``)."""
        if not self._keys:
            self._keys.append([key])
            self._vals.append([value])
            self._maxes.append(key)
            self._changed(1)
            return
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            i -= 1
        keys = self._keys[i]
        j = bisect_left(keys, key)
        if j < len(keys) and keys[j] == key:
            raise ValueError(f"duplicate sort key {key!r}")
        keys.insert(j, key)
        self._vals[i].insert(j, value)
        if j == len(keys) - 1:
            self._maxes[i] = key
        if len(keys) > 2 * LOAD:
            self._split(i)
        self._changed(1)

    def remove(self, key: Any) -> V:
        """Take out the value under ``key`` and return it (``KeyError`` if absent)."""
        found = self._find(key)
        if found is None:
            raise KeyError(key)
        i, j = found
        keys, vals = self._keys[i], self._vals[i]
        del keys[j]
        value = vals.pop(j)
        if not keys:
            del self._keys[i], self._vals[i], self._maxes[i]
        elif j == len(keys):
            self._maxes[i] = keys[-1]
        if keys and len(keys) < LOAD // 4 and len(self._keys) > 1:
            self._join(i)
        self._changed(-1)
        return value

    def add_many(self, pairs: list[tuple[Any, V]]) -> None:
        """Insert many values: one by one when few, by one merge-sort when many.

        A first build puts every document of a category in at once; sorting the lot once is far
        cheaper than a bisection and a shift per item.
        """
        if len(pairs) * 8 < self._len:
            for key, value in pairs:
                self.add(key, value)
            return
        merged = [
            pair
            for chunk in zip(self._keys, self._vals, strict=True)
            for pair in zip(*chunk, strict=True)
        ]
        merged.extend(pairs)
        merged.sort(key=_first)
        for left, right in pairwise(merged):
            if not left[0] < right[0]:
                raise ValueError(f"duplicate sort key {right[0]!r}")
        self._rebuild(merged)

    # -- positions ---------------------------------------------------------------------------
    def index(self, key: Any) -> int:
        """The position of the value under ``key`` (``KeyError`` if absent)."""
        found = self._find(key)
        if found is None:
            raise KeyError(key)
        return self._chunk_offsets()[found[0]] + found[1]

    def __getitem__(self, position: int) -> V:
        i, j = self._at(position)
        return self._vals[i][j]

    def key_at(self, position: int) -> Any:
        i, j = self._at(position)
        return self._keys[i][j]

    def bisect(self, key: Any) -> int:
        """How many keys are lower than ``key`` (where it would be inserted)."""
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return self._len
        return self._chunk_offsets()[i] + bisect_left(self._keys[i], key)

    # -- internals ---------------------------------------------------------------------------
    def _find(self, key: Any) -> tuple[int, int] | None:
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return None
        keys = self._keys[i]
        j = bisect_left(keys, key)
        if j < len(keys) and keys[j] == key:
            return i, j
        return None

    def _at(self, position: int) -> tuple[int, int]:
        if position < 0:
            position += self._len
        if not 0 <= position < self._len:
            raise IndexError("position out of range")
        offsets = self._chunk_offsets()
        i = bisect_right(offsets, position) - 1
        return i, position - offsets[i]

    def _chunk_offsets(self) -> list[int]:
        if self._offsets is None:
            self._offsets = [0, *accumulate(len(chunk) for chunk in self._keys)][:-1]
        return self._offsets

    def _changed(self, delta: int) -> None:
        self._len += delta
        self._offsets = None

    def _split(self, i: int) -> None:
        keys, vals = self._keys[i], self._vals[i]
        self._keys[i : i + 1] = [keys[:LOAD], keys[LOAD:]]
        self._vals[i : i + 1] = [vals[:LOAD], vals[LOAD:]]
        self._maxes[i : i + 1] = [keys[LOAD - 1], keys[-1]]

    def _join(self, i: int) -> None:
        """Fold a chunk that shrank into a neighbour, so removals never leave dust behind."""
        left = i - 1 if i == len(self._keys) - 1 else i
        self._keys[left : left + 2] = [self._keys[left] + self._keys[left + 1]]
        self._vals[left : left + 2] = [self._vals[left] + self._vals[left + 1]]
        self._maxes[left : left + 2] = [self._maxes[left + 1]]
        if len(self._keys[left]) > 2 * LOAD:
            self._split(left)

    def _rebuild(self, pairs: list[tuple[Any, V]]) -> None:
        self._keys = [[k for k, _ in pairs[s : s + LOAD]] for s in range(0, len(pairs), LOAD)]
        self._vals = [[v for _, v in pairs[s : s + LOAD]] for s in range(0, len(pairs), LOAD)]
        self._maxes = [chunk[-1] for chunk in self._keys]
        self._len = len(pairs)
        self._offsets = None


__all__ = ["LOAD", "SortedKeyList"]
