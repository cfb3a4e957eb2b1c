"""Cursor pages over a store's ``(receipt_order, id)`` order (reference-formats §3.4).

Backend-neutral: a store hands in one or more lists of ``OrderKey`` kept sorted (its whole
order, or a per-document or per-type slice of it) and a way to look metadata up by id, and gets
a ``ScanPage`` back. Positioning on the cursor is a bisection, so a page costs
O(log n + entries looked at), never a walk from the start.

Typical use by a backend that keeps ``all_keys``, ``doc_keys`` and ``type_keys``::

    keys = candidate_keys(cursor, filters, all_keys, doc_keys, type_keys)
    return collect_page(keys, metadata_by_id.get, cursor, limit, filters)

Semantics (shared by every backend, checked by the conformance suite):

- the cursor is exclusive: a page starts strictly after ``(cursor.receipt_order, cursor.id)``,
  ids compared by code point; ``None`` starts at the beginning. A cursor need not name an entry
  that still exists (it may have been purged).
- ``next_cursor`` is the position of the last entry returned, or the input cursor when the page
  is empty, so a caller can always store it and resume.
- ``has_more`` is exact: true only if another entry after the page matches the filters. Finding
  that out may look past the page until the next match, so backends should pass the narrowest
  key lists they have (``candidate_keys`` picks them).
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from store.base import ScanCursor, ScanFilters, ScanPage
from store.entry import EntryMetadata, EntryType

#: A position in a store's order: ``(receipt_order, id)``; tuples compare exactly as required.
OrderKey = tuple[int, str]

#: Looks one id up; ``None`` means the id is gone (the key is then skipped).
MetadataLookup = Callable[[str], EntryMetadata | None]


def order_key(meta: EntryMetadata) -> OrderKey:
    """The position of stored metadata in its store's order."""
    return (meta.receipt_order, meta.id)


def cursor_key(cursor: ScanCursor) -> OrderKey:
    return (cursor.receipt_order, cursor.id)


def keys_after(keys: Sequence[OrderKey], cursor: ScanCursor | None) -> Iterator[OrderKey]:
    """The keys of a sorted sequence strictly after ``cursor``, lazily and without copying.

    The sequence must not change while the iterator is in use (within one synchronous page).
    """
    start = 0 if cursor is None else bisect.bisect_right(keys, cursor_key(cursor))
    for index in range(start, len(keys)):
        yield keys[index]


def merge_keys_after(
    key_lists: Iterable[Sequence[OrderKey]], cursor: ScanCursor | None
) -> Iterator[OrderKey]:
    """Keys after ``cursor`` from several sorted, disjoint sequences, in one sorted stream."""
    iterators = [keys_after(keys, cursor) for keys in key_lists]
    if len(iterators) == 1:
        return iterators[0]
    return heapq.merge(*iterators)


def candidate_keys(
    cursor: ScanCursor | None,
    filters: ScanFilters | None,
    all_keys: Sequence[OrderKey],
    doc_keys: Mapping[str, Sequence[OrderKey]] | None = None,
    type_keys: Mapping[EntryType, Sequence[OrderKey]] | None = None,
) -> Iterator[OrderKey]:
    """Keys after ``cursor`` from the narrowest index that covers ``filters``.

    A document filter uses that document's keys; else an entry-type filter merges the keys of
    each wanted type; else the whole order. The result is a superset of the matching keys:
    ``collect_page`` still applies every filter.
    """
    if filters is not None and filters.doc_id is not None and doc_keys is not None:
        return keys_after(doc_keys.get(filters.doc_id, ()), cursor)
    if filters is not None and filters.entry_types is not None and type_keys is not None:
        wanted = sorted(filters.entry_types)  # a fixed order keeps merges deterministic
        return merge_keys_after((type_keys.get(t, ()) for t in wanted), cursor)
    return keys_after(all_keys, cursor)


def collect_page(
    keys: Iterable[OrderKey],
    lookup: MetadataLookup,
    cursor: ScanCursor | None,
    limit: int,
    filters: ScanFilters | None = None,
) -> ScanPage:
    """Up to ``limit`` matching metadata from ``keys`` (already positioned after ``cursor``)."""
    if limit < 1:
        raise ValueError(f"a scan limit must be at least 1, got {limit}")
    page: list[EntryMetadata] = []
    for _order, entry_id in keys:
        meta = lookup(entry_id)
        if meta is None or (filters is not None and not filters.matches(meta)):
            continue
        if len(page) == limit:
            last = page[-1]
            return ScanPage(tuple(page), ScanCursor(last.receipt_order, last.id), has_more=True)
        page.append(meta)
    if not page:
        return ScanPage((), cursor, has_more=False)
    last = page[-1]
    return ScanPage(tuple(page), ScanCursor(last.receipt_order, last.id), has_more=False)


def scan_page(
    all_keys: Sequence[OrderKey],
    lookup: MetadataLookup,
    cursor: ScanCursor | None,
    limit: int,
    filters: ScanFilters | None = None,
    *,
    doc_keys: Mapping[str, Sequence[OrderKey]] | None = None,
    type_keys: Mapping[EntryType, Sequence[OrderKey]] | None = None,
) -> ScanPage:
    """``candidate_keys`` then ``collect_page``: one call for a backend's whole scan."""
    keys = candidate_keys(cursor, filters, all_keys, doc_keys, type_keys)
    return collect_page(keys, lookup, cursor, limit, filters)
