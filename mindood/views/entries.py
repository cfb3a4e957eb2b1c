"""The rows of a view: category entries (the tree's inner nodes) and document entries (leaves).

Entries are the view's own nodes, handed out as they are, so reading a position or a count costs
no copy. They stay valid until an update removes them (``in_view()`` turns false). Positions are
1-based per level ("2.1.3": third entry of the first entry of the second top-level entry), counted
over categories and documents alike, and are the same for every reader: a navigator that hides
entries (collapsed, access callback) skips them but does not renumber the rest.

A document whose category value is a list is in the view once per category; each of those rows is
its own entry, all sharing one ``DocRecord`` (origin, id, column values).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mindood.views.columns import LEVEL_SEPARATOR, ColumnSet
from mindood.views.ordering import SortKey
from mindood.views.sortedlist import SortedKeyList
from mindood.views.totals import Total, numeric

#: The origin of category entries (not a data source; refused as one).
CATEGORY_ORIGIN = "virtualview"


class DocRecord:
    """One document of one origin as the view knows it: its column values and its rows."""

    __slots__ = ("doc_id", "entries", "fingerprint", "numbers", "origin", "sort_key", "values")

    def __init__(
        self,
        origin: str,
        doc_id: str,
        values: dict[str, Any],
        fingerprint: str,
        numbers: tuple[int | float | None, ...],
        sort_key: SortKey,
    ) -> None:
        self.origin = origin
        self.doc_id = doc_id
        self.values = values
        #: ``repr(values)``: a strict equality check (1 vs 1.0 vs True) to skip no-op changes.
        self.fingerprint = fingerprint
        #: The document's number for each total column (None when it has none).
        self.numbers = numbers
        self.sort_key = sort_key
        self.entries: list[DocumentEntry] = []


class ViewEntry:
    """What categories and documents have in common: a place in the tree."""

    __slots__ = ("parent", "sort_key")

    def __init__(self, parent: CategoryEntry | None, sort_key: SortKey) -> None:
        self.parent = parent
        self.sort_key = sort_key

    # -- identity ----------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        raise NotImplementedError

    @property
    def doc_id(self) -> str:
        raise NotImplementedError

    @property
    def ident(self) -> tuple[str, str]:
        """``(origin, doc_id)``; categories have ``CATEGORY_ORIGIN`` and a ``cat_<n>`` id."""
        return (self.origin, self.doc_id)

    def is_category(self) -> bool:
        return False

    def is_document(self) -> bool:
        return False

    def is_root(self) -> bool:
        return False

    def in_view(self) -> bool:
        """False once an update removed this entry (or a category it was in)."""
        node: ViewEntry = self
        while node.parent is not None:
            node = node.parent
        return node.is_root()

    # -- place -------------------------------------------------------------------------------
    def get_level(self) -> int:
        """0 for top-level entries, 1 below them, ...; the root is -1."""
        level, node = -1, self
        while node.parent is not None:
            level, node = level + 1, node.parent
        return level

    def get_position(self) -> tuple[int, ...]:
        """1-based index per level, e.g. ``(2, 1, 3)``; ``()`` for the root or a removed entry."""
        if not self.in_view():
            return ()
        parts: list[int] = []
        node: ViewEntry = self
        while node.parent is not None:
            parts.append(node.parent.children.index(node.sort_key) + 1)
            node = node.parent
        return tuple(reversed(parts))

    def get_position_str(self) -> str:
        return ".".join(map(str, self.get_position()))

    def get_sibling_index(self) -> int:
        """1-based index among the parent's children (0 for the root or a removed entry)."""
        if self.parent is None:
            return 0
        return self.parent.children.index(self.sort_key) + 1

    def get_sibling_count(self) -> int:
        return len(self.parent.children) if self.parent is not None else 1

    def get_parent(self) -> CategoryEntry | None:
        """The category above: the root for top-level entries, None for the root itself."""
        return self.parent

    # -- values ------------------------------------------------------------------------------
    def get_column_values(self) -> dict[str, Any]:
        raise NotImplementedError

    def get_column_value(self, name: str) -> Any:
        return self.get_column_values().get(name)

    def get_total_value(self, name: str) -> int | float | None:
        raise NotImplementedError

    def get_category_value(self) -> Any:
        return None

    # -- children (documents have none) --------------------------------------------------------
    def get_child_count(self) -> int:
        return 0

    def get_child_category_count(self) -> int:
        return 0

    def get_child_document_count(self) -> int:
        return 0

    def get_descendant_count(self) -> int:
        return self.get_descendant_category_count() + self.get_descendant_document_count()

    def get_descendant_category_count(self) -> int:
        return 0

    def get_descendant_document_count(self) -> int:
        return 0

    def get_child_entries(self) -> list[ViewEntry]:
        return []

    def get_child_categories(self) -> list[CategoryEntry]:
        return []

    def get_child_documents(self) -> list[DocumentEntry]:
        return []


