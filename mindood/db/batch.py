"""What the batch calls of ``MindooDB`` share: the input they take and how they fail.

A batch (``create_documents``, ``change_docs``, ``get_documents``) still gives every document
its own Automerge change, encryption, signature and trust check, but stores all of them with one
``put_entries`` (one durable commit) and reads them with one metadata and one payload query.
A batch that fails for one document writes nothing; the error is the library's usual type with
the document's place and id in front of its message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mindood.errors import MindoodError
from store.errors import StoreError

#: The errors a batch names the document in: the library's and the store layer's own.
NAMED_ERRORS = (MindoodError, StoreError)

#: Documents a batch read materialises per store round trip (bounds memory, not semantics).
READ_SLICE = 500
#: The first slice of a batch read: the store reads it while nothing else can run yet, and
#: each next slice is read while the one before is decrypted and loaded, which takes several
#: times longer than reading it; so slices start small and grow (``read_slices``).
FIRST_READ_SLICE = 64


def read_slices(doc_ids: list[str]) -> list[list[str]]:
    """``doc_ids`` in slices of ``FIRST_READ_SLICE``, then four times the slice before, up to
    ``READ_SLICE``."""
    slices: list[list[str]] = []
    size, start = FIRST_READ_SLICE, 0
    while start < len(doc_ids):
        slices.append(doc_ids[start : start + size])
        start += size
        size = min(READ_SLICE, size * 4)
    return slices


@dataclass(frozen=True, slots=True)
class NewDocument:
    """One document of ``create_documents``: its fields and, optionally, a custom id and key."""

    data: Mapping[str, Any] = field(default_factory=dict)
    doc_id: str | None = None
    key_id: str = "default"
    assume_unique_id: bool = False


def new_documents(items: Iterable[NewDocument | Mapping[str, Any] | None]) -> list[NewDocument]:
    """``create_documents`` input as ``NewDocument``s (a plain mapping is a document's fields)."""
    return [
        item if isinstance(item, NewDocument) else NewDocument(dict(item or {})) for item in items
    ]


def named(exc: BaseException, index: int, doc_id: str) -> BaseException:
    """``exc`` with ``documents[index] 'doc_id': `` in front of its message, type unchanged.

    Library errors keep their class (and so their RPC code); only the message says which
    document of the batch it was.
    """
    if isinstance(exc, NAMED_ERRORS) and exc.args and isinstance(exc.args[0], str):
        prefix = f"documents[{index}] {doc_id!r}: "
        if not exc.args[0].startswith(prefix):
            exc.args = (prefix + exc.args[0], *exc.args[1:])
            if isinstance(getattr(exc, "message", None), str):  # RPC errors answer with it
                setattr(exc, "message", exc.args[0])  # noqa: B010
    return exc


class holding:  # lower case: used as the function it replaced, ``async with holding(...)``
    """Hold the locks of ``doc_ids``, taken in sorted order so two batches cannot deadlock.

    A plain class, not an ``asynccontextmanager`` or an ``AsyncExitStack``: a batch of 1,000
    documents takes 1,000 locks, and a lone write (one lock, or none for a new generated id)
    pays the generator's bookkeeping on every call; both showed in profiles.
    """

    __slots__ = ("_ids", "_locks", "_taken")

    def __init__(self, locks: Callable[[str], asyncio.Lock], doc_ids: Sequence[str]) -> None:
        self._locks = locks
        self._ids = doc_ids
        self._taken: list[asyncio.Lock] = []

    async def __aenter__(self) -> None:
        ids = self._ids
        try:
            for doc_id in ids if len(ids) < 2 else sorted(set(ids)):
                lock = self._locks(doc_id)
                await lock.acquire()
                self._taken.append(lock)
        except BaseException:
            self._release()
            raise

    async def __aexit__(self, *exc: object) -> None:
        self._release()

    def _release(self) -> None:
        taken, self._taken = self._taken, []
        for lock in reversed(taken):
            lock.release()


__all__ = [
    "FIRST_READ_SLICE",
    "NAMED_ERRORS",
    "READ_SLICE",
    "NewDocument",
    "holding",
    "named",
    "new_documents",
    "read_slices",
]
