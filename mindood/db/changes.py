"""The change feed: documents in modification order, resumable from a portable cursor.

Position = the store's own change order. Every store stamps each entry it receives with a
monotonic ``receipt_order`` and keeps it in its (on-disk: persisted) index, together with an
``epoch`` that changes only when the store is wiped. A document's position in the feed is the
receipt order of its newest applicable change; a cursor names the position of the last document
handed out. So the feed needs no index of its own: the store's index *is* the persisted index,
a cursor survives a restart of the process, and resuming costs one bisection plus a scan of the
entries that arrived after the cursor (metadata only), never a walk over the whole database.

Documents are materialised one at a time as the caller iterates, so breaking out early leaves the
rest untouched. Deleted, unreadable (no key) and gone documents come as tombstones.

When a cursor is not resumed (everything is emitted again, from the start):

* the store's epoch changed (wiped or rebuilt: receipt orders start over);
* the trust picture changed (``trust_fingerprint``): a user granted or revoked since may make
  documents visible or invisible *without* any new entry, which a position in the entry order
  cannot express. Such changes are admin actions, hence rare; consumers are idempotent anyway.
  (The reference instead keeps a local sequence it bumps on every visibility change; that needs a
  second persisted index per database, which this port avoids.)

Documents become readable without new entries also when a named key is imported; start the feed
again from ``None`` after importing one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mindood.db.errors import InvalidCursorError
from mindood.db.trust import TrustPolicy, trust_fingerprint
from store.base import ContentAddressedStore, ScanCursor, ScanFilters
from store.entry import REPLAY_ENTRY_TYPES

#: Sorts after every entry id that shares a receipt order: ids are printable ASCII (``check_id``).
_AFTER_EVERY_ID = "\x7f"
_REPLAY = ScanFilters(entry_types=REPLAY_ENTRY_TYPES)


@dataclass(frozen=True, slots=True, order=True)
class ChangeCursor:
    """Where a change feed stands: after document ``doc_id`` changed at ``receipt_order``.

    ``epoch`` and ``trust`` say under which store epoch and trust picture the position holds.
    ``encode()`` gives a short string to persist; ``ChangeCursor.decode`` reads it back.
    """

    epoch: str
    receipt_order: int
    doc_id: str
    trust: str

    def encode(self) -> str:
        return json.dumps(
            [1, self.epoch, self.receipt_order, self.doc_id, self.trust], separators=(",", ":")
        )

    @classmethod
    def decode(cls, text: str) -> ChangeCursor:
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise InvalidCursorError("a change cursor must be the JSON from encode()") from exc
        if (
            not isinstance(value, list)
            or len(value) != 5
            or value[0] != 1
            or not all(isinstance(v, str) for v in (value[1], value[3], value[4]))
            or not isinstance(value[2], int)
            or isinstance(value[2], bool)
            or value[2] < 0
        ):
            raise InvalidCursorError("not a change cursor of a known version")
        return cls(value[1], value[2], value[3], value[4])


@dataclass(frozen=True, slots=True, order=True)
class FeedPosition:
    """A document's place in the feed: its newest applicable change (order, then entry id)."""

    receipt_order: int
    doc_id: str
    entry_id: str


@dataclass(frozen=True, slots=True)
class ChangeWindow:
    """The documents changed after a cursor, up to the store's head when it was asked."""

    epoch: str
    trust: str
    positions: tuple[FeedPosition, ...]
    head: int

    def cursor_at(self, position: FeedPosition) -> ChangeCursor:
        return ChangeCursor(self.epoch, position.receipt_order, position.doc_id, self.trust)

    def end_cursor(self) -> ChangeCursor:
        """The position after everything in this window (and any entry the window skipped)."""
        return ChangeCursor(self.epoch, self.head, "", self.trust)


def resumable(cursor: ChangeCursor | None, epoch: str, trust: str) -> bool:
    """Whether ``cursor`` still means a position in this store under this trust picture."""
    return cursor is not None and cursor.epoch == epoch and cursor.trust == trust


async def changed_since(
    store: ContentAddressedStore,
    trust: TrustPolicy,
    cursor: ChangeCursor | None,
    page_size: int = 2000,
) -> ChangeWindow:
    """Which documents changed after ``cursor``, in feed order, from metadata alone."""
    head = await store.get_store_head()
    token = trust_fingerprint(trust)
    start: ScanCursor | None = None
    if cursor is not None and resumable(cursor, head.epoch, token):
        if cursor.receipt_order >= head.max_receipt_order:
            return ChangeWindow(head.epoch, token, (), head.max_receipt_order)
        start = ScanCursor(cursor.receipt_order, _AFTER_EVERY_ID)
    latest: dict[str, FeedPosition] = {}
    applies = trust.applies
    bound = head.max_receipt_order
    done = False
    while not done:
        page = await store.scan_entries_since(start, page_size, _REPLAY)
        for meta in page.entries:
            if meta.receipt_order > bound:
                done = True  # arrived after we looked at the head: the next call's business
                break
            if applies(meta):  # pages ascend: the last one seen is the newest
                latest[meta.doc_id] = FeedPosition(meta.receipt_order, meta.doc_id, meta.id)
        start = page.next_cursor
        done = done or not page.has_more
    positions = tuple(sorted(latest.values()))
    return ChangeWindow(head.epoch, token, positions, bound)
