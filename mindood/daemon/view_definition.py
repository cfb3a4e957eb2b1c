"""A view as defined over RPC: data, not code, so it can be checked, saved and read back.

Columns name document fields (dotted for nested maps); a source names a tenant's database and a
``where`` map of field values a document must all have. The same parser reads a ``view.define``
request and a definition saved on disk, so a saved definition passes every check a new one does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack

from mindood.daemon.params import Params
from mindood.db import MindooDB, MindooDoc
from mindood.rpc.errors import InvalidParamsError
from mindood.views import (
    CategorizationStyle,
    ColumnRole,
    ColumnSorting,
    TotalMode,
    ViewColumn,
    ViewDefinitionError,
    VirtualView,
    VirtualViewFactory,
)
from mindood.views.columns import field_value

MAX_COLUMNS = 64
MAX_SOURCES = 32
MAX_WHERE = 32
DEFAULT_STYLE = CategorizationStyle.DOCUMENT_THEN_CATEGORY


@dataclass(frozen=True, slots=True)
class ViewSource:
    origin: str
    tenant: str
    db: str
    where: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ViewDefinition:
    columns: tuple[ViewColumn, ...]
    sources: tuple[ViewSource, ...]
    style: CategorizationStyle

    @property
    def home_tenant(self) -> str:
        """The tenant that keeps the view's files: its first source's."""
        return self.sources[0].tenant

    def tenants(self) -> list[str]:
        return sorted({s.tenant for s in self.sources})

    def source_of(self, origin: str) -> ViewSource | None:
        return next((s for s in self.sources if s.origin == origin), None)

    def to_wire(self) -> dict[str, Any]:
        """The definition as ``view.define`` takes it (every default spelled out)."""
        return {
            "columns": [_column_wire(c) for c in self.columns],
            "sources": [
                {"origin": s.origin, "tenant": s.tenant, "db": s.db, "where": dict(s.where)}
                for s in self.sources
            ],
            "style": self.style.value,
        }

    def digest(self) -> str:
        """Names this exact definition: a saved state is used only with the one it came from."""
        packed: bytes = msgpack.packb(self.to_wire(), use_bin_type=True, datetime=True)
        return hashlib.sha256(packed).hexdigest()

    def build(self, handles: tuple[MindooDB, ...]) -> VirtualView:
        """An empty view over these database handles (one per source, in order)."""
        builder = VirtualViewFactory.create_view().with_categorization_style(self.style)
        for column in self.columns:
            builder.add_column(column)
        for source, db in zip(self.sources, handles, strict=True):
            builder.with_db(source.origin, db, _where(source.where) if source.where else None)
        return builder.build()


def _column_wire(column: ViewColumn) -> dict[str, Any]:
    wire: dict[str, Any] = {"name": column.name, "role": column.role.value}
    if column.role is ColumnRole.TOTAL:
        wire["total"] = column.total_mode.value
    else:
        wire["sorting"] = column.sorting.value
    if column.title is not None:
        wire["title"] = column.title
    if column.field is not None:
        wire["field"] = column.field
    return wire


def _where(where: Mapping[str, Any]) -> Callable[[MindooDoc], bool]:
    def accepts(doc: MindooDoc) -> bool:
        data = doc.get_data()
        return all(field_value(data, name) == value for name, value in where.items())

    return accepts


# -- parsing -------------------------------------------------------------------------------------
def choice(raw: object, what: str, options: Mapping[str, Any], default: Any = None) -> Any:
    """``options[raw]``, ``default`` for a missing value (when there is one), else an error."""
    if raw is None and default is not None:
        return default
    if not isinstance(raw, str) or raw not in options:
        raise InvalidParamsError(f"{what} must be one of {', '.join(options)}")
    return options[raw]


def _opt_str(item: Mapping[str, Any], key: str, what: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise InvalidParamsError(f"{what}.{key} must be a string of 1 to 256 characters")
    return value


def _column(raw: object, index: int) -> ViewColumn:
    what = f"columns[{index}]"
    if not isinstance(raw, dict):
        raise InvalidParamsError(f"{what} must be a map")
    unknown = set(raw) - {"name", "role", "sorting", "total", "title", "field"}
    if unknown:
        raise InvalidParamsError(f"{what} has an unknown key {sorted(unknown)[0]!r}")
    name = _opt_str(raw, "name", what)
    if name is None:
        raise InvalidParamsError(f"{what}.name is required")
    role = choice(raw.get("role"), f"{what}.role", {r.value: r for r in ColumnRole})
    sortings = {s.value: s for s in ColumnSorting}
    default_sort = ColumnSorting.ASCENDING if role is not ColumnRole.DISPLAY else ColumnSorting.NONE
    sorting = choice(raw.get("sorting"), f"{what}.sorting", sortings, default_sort)
    total = TotalMode.NONE
    if role is ColumnRole.TOTAL:
        modes = {m.value: m for m in TotalMode if m is not TotalMode.NONE}
        total = choice(raw.get("total"), f"{what}.total", modes)
        sorting = ColumnSorting.NONE
    try:
        return ViewColumn(
            name, role, sorting, total, _opt_str(raw, "title", what), _opt_str(raw, "field", what)
        )
    except ViewDefinitionError as exc:
        raise InvalidParamsError(f"{what}: {exc}") from None


def _source(raw: object, index: int) -> ViewSource:
    what = f"sources[{index}]"
    if not isinstance(raw, dict):
        raise InvalidParamsError(f"{what} must be a map")
    unknown = set(raw) - {"origin", "tenant", "db", "where"}
    if unknown:
        raise InvalidParamsError(f"{what} has an unknown key {sorted(unknown)[0]!r}")
    sub = Params({k: raw.get(k) for k in ("tenant", "db")})
    try:
        tenant, db = sub.tenant(), sub.db()
    except InvalidParamsError as exc:
        raise InvalidParamsError(f"{what}: {exc}") from None
    where = raw.get("where") or {}
    if not isinstance(where, dict) or len(where) > MAX_WHERE:
        raise InvalidParamsError(f"{what}.where must be a map of at most {MAX_WHERE} fields")
    if not all(isinstance(k, str) and k for k in where):
        raise InvalidParamsError(f"{what}.where must have field names as keys")
    origin = _opt_str(raw, "origin", what) or f"{tenant}/{db}"
    return ViewSource(origin, tenant, db, dict(where))


def parse_definition(p: Params) -> ViewDefinition:
    """Take ``columns``, ``sources`` and ``style`` from ``p`` (InvalidParamsError if bad)."""
    columns = tuple(_column(c, i) for i, c in enumerate(p.array("columns", max_items=MAX_COLUMNS)))
    sources = tuple(_source(s, i) for i, s in enumerate(p.array("sources", max_items=MAX_SOURCES)))
    styles = {s.value: s for s in CategorizationStyle}
    style = choice(p.raw("style"), "parameter 'style'", styles, DEFAULT_STYLE)
    if not sources:
        raise InvalidParamsError("parameter 'sources' must not be empty")
    definition = ViewDefinition(columns, sources, style)
    try:  # the library's own checks (duplicate names, origins), with no database yet
        builder = VirtualViewFactory.create_view()
        for column in columns:
            builder.add_column(column)
        origins = [s.origin for s in sources]
        if len(set(origins)) != len(origins):
            raise ViewDefinitionError(f"origins must be unique: {origins}")
        builder.build()
    except ViewDefinitionError as exc:
        raise InvalidParamsError(str(exc)) from None
    return definition


def definition_from_wire(raw: object) -> ViewDefinition:
    """A saved definition (``to_wire()``'s map), checked as a request would be."""
    if not isinstance(raw, dict):
        raise InvalidParamsError("a view definition must be a map")
    p = Params(dict(raw))
    definition = parse_definition(p)
    p.finish()
    return definition


__all__ = [
    "ViewDefinition",
    "ViewSource",
    "choice",
    "definition_from_wire",
    "parse_definition",
]
