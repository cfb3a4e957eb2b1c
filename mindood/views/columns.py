"""What a view shows: its columns, how each is sorted or totalled, and where its values come from.

A column reads a document field of its name (or ``field``, dotted for nested maps) unless it has a
``value_function``, which receives the document, the values of the columns before it and the
origin. Category columns turn their value into category levels: a ``\\``-separated string is a
path of nested levels, a list places the document in several categories, and an empty value
(None, "", []) puts the document directly into the category above (see ``category_paths``).
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mindood.db import MindooDoc
from mindood.errors import MindoodError

#: ``(doc, values of the earlier columns, origin) -> value``
ValueFunction = Callable[[MindooDoc, Mapping[str, Any], str], Any]

#: The separator of nested category levels inside one category value.
LEVEL_SEPARATOR = "\\"


class ViewDefinitionError(MindoodError):
    """A view was defined inconsistently (duplicate column, no source, unknown origin...)."""


class ColumnSorting(enum.Enum):
    NONE = "none"
    ASCENDING = "ascending"
    DESCENDING = "descending"


class TotalMode(enum.Enum):
    NONE = "none"
    SUM = "sum"
    AVERAGE = "average"


class CategorizationStyle(enum.Enum):
    """Where a category's own documents go among its subcategories."""

    DOCUMENT_THEN_CATEGORY = "document_then_category"
    CATEGORY_THEN_DOCUMENT = "category_then_document"


class ColumnRole(enum.Enum):
    CATEGORY = "category"
    SORTED = "sorted"
    DISPLAY = "display"
    TOTAL = "total"


@dataclass(frozen=True, slots=True)
class ViewColumn:
    """One column. ``field`` defaults to ``name``; ``value_function`` wins over ``field``."""

    name: str
    role: ColumnRole
    sorting: ColumnSorting = ColumnSorting.NONE
    total_mode: TotalMode = TotalMode.NONE
    title: str | None = None
    field: str | None = None
    value_function: ValueFunction | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ViewDefinitionError("a column needs a name")
        if self.role is ColumnRole.TOTAL and self.total_mode is TotalMode.NONE:
            raise ViewDefinitionError(f"total column {self.name!r} needs SUM or AVERAGE")

    @property
    def descending(self) -> bool:
        return self.sorting is ColumnSorting.DESCENDING

    def value_of(self, doc: MindooDoc, values: Mapping[str, Any], origin: str) -> Any:
        if self.value_function is not None:
            return self.value_function(doc, values, origin)
        return field_value(doc.get_data(), self.field or self.name)

    def get_title(self) -> str:
        return self.title or self.name


def field_value(data: Mapping[str, Any], field: str) -> Any:
    """``data[field]``; a dotted name reaches into nested maps when no such key exists."""
    if field in data:
        return data[field]
    value: Any = data
    for part in field.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


class ColumnSet:
    """The columns of one view by role, and the per-document work they imply."""

    __slots__ = ("all", "by_name", "category", "sorted", "style", "total")

    def __init__(self, columns: Sequence[ViewColumn], style: CategorizationStyle) -> None:
        names = [c.name for c in columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ViewDefinitionError(f"duplicate column names: {duplicates}")
        self.all = tuple(columns)
        self.by_name = {c.name: c for c in columns}
        self.category = tuple(c for c in columns if c.role is ColumnRole.CATEGORY)
        self.sorted = tuple(
            c
            for c in columns
            if c.role is ColumnRole.SORTED and c.sorting is not ColumnSorting.NONE
        )
        self.total = tuple(c for c in columns if c.role is ColumnRole.TOTAL)
        self.style = style

    def extract(self, doc: MindooDoc, origin: str) -> dict[str, Any]:
        """Every column's value for ``doc``, in column order (value functions see earlier ones)."""
        values: dict[str, Any] = {}
        for column in self.all:
            values[column.name] = column.value_of(doc, values, origin)
        return values

    @property
    def document_rank(self) -> int:
        """First element of a document's sort key (categories get the other of 0 and 1)."""
        return 0 if self.style is CategorizationStyle.DOCUMENT_THEN_CATEGORY else 1


def _levels(value: Any) -> list[tuple[Any, ...]]:
    """The alternative level paths one category value stands for (one per list element)."""
    if value is None:
        return [()]
    if isinstance(value, list | tuple):
        found = list(itertools.chain.from_iterable(_levels(v) for v in value))
        return found or [()]
    if isinstance(value, str):
        return [tuple(part for part in value.split(LEVEL_SEPARATOR) if part)]
    if isinstance(value, Mapping):  # unhashable and meaningless as a heading: show it as text
        return [(repr(value),)]
    return [(value,)]


def category_paths(
    columns: Sequence[ViewColumn], values: Mapping[str, Any]
) -> list[tuple[tuple[int, Any], ...]]:
    """Every category path a document belongs to: levels of ``(category column index, value)``.

    The cross product over the category columns, duplicates removed in first-seen order: a
    department list ``["Sales", "Support\\\\EMEA"]`` and year 2024 give
    ``((0, "Sales"), (1, 2024))`` and ``((0, "Support"), (0, "EMEA"), (1, 2024))``.
    """
    # Most documents have one value per column: one path, no product needed.
    single: list[tuple[int, Any]] = []
    for index, column in enumerate(columns):
        value = values.get(column.name)
        if isinstance(value, list | tuple):
            return _product_paths(columns, values)
        single.extend((index, part) for part in _levels(value)[0])
    return [tuple(single)]


def _product_paths(
    columns: Sequence[ViewColumn], values: Mapping[str, Any]
) -> list[tuple[tuple[int, Any], ...]]:
    per_column: list[list[tuple[tuple[int, Any], ...]]] = []
    for index, column in enumerate(columns):
        alternatives = _levels(values.get(column.name))
        per_column.append([tuple((index, part) for part in alt) for alt in alternatives])
    paths: dict[tuple[tuple[int, Any], ...], None] = {}
    for combo in itertools.product(*per_column):
        path = tuple(itertools.chain.from_iterable(combo))
        paths.setdefault(path, None)
    return list(paths)


def column_names(columns: Iterable[ViewColumn]) -> list[str]:
    return [c.name for c in columns]
