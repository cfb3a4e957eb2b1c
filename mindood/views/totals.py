"""Category totals kept incrementally, and exactly.

A category's SUM and AVERAGE change by one document's value at a time: added when a document
enters the category's subtree, subtracted when it leaves. Floating-point running sums would drift
under that (``0.1 + 0.2 - 0.1 != 0.2``), and a view updated a thousand times would disagree with a
view built fresh. So sums are kept exactly: integers as Python integers, finite floats as integers
scaled by 2**1074 (every finite float is a multiple of 2**-1074, so the scaling is lossless), and
the result is one correctly rounded division. Infinities and NaN are counted apart. A total
therefore depends only on which documents are in the category, never on the order of updates.

Only ``int`` and ``float`` values count (not booleans, not numeric strings); documents without a
number neither add to a SUM nor to an AVERAGE's count.
"""

from __future__ import annotations

import math
from typing import Any

from mindood.views.columns import TotalMode

_SCALE_BITS = 1074
_SCALE = 1 << _SCALE_BITS


def numeric(value: Any) -> int | float | None:
    """The number a value contributes to a total, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value
    return None


class Total:
    """One total column's running state for one category."""

    __slots__ = ("count", "floats", "ints", "nan", "neg_inf", "pos_inf", "scaled")

    def __init__(self) -> None:
        self.count = 0  # documents with a number
        self.ints = 0
        self.scaled = 0  # sum of the finite floats, times 2**1074
        self.floats = 0  # how many finite floats are in ``scaled``
        self.nan = 0
        self.pos_inf = 0
        self.neg_inf = 0

    def add(self, number: int | float, sign: int = 1) -> None:
        """Add (``sign=1``) or remove (``sign=-1``) one document's number."""
        self.count += sign
        if isinstance(number, int):
            self.ints += sign * number
        elif math.isfinite(number):
            numerator, denominator = number.as_integer_ratio()
            shift = _SCALE_BITS - (denominator.bit_length() - 1)
            self.scaled += sign * (numerator << shift)
            self.floats += sign
        elif math.isnan(number):
            self.nan += sign
        elif number > 0:
            self.pos_inf += sign
        else:
            self.neg_inf += sign

    def merge(self, other: Total, sign: int = 1) -> None:
        """Add (or with ``sign=-1`` take away) everything ``other`` holds."""
        self.count += sign * other.count
        self.ints += sign * other.ints
        if not (other.floats or other.nan or other.pos_inf or other.neg_inf):
            return  # integers only, the common case
        self.scaled += sign * other.scaled
        self.floats += sign * other.floats
        self.nan += sign * other.nan
        self.pos_inf += sign * other.pos_inf
        self.neg_inf += sign * other.neg_inf

    def value(self, mode: TotalMode) -> int | float | None:
        """The SUM (an ``int`` while only integers were added) or AVERAGE (None if empty)."""
        if mode is TotalMode.AVERAGE and self.count == 0:
            return None
        special = self._special()
        if special is not None:
            return special
        if mode is TotalMode.AVERAGE:
            return _divide(self.ints * _SCALE + self.scaled, self.count * _SCALE)
        if self.floats == 0:
            return self.ints
        return _divide(self.ints * _SCALE + self.scaled, _SCALE)

    def _special(self) -> float | None:
        if self.nan or (self.pos_inf and self.neg_inf):
            return math.nan
        if self.pos_inf:
            return math.inf
        if self.neg_inf:
            return -math.inf
        return None

    def is_empty(self) -> bool:
        return self.count == 0


def _divide(numerator: int, denominator: int) -> float:
    try:
        return numerator / denominator  # int / int: correctly rounded
    except OverflowError:
        return math.inf if numerator > 0 else -math.inf
