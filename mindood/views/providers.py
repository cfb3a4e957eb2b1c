"""Where a view's documents come from: one data provider per origin, each with its own cursor.

``MindooDBDataProvider`` follows one database's change feed (``iterate_changes_since``) from the
cursor it last committed, so an update reads only documents changed since; each view over several
databases or tenants holds one provider per database, and their cursors are independent. The
provider turns every changed document into an addition (its column values) or a removal (deleted,
no longer readable, or no longer matching the filter) and hands them to the view in batches; the
view applies a batch and only then commits the batch's cursor, so a run stopped halfway (a
callback said stop, or the task was cancelled) leaves view and cursor consistent and the next run
resumes after the last applied document.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mindood.db import ChangeCursor, MindooDB, MindooDoc
from mindood.views.columns import ColumnSet

#: ``doc -> bool``: whether a (non-deleted) document belongs in the view.
DocFilter = Callable[[MindooDoc], bool]


@dataclass(slots=True)
class ViewChange:
    """One batch of changes from one origin: documents to (re)place and documents to drop."""

    origin: str
    additions: dict[str, dict[str, Any]] = field(default_factory=dict)
    removals: set[str] = field(default_factory=set)
    #: Where the provider stands once this batch is applied (None: it keeps no cursor).
    cursor: ChangeCursor | None = None

    @property
    def size(self) -> int:
        return len(self.additions) + len(self.removals)


@dataclass(slots=True)
class ProviderStats:
    """Work done by a provider, for tests and benchmarks that count rather than time."""

    documents_read: int = 0  # documents taken from the change feed
    values_extracted: int = 0  # documents whose column values were computed


class DataProvider(Protocol):
    """What a view needs from a source of documents."""

    origin: str

    async def restarts(self) -> bool:
        """Whether the next pass re-reads everything (its cursor no longer means a position)."""
        ...

    async def count_pending(self) -> int:
        """How many documents the next pass will hand out (for progress reports)."""
        ...

    def changes(self, columns: ColumnSet, batch_size: int) -> AsyncGenerator[ViewChange, None]:
        """The changes since the last committed batch, ``batch_size`` documents at a time."""
        ...

    def commit(self, change: ViewChange) -> None:
        """``change`` has been applied: the next pass starts after it."""
        ...


class MindooDBDataProvider:
    """Documents of one ``MindooDB``, optionally filtered, under one origin name."""

    def __init__(self, origin: str, db: MindooDB, doc_filter: DocFilter | None = None) -> None:
        self.origin = origin
        self.db = db
        self.doc_filter = doc_filter
        self.cursor: ChangeCursor | None = None
        self.stats = ProviderStats()

    def __repr__(self) -> str:
        return f"<MindooDBDataProvider {self.origin} {self.db.tenant_id}/{self.db.db_id}>"

    async def restarts(self) -> bool:
        if self.cursor is None:
            return False
        latest = await self.db.get_latest_change_cursor()
        return (latest.epoch, latest.trust) != (self.cursor.epoch, self.cursor.trust)

    async def count_pending(self) -> int:
        return await self.db.count_changes_since(self.cursor)

    async def changes(
        self, columns: ColumnSet, batch_size: int
    ) -> AsyncGenerator[ViewChange, None]:
        change = ViewChange(self.origin)
        feed = self.db.iterate_changes_since(self.cursor)
        try:
            async for doc, cursor in feed:
                self.stats.documents_read += 1
                doc_id = doc.get_id()
                if doc.is_deleted() or (self.doc_filter is not None and not self.doc_filter(doc)):
                    change.removals.add(doc_id)
                else:
                    change.additions[doc_id] = columns.extract(doc, self.origin)
                    self.stats.values_extracted += 1
                change.cursor = cursor
                if change.size >= batch_size:
                    yield change
                    change = ViewChange(self.origin)
        finally:
            close = getattr(feed, "aclose", None)  # stop the feed now, not at garbage collection
            if close is not None:
                await close()
        if change.size:
            yield change

    def commit(self, change: ViewChange) -> None:
        if change.cursor is not None:
            self.cursor = change.cursor
