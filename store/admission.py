"""What a store checks before it keeps an entry, and how it reports a refusal.

A store runs the cheap, key-free checks itself: the payload is within the tenant-wide
``MAX_ENTRY_BYTES`` (``store.limits``: a larger entry could never sync), the id agrees with type,
document and attachment (``check_metadata_consistency``), ``encrypted_size`` is the payload
length, and ``content_hash`` is the payload's SHA-256. The author signature is the sync
layer's check, made before entries reach ``put_entries``; stores do not repeat it.

A refused entry does not fail its batch: it is reported as ``(id, reason)`` in
``PutResult.rejected`` and the rest is stored. ``BatchAdmission`` gives every backend the same
bookkeeping, including "an id twice in one batch is stored once".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from store.base import PutResult
from store.entry import StoreEntry, content_hash
from store.errors import StoreError
from store.limits import oversize_reason
from store.signing import check_metadata_consistency

#: Longest id quoted back in a rejection (a forged id may be huge).
_MAX_REPORTED_ID = 512


def rejection_reason(entry: StoreEntry) -> str | None:
    """Why a store must refuse ``entry``, or ``None`` if it may keep it."""
    meta = entry.metadata
    too_large = oversize_reason(meta.entry_type, len(entry.encrypted_data))
    if too_large is not None:
        return too_large  # before hashing: a huge payload costs no more than its length
    try:
        check_metadata_consistency(meta)
    except StoreError as exc:
        return str(exc)
    if meta.encrypted_size != len(entry.encrypted_data):
        return (
            f"encryptedSize {meta.encrypted_size} does not match the payload length "
            f"{len(entry.encrypted_data)}"
        )
    if content_hash(entry.encrypted_data) != meta.content_hash:
        return "contentHash does not match the payload"
    return None


class BatchAdmission:
    """Sorts one ``put_entries`` batch into new, already present and refused entries.

    ``exists`` answers for ids stored before this batch; ids admitted earlier in the same batch
    count as present too. Existing ids are not re-checked (an entry is never overwritten, so
    a second copy, valid or not, changes nothing).
    """

    def __init__(self, exists: Callable[[str], bool]) -> None:
        self._exists = exists
        self._admitted: set[str] = set()
        self._stored: list[str] = []
        self._existing: list[str] = []
        self._rejected: list[tuple[str, str]] = []

    def admit(self, entries: Sequence[StoreEntry]) -> Iterator[StoreEntry]:
        """Yield, in batch order, the entries to store; everything else is recorded."""
        for entry in entries:
            entry_id = entry.metadata.id
            if entry_id in self._admitted or self._exists(entry_id):
                self._existing.append(entry_id)
                continue
            reason = rejection_reason(entry)
            if reason is not None:
                self._rejected.append((entry_id[:_MAX_REPORTED_ID], reason))
                continue
            self._admitted.add(entry_id)
            self._stored.append(entry_id)
            yield entry

    def result(self, orders: Sequence[int] = ()) -> PutResult:
        """The outcome; ``orders``: the receipt order the store gave each admitted entry."""
        return PutResult(
            tuple(self._stored), tuple(self._existing), tuple(self._rejected), tuple(orders)
        )
