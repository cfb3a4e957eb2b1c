"""RPC methods over virtual views: define one, read a page of it, step through it.

A view defined over RPC is data, not code: columns name document fields (dotted for nested maps),
and a source's filter is a map of field values that must all be equal. Views live in the node's
memory by name for as long as the daemon runs (clients define them again after a restart); each
read first brings the view up to date, which costs only the documents changed since the last read.

Navigation holds no state in the daemon: every request carries the reader's expansion state
(``expand``: "all", "none" or a level; ``expanded``/``collapsed``: positions toggled against it),
its listing mode and, for steps, the position it stands on. Two readers of one view thus never
see each other's clicks, and a dropped connection leaves nothing behind.

Positions are the view's ("1.2.3"). Paging passes the last position of a page as the next
``start``; a view that changed in between may shift what follows, as in any live outline.
"""

from __future__ import annotations

import asyncio
import itertools
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mindood.daemon.node import Node
from mindood.daemon.params import Params
from mindood.db import MindooDB, MindooDoc
from mindood.rpc.connection import Connection
from mindood.rpc.errors import InvalidParamsError, LimitExceededError, NotFoundError
from mindood.views import (
    CategorizationStyle,
    CategoryEntry,
    ColumnRole,
    ColumnSorting,
    Navigator,
    TotalMode,
    ViewColumn,
    ViewDefinitionError,
    ViewEntry,
    VirtualView,
    VirtualViewFactory,
)
from mindood.views.columns import field_value

MAX_VIEWS = 64
MAX_COLUMNS = 64
MAX_SOURCES = 32
MAX_WHERE = 32
MAX_PAGE = 1000
MAX_TOGGLES = 10_000
_INT64 = 2**63

