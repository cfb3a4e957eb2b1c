"""``VirtualView``: a categorized, sorted, totalled tree of documents from one or more origins.

The tree is kept, never rebuilt: a batch of changes from a provider detaches the rows of removed
and changed documents (subtracting them from their categories' counts and totals and dropping
categories left empty) and attaches the rows of new and changed documents (creating categories on
the way, adding to counts and totals). A changed document whose column values did not change is
skipped outright. So the work of an update is proportional to the documents that changed, and
``stats`` counts it, which is how tests show that an update touched only what it had to.

Documents are keyed by ``(origin, doc_id)``: the same id in two databases is two documents.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from mindood.db import ChangeCursor
from mindood.views.columns import (
    LEVEL_SEPARATOR,
    ColumnSet,
    ViewColumn,
    ViewDefinitionError,
)
from mindood.views.entries import (
    CATEGORY_ORIGIN,
    CategoryEntry,
    DocRecord,
    DocumentEntry,
    ViewEntry,
)
from mindood.views.providers import DataProvider, MindooDBDataProvider, ViewChange
from mindood.views.state import OriginState, ViewState, ViewStateError
from mindood.views.tree import ViewTree

log = logging.getLogger("mindood.views")

DEFAULT_APPLY_BATCH = 1000


@dataclass(frozen=True, slots=True)
class UpdateProgress:
    """Reported after each applied batch; ``total`` was counted when the origin's pass began."""

    origin: str
    processed: int
    total: int


#: Return False to stop the update after the batch just applied.
ProgressCallback = Callable[[UpdateProgress], bool | None]


@dataclass(slots=True)
class UpdateResult:
    processed: int = 0  # documents handed in by the providers
    completed: bool = True  # False when a progress callback stopped the run