class CategoryEntry(ViewEntry):
    """A category row (or the invisible root): its value, children, counts and totals."""

    __slots__ = (
        "children",
        "column",
        "columns",
        "descendant_categories",
        "descendant_documents",
        "id",
        "subcategories",
        "totals",
        "value",
    )

    def __init__(
        self,
        parent: CategoryEntry | None,
        sort_key: SortKey,
        *,
        cat_id: str,
        column: int,
        value: Any,
        columns: ColumnSet,
    ) -> None:
        super().__init__(parent, sort_key)
        self.id = cat_id
        #: Index into the view's category columns (-1 for the root).
        self.column = column
        self.value = value
        self.columns = columns
        self.children: SortedKeyList[ViewEntry] = SortedKeyList()
        #: Child categories by ``(column, value)``, to find a document's path without a search.
        self.subcategories: dict[tuple[int, Any], CategoryEntry] = {}
        self.descendant_documents = 0
        self.descendant_categories = 0
        self.totals = [Total() for _ in columns.total]

    def __repr__(self) -> str:
        return f"<CategoryEntry {self.id} {self.value!r}>"

    @property
    def origin(self) -> str:
        return CATEGORY_ORIGIN

    @property
    def doc_id(self) -> str:
        return self.id

    def is_category(self) -> bool:
        return self.column >= 0

    def is_root(self) -> bool:
        return self.column < 0

    def get_category_value(self) -> Any:
        return self.value

    def get_category_path(self) -> str:
        """The values from the top down to this category, joined with ``\\``."""
        parts: list[str] = []
        node: CategoryEntry | None = self
        while node is not None and not node.is_root():
            parts.append(str(node.value))
            node = node.parent
        return LEVEL_SEPARATOR.join(reversed(parts))

    def get_column_values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if self.column >= 0:
            values[self.columns.category[self.column].name] = self.value
        for column, total in zip(self.columns.total, self.totals, strict=True):
            values[column.name] = total.value(column.total_mode)
        return values

    def get_total_value(self, name: str) -> int | float | None:
        for column, total in zip(self.columns.total, self.totals, strict=True):
            if column.name == name:
                return total.value(column.total_mode)
        return None

    def get_child_count(self) -> int:
        return len(self.children)

    def get_child_category_count(self) -> int:
        return len(self.subcategories)

    def get_child_document_count(self) -> int:
        return len(self.children) - len(self.subcategories)

    def get_descendant_category_count(self) -> int:
        return self.descendant_categories

    def get_descendant_document_count(self) -> int:
        return self.descendant_documents

    def get_child_entries(self) -> list[ViewEntry]:
        return list(self.children)

    def get_child_categories(self) -> list[CategoryEntry]:
        return [c for c in self.children if isinstance(c, CategoryEntry)]

    def get_child_documents(self) -> list[DocumentEntry]:
        return [c for c in self.children if isinstance(c, DocumentEntry)]

    def ancestors_and_self(self) -> Iterator[CategoryEntry]:
        node: CategoryEntry | None = self
        while node is not None:
            yield node
            node = node.parent


class DocumentEntry(ViewEntry):
    """A document row: one document of one origin in one category."""

    __slots__ = ("record",)

    def __init__(self, parent: CategoryEntry, record: DocRecord) -> None:
        super().__init__(parent, record.sort_key)
        self.record = record

    def __repr__(self) -> str:
        return f"<DocumentEntry {self.record.origin}/{self.record.doc_id}>"

    @property
    def origin(self) -> str:
        return self.record.origin

    @property
    def doc_id(self) -> str:
        return self.record.doc_id

    def is_document(self) -> bool:
        return True

    def get_column_values(self) -> dict[str, Any]:
        return dict(self.record.values)

    def get_column_value(self, name: str) -> Any:
        return self.record.values.get(name)

    def get_total_value(self, name: str) -> int | float | None:
        return numeric(self.record.values.get(name))