Handler = Callable[[Node, Params, Connection], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class _Source:
    origin: str
    tenant: str
    db: str
    where: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Definition:
    columns: tuple[ViewColumn, ...]
    sources: tuple[_Source, ...]
    style: CategorizationStyle


class _Defined:
    """A view as defined, with the database handles it was built on."""

    def __init__(self, definition: _Definition) -> None:
        self.definition = definition
        self.view: VirtualView | None = None
        self.handles: tuple[MindooDB, ...] = ()
        self.lock = asyncio.Lock()


class ViewRegistry:
    """The views of one node, by name."""

    def __init__(self) -> None:
        self.views: dict[str, _Defined] = {}

    async def current(self, node: Node, name: str) -> VirtualView:
        """The view, updated; rebuilt when a tenant was locked and unlocked (new handles)."""
        defined = self.views.get(name)
        if defined is None:
            raise NotFoundError(f"no view {name!r}")
        async with defined.lock:
            handles = tuple(
                [await node.tenants.open_db(s.tenant, s.db) for s in defined.definition.sources]
            )
            if defined.view is None or any(
                a is not b for a, b in zip(handles, defined.handles, strict=False)
            ):
                defined.view = _build(defined.definition, handles)
                defined.handles = handles
            await defined.view.update()
            return defined.view


_registries: weakref.WeakKeyDictionary[Node, ViewRegistry] = weakref.WeakKeyDictionary()


def registry(node: Node) -> ViewRegistry:
    found = _registries.get(node)
    if found is None:
        found = _registries[node] = ViewRegistry()
    return found


def _build(definition: _Definition, handles: tuple[MindooDB, ...]) -> VirtualView:
    builder = VirtualViewFactory.create_view().with_categorization_style(definition.style)
    for column in definition.columns:
        builder.add_column(column)
    for source, db in zip(definition.sources, handles, strict=True):
        builder.with_db(source.origin, db, _where(source.where) if source.where else None)
    return builder.build()


def _where(where: Mapping[str, Any]) -> Callable[[MindooDoc], bool]:
    def accepts(doc: MindooDoc) -> bool:
        data = doc.get_data()
        return all(field_value(data, name) == value for name, value in where.items())

    return accepts


# -- parsing definitions -------------------------------------------------------------------------
def _choice(raw: object, what: str, options: Mapping[str, Any], default: Any = None) -> Any:
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
    role = _choice(raw.get("role"), f"{what}.role", {r.value: r for r in ColumnRole})
    sortings = {s.value: s for s in ColumnSorting}
    default_sort = ColumnSorting.ASCENDING if role is not ColumnRole.DISPLAY else ColumnSorting.NONE
    sorting = _choice(raw.get("sorting"), f"{what}.sorting", sortings, default_sort)
    total = TotalMode.NONE
    if role is ColumnRole.TOTAL:
        modes = {m.value: m for m in TotalMode if m is not TotalMode.NONE}
        total = _choice(raw.get("total"), f"{what}.total", modes)
        sorting = ColumnSorting.NONE
    try:
        return ViewColumn(
            name, role, sorting, total, _opt_str(raw, "title", what), _opt_str(raw, "field", what)
        )
    except ViewDefinitionError as exc:
        raise InvalidParamsError(f"{what}: {exc}") from None


def _source(raw: object, index: int) -> _Source:
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
    return _Source(origin, tenant, db, dict(where))


def _definition(p: Params) -> _Definition:
    columns = tuple(_column(c, i) for i, c in enumerate(p.array("columns", max_items=MAX_COLUMNS)))
    sources = tuple(_source(s, i) for i, s in enumerate(p.array("sources", max_items=MAX_SOURCES)))
    style = _choice(
        p.raw("style"),
        "parameter 'style'",
        {s.value: s for s in CategorizationStyle},
        CategorizationStyle.DOCUMENT_THEN_CATEGORY,
    )
    if not sources:
        raise InvalidParamsError("parameter 'sources' must not be empty")
    definition = _Definition(columns, sources, style)
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


# -- reading state -------------------------------------------------------------------------------
def _navigator(view: VirtualView, p: Params) -> Navigator:
    builder = VirtualViewFactory.create_navigator(view)
    modes = {"all": "all", "categories": "categories", "documents": "documents"}
    mode = _choice(p.raw("mode"), "parameter 'mode'", modes, "all")
    if mode == "categories":
        builder.categories_only()
    elif mode == "documents":
        builder.documents_only()
    category = p.opt_text("category", max_chars=4096)
    if category is not None:
        try:
            builder.from_category(category)
        except ViewDefinitionError as exc:
            raise NotFoundError(str(exc)) from None
    expand = p.raw("expand")
    if expand is None or expand == "none":
        builder.collapse_all()
    elif expand == "all":
        builder.expand_all()
    elif isinstance(expand, int) and not isinstance(expand, bool) and 0 <= expand <= 1000:
        builder.expand_to_level(expand)
    else:
        raise InvalidParamsError('parameter \'expand\' must be "all", "none" or a level')
    nav = builder.build()
    for name, apply in (("expanded", nav.expand_pos), ("collapsed", nav.collapse_pos)):
        for position in _positions(p, name):
            apply(position)
    return nav


def _positions(p: Params, name: str) -> list[str]:
    raw = p.opt_list(name, max_items=MAX_TOGGLES) or []
    if not all(isinstance(pos, str) and len(pos) <= 1024 for pos in raw):
        raise InvalidParamsError(f"parameter {name!r} must be an array of positions")
    return raw


def _entry_at(view: VirtualView, position: str, name: str) -> ViewEntry:
    entry = view.entry_at(position)
    if entry is None:
        raise NotFoundError(f"parameter {name!r}: no entry at position {position!r}")
    return entry


def _number(value: Any) -> Any:
    """Totals can outgrow MessagePack's 64-bit integers; send those as floats."""
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < 2**64:
        return float(value)
    return value


def entry_to_wire(entry: ViewEntry, nav: Navigator) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "position": entry.get_position_str(),
        "level": entry.get_level(),
        "category": entry.is_category(),
        "origin": entry.origin,
        "doc_id": entry.doc_id,
        "values": {k: _number(v) for k, v in entry.get_column_values().items()},
        "sibling_index": entry.get_sibling_index(),
        "sibling_count": entry.get_sibling_count(),
    }
    if isinstance(entry, CategoryEntry):
        wire.update(
            value=entry.get_category_value(),
            path=entry.get_category_path(),
            child_count=entry.get_child_count(),
            descendant_documents=entry.get_descendant_document_count(),
            descendant_categories=entry.get_descendant_category_count(),
            expanded=nav.is_expanded(entry),
        )
    return wire


# -- methods -------------------------------------------------------------------------------------
async def _define(node: Node, p: Params, conn: Connection) -> Any:
    name = p.text("name", max_chars=128)
    definition = _definition(p)
    p.finish()
    views = registry(node).views
    if name not in views and len(views) >= MAX_VIEWS:
        raise LimitExceededError(f"at most {MAX_VIEWS} views per daemon")
    views[name] = _Defined(definition)
    view = await registry(node).current(node, name)
    return _summary(name, view)


