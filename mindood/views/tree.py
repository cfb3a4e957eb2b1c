"""The category tree's mutations: rows in, rows out, categories made and dropped, sums kept.

Attaching a batch walks each document's category path (creating categories on the way), hands
each category its new rows in one ``add_many`` (one merge-sort for a first build, bisections for
a handful), and tallies per category how many rows and which numbers arrived, so each category's
counts and totals are carried up to its ancestors once per batch rather than once per row.
Detaching does the reverse, and only after the tallies went up does it drop the categories left
empty (a dropped category no longer reaches its ancestors).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mindood.views.columns import ColumnSet, category_paths
from mindood.views.entries import CategoryEntry, DocRecord, DocumentEntry, ViewEntry
from mindood.views.ordering import sort_key
from mindood.views.totals import Total, numeric


@dataclass(slots=True)
class ViewStats:
    """Running counts of the work applied to the tree (never reset by the view)."""

    documents_added: int = 0
    documents_changed: int = 0  # values changed: old rows out, new rows in
    documents_unchanged: int = 0  # in a batch, but nothing the view shows changed
    documents_removed: int = 0
    entries_inserted: int = 0  # document rows attached
    entries_removed: int = 0  # document rows detached
    categories_created: int = 0
    categories_removed: int = 0


class _Tally:
    """Rows one batch adds to (or takes from) one category, before they go up the tree."""

    __slots__ = ("rows", "totals")

    def __init__(self, totals: int) -> None:
        self.rows = 0
        self.totals = [Total() for _ in range(totals)]

    def count(self, record: DocRecord) -> None:
        self.rows += 1
        for total, number in zip(self.totals, record.numbers, strict=True):
            if number is not None:
                total.add(number)

    def carry_up(self, category: CategoryEntry, sign: int) -> None:
        for node in category.ancestors_and_self():
            node.descendant_documents += sign * self.rows
            for total, part in zip(node.totals, self.totals, strict=True):
                total.merge(part, sign)


class ViewTree:
    """The root, the categories by id, and the operations that change them."""

    def __init__(self, columns: ColumnSet) -> None:
        self.columns = columns
        self.root = CategoryEntry(None, (), cat_id="root", column=-1, value=None, columns=columns)
        self.categories: dict[str, CategoryEntry] = {}
        self.stats = ViewStats()
        self._category_rank = 1 - columns.document_rank
        self._next_category = 0

    def record(
        self, origin: str, doc_id: str, values: dict[str, Any], fingerprint: str
    ) -> DocRecord:
        """A new record: numbers for the totals and the sort key, computed once."""
        columns = self.columns
        numbers = tuple(numeric(values.get(c.name)) for c in columns.total)
        key = (
            columns.document_rank,
            *(sort_key(values.get(c.name), c.descending) for c in columns.sorted),
            origin,
            doc_id,
        )
        return DocRecord(origin, doc_id, values, fingerprint, numbers, key)

    def attach(self, records: Iterable[DocRecord]) -> None:
        """Give each record its rows (one per category path)."""
        pending: defaultdict[CategoryEntry, list[tuple[Any, ViewEntry]]] = defaultdict(list)
        tallies: dict[CategoryEntry, _Tally] = {}
        width = len(self.columns.total)
        for record in records:
            for path in category_paths(self.columns.category, record.values):
                node = self.root
                for ident in path:
                    child = node.subcategories.get(ident)
                    if child is None:
                        child = self._new_category(node, *ident)
                        pending[node].append((child.sort_key, child))
                    node = child
                entry = DocumentEntry(node, record)
                record.entries.append(entry)
                pending[node].append((entry.sort_key, entry))
                tally = tallies.get(node)
                if tally is None:
                    tally = tallies[node] = _Tally(width)
                tally.count(record)
                self.stats.entries_inserted += 1
        for category, pairs in pending.items():
            category.children.add_many(pairs)
        for category, tally in tallies.items():
            tally.carry_up(category, 1)

    def detach(self, records: Iterable[DocRecord]) -> None:
        """Take every row of these records out; drop categories left empty."""
        tallies: dict[CategoryEntry, _Tally] = {}
        width = len(self.columns.total)
        for record in records:
            for entry in record.entries:
                category = entry.parent
                assert category is not None
                category.children.remove(entry.sort_key)
                entry.parent = None
                tally = tallies.get(category)
                if tally is None:
                    tally = tallies[category] = _Tally(width)
                tally.count(record)
                self.stats.entries_removed += 1
            record.entries = []
        for category, tally in tallies.items():
            tally.carry_up(category, -1)
        for category in tallies:
            self._prune(category)

    def _new_category(self, parent: CategoryEntry, column: int, value: Any) -> CategoryEntry:
        definition = self.columns.category[column]
        key = (self._category_rank, sort_key(value, definition.descending), column)
        self._next_category += 1
        child = CategoryEntry(
            parent,
            key,
            cat_id=f"cat_{self._next_category}",
            column=column,
            value=value,
            columns=self.columns,
        )
        parent.subcategories[(column, value)] = child
        self.categories[child.id] = child
        for node in parent.ancestors_and_self():
            node.descendant_categories += 1
        self.stats.categories_created += 1
        return child

    def _prune(self, category: CategoryEntry) -> None:
        """Drop ``category`` and every ancestor that the removal left without children."""
        while category.parent is not None and not category.children:
            parent = category.parent
            parent.children.remove(category.sort_key)
            del parent.subcategories[(category.column, category.value)]
            del self.categories[category.id]
            category.parent = None
            for node in parent.ancestors_and_self():
                node.descendant_categories -= 1
            self.stats.categories_removed += 1
            category = parent
