"""What moved between this node and one peer, per database, in both directions.

Counted at the node's seam with the protocol, where the entries are in hand: *sent* when this
node answered the peer's get with entries, *received* when entries the peer delivered (pulled
by us or pushed by it) passed admission. Sizes are the entries' encrypted payloads; the
connection counts wire bytes separately. A database is *syncing* while a pull of one of its
stores from the peer has not reached the bound it started with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.events import SyncEvent


@dataclass(frozen=True, slots=True)
class DbProgress:
    """One database's running totals with one peer, as status and notifications show them."""

    db: str
    sent: int = 0
    sent_bytes: int = 0
    received: int = 0
    received_bytes: int = 0
    syncing: bool = False
    #: The last pull failure, while it waits for its retry.
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Transferred:
    """A database's totals with one peer changed (entries went either way, or a pull began or
    ended): what ``sync.progress`` tells subscribers."""

    tenant_id: str
    address: str
    identity: str
    progress: DbProgress


#: Everything a ``SyncNode`` tells its listeners: the protocol's news plus the node's own.
NodeEvent = SyncEvent | Transferred


@dataclass(slots=True)
class _Counts:
    sent: int = 0
    sent_bytes: int = 0
    received: int = 0
    received_bytes: int = 0
    pulling: set[str] = field(default_factory=set)


class LinkTraffic:
    """The counters of one session; every method says whether what a user sees changed."""

    def __init__(self) -> None:
        self._dbs: dict[str, _Counts] = {}

    def _of(self, db: str) -> _Counts:
        return self._dbs.setdefault(db, _Counts())

    def sent(self, db: str, entries: int, size: int) -> bool:
        if entries <= 0:
            return False
        counts = self._of(db)
        counts.sent += entries
        counts.sent_bytes += size
        return True

    def received(self, db: str, entries: int, size: int) -> bool:
        if entries <= 0:
            return False
        counts = self._of(db)
        counts.received += entries
        counts.received_bytes += size
        return True

    def pull_moved(self, db: str, store: str, *, done: bool) -> bool:
        """A pull of ``db``'s ``store`` moved on; True when the database started or finished."""
        counts = self._of(db)
        before = bool(counts.pulling)
        if done:
            counts.pulling.discard(store)
        else:
            counts.pulling.add(store)
        return before != bool(counts.pulling)

    def pull_ended(self, db: str) -> bool:
        """A pull of ``db`` failed: it is not running any more (it is retried later)."""
        counts = self._dbs.get(db)
        if counts is None or not counts.pulling:
            return False
        counts.pulling.clear()
        return True

    def syncing(self) -> bool:
        return any(c.pulling for c in self._dbs.values())

    def progress(self, db: str, errors: dict[str, str] | None = None) -> DbProgress:
        counts = self._dbs.get(db) or _Counts()
        return DbProgress(
            db,
            counts.sent,
            counts.sent_bytes,
            counts.received,
            counts.received_bytes,
            bool(counts.pulling),
            (errors or {}).get(db),
        )

    def snapshot(
        self, databases: list[str], errors: dict[str, str] | None = None
    ) -> tuple[DbProgress, ...]:
        """Every database shared with the peer or counted so far, sorted by name."""
        names = sorted({*databases, *self._dbs, *(errors or {})})
        return tuple(self.progress(name, errors) for name in names)


__all__ = ["DbProgress", "LinkTraffic", "NodeEvent", "Transferred"]