def _summary(name: str, view: VirtualView) -> dict[str, Any]:
    return {
        "name": name,
        "columns": [
            {"name": c.name, "role": c.role.value, "title": c.get_title()}
            for c in view.get_columns()
        ],
        "origins": view.get_origins(),
        "documents": view.document_count(),
        "totals": {k: _number(v) for k, v in view.get_root().get_column_values().items()},
    }


async def _list(node: Node, p: Params, conn: Connection) -> Any:
    p.finish()
    return {
        "views": [
            {"name": name, "origins": [s.origin for s in d.definition.sources]}
            for name, d in sorted(registry(node).views.items())
        ]
    }


async def _drop(node: Node, p: Params, conn: Connection) -> Any:
    name = p.text("name", max_chars=128)
    p.finish()
    if registry(node).views.pop(name, None) is None:
        raise NotFoundError(f"no view {name!r}")
    return {"name": name, "dropped": True}


async def _read(node: Node, p: Params, conn: Connection) -> Any:
    """A page of listed entries after ``start`` (or from the first), forwards or backwards."""
    name = p.text("name", max_chars=128)
    view = await registry(node).current(node, name)
    nav = _navigator(view, p)
    start_pos = p.opt_text("start", max_chars=1024)
    count = p.opt_int("count", low=1, high=MAX_PAGE, default=100)
    backward = p.opt_bool("backward", False)
    p.finish()
    start = _entry_at(view, start_pos, "start") if start_pos is not None else None
    walk = nav.entries_backward(start=start) if backward else nav.entries_forward(start=start)
    page = list(itertools.islice(walk, count + 1))
    entries = [entry_to_wire(e, nav) for e in page[:count]]
    return {
        **_summary(name, view),
        "entries": entries,
        "has_more": len(page) > count,
        "next": entries[-1]["position"] if len(page) > count else None,
    }


_STEPS: dict[str, Callable[[Navigator], bool]] = {
    "first": Navigator.goto_first,
    "last": Navigator.goto_last,
    "next": Navigator.goto_next,
    "prev": Navigator.goto_prev,
    "next_sibling": Navigator.goto_next_sibling,
    "prev_sibling": Navigator.goto_prev_sibling,
    "parent": Navigator.goto_parent,
    "first_child": Navigator.goto_first_child,
}


async def _navigate(node: Node, p: Params, conn: Connection) -> Any:
    """One step from ``at`` (or a jump to ``target``); answers where the reader lands."""
    name = p.text("name", max_chars=128)
    view = await registry(node).current(node, name)
    nav = _navigator(view, p)
    op = p.text("op", max_chars=32)
    at = p.opt_text("at", max_chars=1024)
    target = p.opt_text("target", max_chars=1024)
    reveal = p.opt_bool("reveal", False)
    p.finish()
    if op == "goto":
        if target is None:
            raise InvalidParamsError("op 'goto' needs parameter 'target'")
        moved = nav.goto(_entry_at(view, target, "target"), reveal=reveal)
    elif op in _STEPS:
        if at is not None and not nav.goto(_entry_at(view, at, "at"), reveal=reveal):
            raise NotFoundError(f"parameter 'at': {at!r} is not listed in this state")
        if at is None and op not in ("first", "last"):
            raise InvalidParamsError(f"op {op!r} needs parameter 'at'")
        moved = _STEPS[op](nav)
    else:
        raise InvalidParamsError(f"parameter 'op' must be goto or one of {', '.join(_STEPS)}")
    current = nav.get_current_entry() if moved else None
    revealed = []
    if reveal and current is not None:
        node_: CategoryEntry | None = current.parent
        while node_ is not None and not node_.is_root():
            revealed.append(node_.get_position_str())
            node_ = node_.parent
    return {
        "moved": moved,
        "entry": entry_to_wire(current, nav) if current is not None else None,
        "revealed": revealed[::-1],
    }


VIEW_METHODS: dict[str, Handler] = {
    "view.define": _define,
    "view.list": _list,
    "view.drop": _drop,
    "view.read": _read,
    "view.navigate": _navigate,
}

__all__ = ["VIEW_METHODS", "ViewRegistry", "entry_to_wire", "registry"]
