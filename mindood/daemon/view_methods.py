"""RPC methods over virtual views: define one, read a page of it, step through it.

A view defined over RPC is data, not code (``view_definition``): columns name document fields
(dotted for nested maps), and a source's filter is a map of field values that must all be equal.
Views are kept in their tenants' directories (``view_registry``), so they survive a restart of
the daemon; each read first brings the view up to date, which costs only the documents changed
since the last read (after a restart: since the view's state was last saved).

Navigation holds no state in the daemon: every request carries the reader's expansion state
(``expand``: "all", "none" or a level; ``expanded``/``collapsed``: positions toggled against it),
its listing mode and, for steps, the position it stands on. Two readers of one view thus never
see each other's clicks, and a dropped connection leaves nothing behind.

Positions are the view's ("1.2.3"). Paging passes the last position of a page as the next
``start``; a view that changed in between may shift what follows, as in any live outline.
With ``category``, a read lists that category's entries and its ``documents`` and ``totals``
are the category's. Document rows carry their ``doc_id`` and the ``tenant`` and ``db`` they
came from.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from mindood.daemon.node import Node
from mindood.daemon.params import Handler, Params
from mindood.daemon.view_definition import ViewDefinition, choice, parse_definition
from mindood.daemon.view_registry import registry
from mindood.rpc.connection import Connection
from mindood.rpc.errors import InvalidParamsError, NotFoundError
from mindood.views import (
    CategoryEntry,
    Navigator,
    ViewDefinitionError,
    ViewEntry,
    VirtualView,
    VirtualViewFactory,
)

MAX_PAGE = 1000
MAX_TOGGLES = 10_000
_INT64 = 2**63


# -- reading state -------------------------------------------------------------------------------
def _navigator(view: VirtualView, p: Params) -> Navigator:
    builder = VirtualViewFactory.create_navigator(view)
    modes = {"all": "all", "categories": "categories", "documents": "documents"}
    mode = choice(p.raw("mode"), "parameter 'mode'", modes, "all")
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


def entry_to_wire(
    entry: ViewEntry, nav: Navigator, definition: ViewDefinition | None = None
) -> dict[str, Any]:
    """One row. A document's ``doc_id`` is its id in its database; with the ``definition`` it
    also names that database (``tenant``, ``db``). A category's ``doc_id`` is the view's own
    id for it (``cat_<n>``), valid while the category exists."""
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
    elif definition is not None:
        source = definition.source_of(entry.origin)
        if source is not None:
            wire.update(tenant=source.tenant, db=source.db)
    return wire


def _totals(view: VirtualView, category: CategoryEntry) -> dict[str, Any]:
    return {c.name: _number(category.get_total_value(c.name)) for c in view.get_total_columns()}


def _summary(name: str, view: VirtualView, top: CategoryEntry | None = None) -> dict[str, Any]:
    """The view's columns and origins, and the documents and totals of the whole view or, with
    ``top``, of that category (rows: a document listed under two categories counts twice)."""
    scoped = top is not None and not top.is_root()
    return {
        "name": name,
        "columns": [
            {"name": c.name, "role": c.role.value, "title": c.get_title()}
            for c in view.get_columns()
        ],
        "origins": view.get_origins(),
        "category": top.get_category_path() if top is not None and scoped else None,
        "documents": top.get_descendant_document_count()
        if top is not None and scoped
        else view.document_count(),
        "totals": _totals(view, top if top is not None and scoped else view.get_root()),
    }


# -- methods -------------------------------------------------------------------------------------
async def _define(node: Node, p: Params, conn: Connection) -> Any:
    name = p.text("name", max_chars=128)
    definition = parse_definition(p)
    p.finish()
    _, view = await registry(node).define(name, definition)
    return _summary(name, view)


async def _list(node: Node, p: Params, conn: Connection) -> Any:
    p.finish()
    return {"views": await registry(node).describe()}


async def _drop(node: Node, p: Params, conn: Connection) -> Any:
    name = p.text("name", max_chars=128)
    p.finish()
    await registry(node).drop(name)
    return {"name": name, "dropped": True}


async def _read(node: Node, p: Params, conn: Connection) -> Any:
    """A page of listed entries after ``start`` (or from the first), forwards or backwards."""
    name = p.text("name", max_chars=128)
    slot, view = await registry(node).current(name)
    nav = _navigator(view, p)
    start_pos = p.opt_text("start", max_chars=1024)
    count = p.opt_int("count", low=1, high=MAX_PAGE, default=100)
    backward = p.opt_bool("backward", False)
    p.finish()
    start = _entry_at(view, start_pos, "start") if start_pos is not None else None
    walk = nav.entries_backward(start=start) if backward else nav.entries_forward(start=start)
    page = list(itertools.islice(walk, count + 1))
    entries = [entry_to_wire(e, nav, slot.definition) for e in page[:count]]
    return {
        **_summary(name, view, nav.get_top()),
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
    slot, view = await registry(node).current(name)
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
        "entry": entry_to_wire(current, nav, slot.definition) if current is not None else None,
        "revealed": revealed[::-1],
    }


VIEW_METHODS: dict[str, Handler] = {
    "view.define": _define,
    "view.list": _list,
    "view.drop": _drop,
    "view.read": _read,
    "view.navigate": _navigate,
}

__all__ = ["VIEW_METHODS", "entry_to_wire"]
