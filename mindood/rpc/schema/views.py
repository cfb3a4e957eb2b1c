"""Virtual views: categorized, sorted, totalled tables over one or more databases."""

from __future__ import annotations

from mindood.rpc.schema.model import Method, Param, opt, req

_NAME = req("name", "string", "the view's name")
_STATE: tuple[Param, ...] = (
    opt("mode", "string", "all | categories | documents"),
    opt("category", "string", "only below this category (a path like 'Rome' or 'IT\\\\Rome')"),
    opt("expand", "any", '"all", "none" or a level (integer)'),
    opt("expanded", "array", "positions to expand"),
    opt("collapsed", "array", "positions to collapse"),
)

METHODS = (
    Method(
        "view.define",
        "Define (or replace) a view.",
        (
            _NAME,
            req("columns", "array", "column specs: {name, role, field | formula, sort, ...}"),
            req("sources", "array", "{tenant, db, origin?, where?} per source database"),
            opt("style", "string", "categorization style"),
        ),
        "{name, columns, origins, category: null, documents, totals}",
        cli="view define",
        errors=("TenantLockedError", "LimitExceededError", "NotFoundError"),
    ),
    Method(
        "view.list",
        "The daemon's views (saved ones too), each ready, locked or damaged.",
        (),
        "{views: [{name, tenant, state, origins?, built?, documents?, error?, ...}]}",
        cli="view list",
    ),
    Method(
        "view.drop",
        "Forget a view and delete its saved files.",
        (_NAME,),
        "{name, dropped}",
        cli="view drop",
        errors=("NotFoundError", "ViewDamagedError"),
    ),
    Method(
        "view.read",
        "A page of entries after 'start' (or from the first), forwards or backwards.",
        (
            _NAME,
            *_STATE,
            opt("start", "string", "position to continue after"),
            opt("count", "integer", "entries per page"),
            opt("backward", "boolean", "walk backwards"),
        ),
        "{name, columns, origins, category, documents, totals, entries, has_more, next}"
        " (documents and totals of the category when one is given; document entries carry"
        " doc_id, tenant and db)",
        cli="view show",
        errors=("NotFoundError", "TenantLockedError", "ViewDamagedError"),
    ),
    Method(
        "view.navigate",
        "One navigation step from 'at' (or a jump to 'target').",
        (
            _NAME,
            *_STATE,
            req("op", "string", "goto | first | last | next | prev | next_sibling | ..."),
            opt("at", "string", "the position to step from"),
            opt("target", "string", "the position to go to (op goto)"),
            opt("reveal", "boolean", "expand the categories above the target"),
        ),
        "{moved, entry, revealed}",
        cli="view nav",
        errors=("NotFoundError", "TenantLockedError", "ViewDamagedError"),
    ),
)

__all__ = ["METHODS"]
