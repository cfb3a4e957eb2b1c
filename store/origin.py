"""Which of a store's receipt orders came from one peer, and id scans that leave them out.

When B pulls from A, B stores A's entries at new receipt orders; without more, A's next pull
from B lists all of them back (hundreds of bytes each) only to learn it has them. B therefore
records, per peer and per pair of store epochs, the ranges of its own receipt orders it filled
with that peer's entries (batches from one writer get consecutive orders, so a full sync is a
handful of ranges), and an id scan by that peer skips them. Entries written locally meanwhile
get orders outside the ranges, so they are still listed. Only scans are filtered: an entry asked
for by id (a quarantined entry's good copy, a deferred one) is always served.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from store.base import ContentAddressedStore, IdPage, OrderKey, ScanCursor

#: Inclusive ``(first, last)`` receipt orders of entries stored from one peer.
OrderRange = tuple[int, int]

#: Ranges kept per peer and store; past it the oldest go (that peer then lists them again,
#: which costs bytes, never an entry).
MAX_ORIGIN_RANGES = 256

#: Sorts after every id (ids are ASCII): a cursor ``(order, LAST_ID)`` is past all of ``order``.
LAST_ID = "\U0010ffff"


def add_orders(ranges: Sequence[OrderRange], orders: Iterable[int]) -> tuple[OrderRange, ...]:
    """``ranges`` with ``orders`` added, coalesced (adjacent orders merge), oldest dropped."""
    merged: list[OrderRange] = []
    points = sorted({*(o for o in orders if o > 0)})
    spans = [*ranges]
    start: int | None = None
    previous = 0
    for order in points:
        if start is not None and order == previous + 1:
            previous = order
            continue
        if start is not None:
            spans.append((start, previous))
        start = previous = order
    if start is not None:
        spans.append((start, previous))
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return tuple(merged[-MAX_ORIGIN_RANGES:])


def _skip_from(position: ScanCursor | None, ranges: Sequence[OrderRange]) -> ScanCursor | None:
    """``position``, moved past the range it lies in (if any)."""
    order = 0 if position is None else position.receipt_order
    index = bisect.bisect_right([low for low, _ in ranges], order) - 1
    if index >= 0 and ranges[index][0] <= order <= ranges[index][1]:
        return ScanCursor(ranges[index][1], LAST_ID)
    return position


def _next_range(position: ScanCursor | None, ranges: Sequence[OrderRange]) -> OrderRange | None:
    """The first range that starts after ``position``'s order."""
    order = 0 if position is None else position.receipt_order
    index = bisect.bisect_right([low for low, _ in ranges], order)
    return ranges[index] if index < len(ranges) else None


async def scan_ids_skipping(
    store: ContentAddressedStore,
    cursor: ScanCursor | None,
    limit: int,
    skip: Sequence[OrderRange],
) -> IdPage:
    """Up to ``limit`` keys after ``cursor`` whose receipt order is in none of ``skip``.

    The cursor jumps over each range, so a skipped range costs one short local read, not a
    walk through its entries. Every loop turn passes a range, reaches the next one, or ends
    the page.
    """
    ranges = sorted(skip)
    keys: list[OrderKey] = []
    position = cursor
    while True:
        position = _skip_from(position, ranges)
        ahead = _next_range(position, ranges)
        want = limit - len(keys)
        if ahead is not None:
            # Receipt orders are unique: read at most one entry of the range ahead.
            start = 0 if position is None else position.receipt_order
            want = max(1, min(want, ahead[0] - start))
        page = await store.scan_ids_since(position, want)
        jumped = False
        for order, entry_id in page.keys:
            if ahead is not None and order >= ahead[0]:
                position = ScanCursor(ahead[1], LAST_ID)
                jumped = True
                break
            keys.append((order, entry_id))
            position = ScanCursor(order, entry_id)
        if len(keys) >= limit:
            return IdPage(tuple(keys), position, True)
        if not jumped and not (page.has_more and len(page.keys) == want):
            return IdPage(tuple(keys), position, page.has_more)