class VirtualView:
    """The view. Build it with ``VirtualViewFactory.create_view()``; read it with a navigator."""

    def __init__(self, columns: ColumnSet, providers: Sequence[DataProvider]) -> None:
        origins = [p.origin for p in providers]
        if len(set(origins)) != len(origins):
            raise ViewDefinitionError(f"origins must be unique: {origins}")
        if CATEGORY_ORIGIN in origins:
            raise ViewDefinitionError(f"origin {CATEGORY_ORIGIN!r} is reserved for categories")
        self._columns = columns
        self._providers = {p.origin: p for p in providers}
        self._tree = ViewTree(columns)
        self._root = self._tree.root
        self._categories = self._tree.categories
        self._records: dict[tuple[str, str], DocRecord] = {}
        #: Origins in a full re-read (cursor invalidated): ids seen so far in that pass.
        self._restarting: dict[str, set[str]] = {}
        self._lock = asyncio.Lock()
        self.stats = self._tree.stats
        #: Bumped whenever the tree changes; navigators drop their caches when it moves.
        self.version = 0

    # -- definition --------------------------------------------------------------------------
    @property
    def columns(self) -> ColumnSet:
        return self._columns

    def get_columns(self) -> list[ViewColumn]:
        return list(self._columns.all)

    def get_category_columns(self) -> list[ViewColumn]:
        return list(self._columns.category)

    def get_sort_columns(self) -> list[ViewColumn]:
        return list(self._columns.sorted)

    def get_total_columns(self) -> list[ViewColumn]:
        return list(self._columns.total)

    def get_origins(self) -> list[str]:
        return list(self._providers)

    def get_provider(self, origin: str) -> DataProvider:
        try:
            return self._providers[origin]
        except KeyError:
            raise ViewDefinitionError(f"the view has no origin {origin!r}") from None

    # -- reading -----------------------------------------------------------------------------
    def get_root(self) -> CategoryEntry:
        return self._root

    def document_count(self) -> int:
        """Documents in the view (a document in several categories counts once)."""
        return len(self._records)

    def get_entries(self, origin: str, doc_id: str) -> list[DocumentEntry]:
        """The rows of one document (several when a category value was a list)."""
        record = self._records.get((origin, doc_id))
        return list(record.entries) if record is not None else []

    def get_category(self, cat_id: str) -> CategoryEntry | None:
        """A category by its id (``entry.doc_id`` of a category entry), while it exists."""
        return self._categories.get(cat_id)

    def find_entry(self, origin: str, doc_id: str) -> ViewEntry | None:
        """A category (``CATEGORY_ORIGIN``) or the first row of a document, by identity."""
        if origin == CATEGORY_ORIGIN:
            return self._categories.get(doc_id)
        record = self._records.get((origin, doc_id))
        return record.entries[0] if record is not None and record.entries else None

    def find_category(self, path: str | Sequence[Any]) -> CategoryEntry | None:
        """The category at ``path``: ``"Sales\\\\2024"`` or ``["Sales", 2024]``.

        String parts also match non-string category values by their text ("2024" finds 2024).
        """
        parts: Sequence[Any] = (
            [p for p in path.split(LEVEL_SEPARATOR) if p] if isinstance(path, str) else path
        )
        node = self._root
        for part in parts:
            found = self._subcategory(node, part)
            if found is None:
                return None
            node = found
        return node

    def entry_at(self, position: str | Sequence[int]) -> ViewEntry | None:
        """The entry at a 1-based position such as ``"1.2.3"``, or None."""
        try:
            indexes = (
                [int(p) for p in position.split(".") if p]
                if isinstance(position, str)
                else list(position)
            )
        except ValueError:
            return None
        node: ViewEntry = self._root
        for index in indexes:
            if not isinstance(node, CategoryEntry) or not 1 <= index <= len(node.children):
                return None
            node = node.children[index - 1]
        return None if node is self._root else node

    def _subcategory(self, node: CategoryEntry, part: Any) -> CategoryEntry | None:
        for column in range(len(self._columns.category)):
            found = node.subcategories.get((column, part))
            if found is not None:
                return found
        text = str(part)
        for (_, value), child in node.subcategories.items():
            if str(value) == text:
                return child
        return None

    # -- updating ----------------------------------------------------------------------------
    async def update(
        self,
        *,
        apply_batch_size: int = DEFAULT_APPLY_BATCH,
        on_progress: ProgressCallback | None = None,
    ) -> UpdateResult:
        """Bring every origin up to date; only documents changed since the last run are read."""
        result = UpdateResult()
        async with self._lock:
            for origin in self._providers:
                if not await self._update_origin(origin, apply_batch_size, on_progress, result):
                    result.completed = False
                    break
        return result

    async def update_origin(
        self,
        origin: str,
        *,
        apply_batch_size: int = DEFAULT_APPLY_BATCH,
        on_progress: ProgressCallback | None = None,
    ) -> UpdateResult:
        """Bring one origin up to date."""
        self.get_provider(origin)
        result = UpdateResult()
        async with self._lock:
            result.completed = await self._update_origin(
                origin, apply_batch_size, on_progress, result
            )
        return result

    async def _update_origin(
        self,
        origin: str,
        batch_size: int,
        on_progress: ProgressCallback | None,
        result: UpdateResult,
    ) -> bool:
        provider = self._providers[origin]
        if await provider.restarts():
            # Store wiped or trust changed: the feed re-reads everything, and documents it no
            # longer mentions must go. Remember what the pass saw, across interrupted runs.
            log.info("view origin re-reads all documents", extra={"origin": origin})
            self._restarting[origin] = set()
        seen = self._restarting.get(origin)
        total = await provider.count_pending() if on_progress is not None else 0
        processed = 0
        async with aclosing(provider.changes(self._columns, max(1, batch_size))) as batches:
            async for change in batches:
                if seen is not None:
                    seen.update(change.additions)
                    seen.update(change.removals)
                self.apply_changes(change)
                provider.commit(change)
                processed += change.size
                result.processed += change.size
                progress = UpdateProgress(origin, processed, total)
                if on_progress is not None and on_progress(progress) is False:
                    return False
        if seen is not None:
            gone = {doc_id for (o, doc_id) in self._records if o == origin} - seen
            self.apply_changes(ViewChange(origin, removals=gone))
            del self._restarting[origin]
        return True

    def cursor_of(self, origin: str) -> ChangeCursor | None:
        """The committed change cursor of a MindooDB origin (None for other providers)."""
        cursor = getattr(self.get_provider(origin), "cursor", None)
        return cursor if isinstance(cursor, ChangeCursor) else None

    # -- saving and restoring ----------------------------------------------------------------
    def export_state(self) -> ViewState:
        """The documents' column values and each origin's cursor, to restore without reading.

        Only views over MindooDB origins have cursors to resume from. An origin in the middle of
        a full re-read is exported empty and from the start, since what the pass has not reached
        yet may be gone. The values are the view's own (not copies): pack them before the next
        update.
        """
        origins: dict[str, OriginState] = {}
        documents: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in self._providers}
        for (origin, doc_id), record in self._records.items():
            documents[origin][doc_id] = record.values
        for origin, provider in self._providers.items():
            if not isinstance(provider, MindooDBDataProvider):
                raise ViewStateError(f"origin {origin!r} keeps no change cursor to resume from")
            if origin in self._restarting:
                origins[origin] = OriginState(None, {})
            else:
                origins[origin] = OriginState(provider.cursor, documents[origin])
        return ViewState(origins)

    async def restore_state(
        self, state: ViewState, *, apply_batch_size: int = DEFAULT_APPLY_BATCH
    ) -> int:
        """Fill a view that has never been updated from ``state``; returns the documents restored.

        Applied in batches, yielding between them, so a large view does not hold up the event
        loop. The next ``update()`` reads only what changed after the saved cursors (everything,
        if a cursor no longer applies: the store was wiped or trust changed since).
        """
        async with self._lock:
            if self._records or any(self.cursor_of(o) is not None for o in self._providers):
                raise ViewStateError("a state is restored only into a view that was never updated")
            if set(state.origins) != set(self._providers):
                raise ViewStateError(
                    f"the state's origins {sorted(state.origins)} are not the view's "
                    f"{sorted(self._providers)}"
                )
            names = {c.name for c in self._columns.all}
            for origin, part in state.origins.items():
                if not isinstance(self._providers[origin], MindooDBDataProvider):
                    raise ViewStateError(f"origin {origin!r} keeps no change cursor to resume from")
                if any(set(values) != names for values in part.documents.values()):
                    raise ViewStateError(f"origin {origin!r}: saved values do not fit the columns")
            step = max(1, apply_batch_size)
            for origin, part in state.origins.items():
                provider = self._providers[origin]
                assert isinstance(provider, MindooDBDataProvider)
                items = list(part.documents.items())
                for start in range(0, len(items), step):
                    additions = {
                        doc_id: dict(values) for doc_id, values in items[start : start + step]
                    }
                    self.apply_changes(ViewChange(origin, additions=additions))
                    await asyncio.sleep(0)
                provider.cursor = part.cursor
            return state.document_count()

    # -- applying ----------------------------------------------------------------------------
    def apply_changes(self, change: ViewChange) -> None:
        """Apply one batch: removals, then additions (a changed document is both)."""
        origin, stats, tree = change.origin, self.stats, self._tree
        if origin not in self._providers:
            raise ViewDefinitionError(f"the view has no origin {origin!r}")
        before = (stats.documents_added, stats.documents_changed, stats.documents_removed)
        leaving: list[DocRecord] = []
        for doc_id in change.removals:
            record = self._records.pop((origin, doc_id), None)
            if record is not None:
                leaving.append(record)
                stats.documents_removed += 1
        fresh: list[DocRecord] = []
        for doc_id, values in change.additions.items():
            fingerprint = repr(values)
            old = self._records.get((origin, doc_id))
            if old is not None:
                if old.fingerprint == fingerprint:
                    stats.documents_unchanged += 1
                    continue
                leaving.append(old)
                stats.documents_changed += 1
            else:
                stats.documents_added += 1
            record = tree.record(origin, doc_id, values, fingerprint)
            self._records[(origin, doc_id)] = record
            fresh.append(record)
        tree.detach(leaving)
        tree.attach(fresh)
        if before != (stats.documents_added, stats.documents_changed, stats.documents_removed):
            self.version += 1
