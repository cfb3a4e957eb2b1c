"""A total order over every value a view column can hold.

Documents are schemaless: one column may hold a number in one document, a string in the next and
nothing in a third, and Python refuses to compare those. Every value is therefore mapped to a key
tuple whose first element ranks its type, so any two keys compare:

    None (and NaN) < booleans < numbers < timestamps < strings < bytes < anything else

Within a type, values compare naturally; strings compare case-insensitively first and by code
point second, so "apple" < "Banana" < "banana" < "cherry" (what a reader of a sorted list expects,
while still telling "Banana" and "banana" apart). Anything else (maps, nested lists) compares by
its ``repr``: arbitrary but stable, which is all a tie needs.

A list in a sorted column sorts by its first element (an empty list like None); fanning a list
out into several rows is what category columns do, not sorted ones.

Descending keys negate the rank and the payload, so a descending column is still a plain tuple
comparison; strings, which cannot be negated, are wrapped in :class:`Reversed`.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import total_ordering
from typing import Any

_NONE, _BOOL, _NUMBER, _TIME, _STR, _BYTES, _OTHER = range(7)

#: A comparable key: (rank, payload...).
SortKey = tuple[Any, ...]


@total_ordering
class Reversed:
    """Wraps a comparable payload and reverses its order (descending strings, bytes, reprs)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reversed) and bool(self.value == other.value)

    def __lt__(self, other: Reversed) -> bool:
        return bool(other.value < self.value)

    def __hash__(self) -> int:
        return hash(self.value)

    def __repr__(self) -> str:
        return f"Reversed({self.value!r})"


def _timestamp(value: dt.datetime) -> float:
    if value.tzinfo is None:  # naive: read as UTC, the way Automerge stores timestamps
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def ascending_key(value: Any) -> SortKey:
    """The key that sorts ``value`` among all others in ascending order."""
    if value is None:
        return (_NONE,)
    if isinstance(value, str):
        return (_STR, value.casefold(), str(value))
    if isinstance(value, bool):
        return (_BOOL, int(value))
    if isinstance(value, int):
        return (_NUMBER, int(value))
    if isinstance(value, float):
        return (_NONE,) if math.isnan(value) else (_NUMBER, value)
    if isinstance(value, dt.datetime):
        return (_TIME, _timestamp(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return (_BYTES, bytes(value))
    if isinstance(value, list | tuple):
        return ascending_key(value[0]) if value else (_NONE,)
    return (_OTHER, repr(value))


def descending_key(value: Any) -> SortKey:
    """The key that sorts ``value`` among all others in descending order."""
    key = ascending_key(value)
    rank = key[0]
    if rank in (_BOOL, _NUMBER, _TIME):
        return (-rank, -key[1])
    return (-rank, *(Reversed(part) for part in key[1:]))


def sort_key(value: Any, descending: bool) -> SortKey:
    return descending_key(value) if descending else ascending_key(value)
