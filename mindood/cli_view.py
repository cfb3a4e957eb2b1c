"""CLI: ``mindood view define|show|nav|list|drop``, and ``mindood bench views``.

The column syntax lives in ``COLUMN_HELP``, shown by ``mindood view define --help``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from mindood.cli_common import (
    EXIT_OK,
    Subparsers,
    UsageError,
    client_command,
    client_options,
    jsonable,
    parse_json_arg,
    print_json,
    print_table,
)
from mindood.client import MindoodClient

_SORTINGS = {"asc": "ascending", "desc": "descending", "none": "none"}
_TOTALS = {"sum": "sum", "avg": "average", "average": "average"}
_ROLES = ("category", "sorted", "display", "total")
_STEPS = ("first", "last", "next", "prev", "next_sibling", "prev_sibling", "parent", "first_child")

COLUMN_HELP = """\
columns (-c ROLE:NAME[:OPTION], repeated, in order):
  NAME is a document field; a dotted name (address.city) reaches into nested maps
  when the document has no field of that exact name.

  category:NAME[:asc|:desc]  group rows by the field's value (default :asc); a value
                             with \\ nests levels ("Sales\\EMEA"), a list puts the
                             document under each of its values
  sorted:NAME[:asc|:desc]    sort the documents of a category by the field
                             (default :asc); several sorted columns sort in order
  display:NAME               show the field, unsorted
  total:NAME:sum|avg         total the field's numbers per category (needs :sum or
                             :avg); category rows show their totals

sources (--source [ORIGIN=]TENANT/DB, repeated):
  the databases whose documents the view shows; ORIGIN names the source in rows
  (default TENANT/DB). --where '{"FIELD": VALUE, ...}' keeps only documents whose
  fields all equal those values (in every source).

The view is kept in the first source's tenant and survives a restart of the daemon.

examples:
  mindood view define staff -c category:department -c category:year:desc \\
      -c sorted:lastName -c display:email -c total:salary:sum \\
      --source acme/employees --where '{"type": "employee"}'
  mindood view define all-staff -c category:department -c sorted:lastName \\
      --source hq=acme/employees --source branch=globex/employees
  mindood view show staff --expand 1               # categories and their totals
  mindood view show staff --category 'Sales\\2024'  # one category, with its totals
"""


def parse_column(raw: str) -> dict[str, Any]:
    """``ROLE:NAME[:OPTION]`` as the daemon's column map."""
    role, sep, rest = raw.partition(":")
    if role not in _ROLES or not sep or not rest:
        raise UsageError(f"a column is ROLE:NAME[:OPTION] with ROLE one of {_ROLES}: {raw!r}")
    name, _, option = rest.rpartition(":") if rest.count(":") else (rest, "", "")
    column: dict[str, Any] = {"name": name, "role": role}
    if role == "total":
        if option not in _TOTALS:
            raise UsageError(f"a total column needs :sum or :avg: {raw!r}")
        column["total"] = _TOTALS[option]
    elif option:
        if role == "display" or option not in _SORTINGS:
            raise UsageError(f"unknown column option {option!r} in {raw!r}")
        column["sorting"] = _SORTINGS[option]
    return column


def parse_source(raw: str, where: dict[str, Any] | None) -> dict[str, Any]:
    """``[ORIGIN=]TENANT/DB``."""
    origin, sep, location = raw.rpartition("=")
    tenant, slash, db = location.partition("/")
    if not slash or not tenant or not db or (sep and not origin):
        raise UsageError(f"a source is [ORIGIN=]TENANT/DB: {raw!r}")
    source: dict[str, Any] = {"tenant": tenant, "db": db, "origin": origin or f"{tenant}/{db}"}
    if where:
        source["where"] = where
    return source


def _state(args: argparse.Namespace) -> dict[str, Any]:
    """The reader's navigation state as request parameters."""
    expand: Any = args.expand
    if expand not in ("all", "none"):
        try:
            expand = int(expand)
        except ValueError:
            raise UsageError("--expand takes all, none or a level") from None
    params: dict[str, Any] = {"name": args.name, "expand": expand}
    if args.expanded:
        params["expanded"] = args.expanded
    if args.collapsed:
        params["collapsed"] = args.collapsed
    if args.categories_only:
        params["mode"] = "categories"
    elif args.documents_only:
        params["mode"] = "documents"
    if args.category:
        params["category"] = args.category
    return params


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, str):
        return value
    return json.dumps(jsonable(value), ensure_ascii=False, sort_keys=True)


def render_rows(page: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the indented table: position, the tree column, the other columns,
    then where each document row comes from (``DB``, for views over several databases) and its
    id (``DOC``).

    The tree column shows a category's value (``-`` expanded, ``+`` collapsed) or a document's
    first non-category column, indented two spaces per level; category rows carry their totals.
    """
    columns = page["columns"]
    flat = [c for c in columns if c["role"] != "category"]
    label, rest = (flat[0], flat[1:]) if flat else (None, [])
    several = len(page.get("origins", ())) > 1
    headers = ["POS", label["title"] if label else "ENTRY", *(c["title"] for c in rest)]
    headers += ["DB", "DOC"] if several else ["DOC"]
    rows: list[list[str]] = []
    for entry in page["entries"]:
        indent = "  " * max(entry["level"], 0)
        values = entry["values"]
        if entry["category"]:
            marker = "- " if entry.get("expanded") else "+ "
            tree = indent + marker + _cell(entry["value"])
            cells = [_cell(values.get(c["name"])) if c["role"] == "total" else "" for c in rest]
            where = [""] if several else []
            rows.append([entry["position"], tree, *cells, *where, ""])
            continue
        first = values.get(label["name"]) if label else entry["doc_id"]
        tree = indent + "  " + _cell(first)
        cells = [_cell(values.get(c["name"])) for c in rest]
        where = [_source_label(entry)] if several else []
        rows.append([entry["position"], tree, *cells, *where, entry["doc_id"]])
    return headers, rows


def _source_label(entry: dict[str, Any]) -> str:
    tenant, db = entry.get("tenant"), entry.get("db")
    return f"{tenant}/{db}" if tenant and db else str(entry.get("origin", ""))


def summary_line(page: dict[str, Any]) -> str:
    """``# N documents, totals: ...``; of the category alone when one was asked for."""
    totals = {k: v for k, v in page["totals"].items() if v is not None}
    scope = f" in {page['category']}" if page.get("category") else ""
    line = f"# {page['documents']} documents{scope}"
    if totals:
        line += ", totals: " + ", ".join(f"{k}={_cell(v)}" for k, v in totals.items())
    if page["has_more"]:
        line += f"; more after {page['next']} (--start {page['next']})"
    return line


async def _define(client: MindoodClient, args: argparse.Namespace) -> int:
    if not args.column:
        raise UsageError("a view needs at least one column (-c ROLE:NAME[:OPTION])")
    if not args.source:
        raise UsageError("a view needs at least one --source [ORIGIN=]TENANT/DB")
    where = parse_json_arg(args.where, "--where") if args.where else None
    if where is not None and not isinstance(where, dict):
        raise UsageError("--where must be a JSON object of field values")
    result = await client.view_define(
        args.name,
        [parse_column(c) for c in args.column],
        [parse_source(s, where) for s in args.source],
        style="category_then_document" if args.categories_last else None,
    )
    if args.json:
        print_json(result)
    else:
        print(f"view {result['name']}: {result['documents']} documents from {result['origins']}")
    return EXIT_OK


async def _show(client: MindoodClient, args: argparse.Namespace) -> int:
    params = _state(args)
    params["count"] = args.count
    if args.start:
        params["start"] = args.start
    if args.backward:
        params["backward"] = True
    page = await client.view_read(**params)
    if args.json:
        print_json(page)
        return EXIT_OK
    headers, rows = render_rows(page)
    print_table(rows, headers)
    print(summary_line(page))
    return EXIT_OK


async def _nav(client: MindoodClient, args: argparse.Namespace) -> int:
    params = _state(args)
    params["op"] = args.op
    if args.at:
        params["at"] = args.at
    if args.target:
        params["target"] = args.target
    if args.reveal:
        params["reveal"] = True
    result = await client.view_navigate(**params)
    if args.json:
        print_json(result)
    elif result["entry"] is None:
        print("(no entry there)")
    else:
        shape = await client.view_read(**{**_state(args), "count": 1})
        page = {"columns": shape["columns"], "origins": shape["origins"]}
        page["entries"] = [result["entry"]]
        headers, rows = render_rows(page)
        print_table(rows, headers)
    return EXIT_OK


async def _list(client: MindoodClient, args: argparse.Namespace) -> int:
    views = await client.view_list()
    if args.json:
        print_json({"views": views})
    else:
        for view in views:
            print("\t".join(list_line(view)))
    return EXIT_OK


def list_line(view: dict[str, Any]) -> list[str]:
    """Name, state and what to know: the origins, or why the view cannot be used."""
    name = view["name"] if view["name"] is not None else "(name sealed while locked)"
    state = view["state"]
    if state == "ready":
        detail = ", ".join(view["origins"])
    elif state == "damaged":
        detail = view.get("error", "")
    else:
        detail = f"unlock tenant {view['tenant']} to use it"
    return [name, f"{state} ({view['tenant']})", detail]


async def _drop(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.view_drop(args.name)
    if args.json:
        print_json(result)
    else:
        print(f"dropped {args.name}")
    return EXIT_OK


def _state_options(parser: argparse.ArgumentParser, default_expand: str) -> None:
    parser.add_argument("name")
    parser.add_argument(
        "--expand", default=default_expand, help=f"all, none or a level (default {default_expand})"
    )
    parser.add_argument("--expanded", action="append", metavar="POS", help="also expand POS")
    parser.add_argument("--collapsed", action="append", metavar="POS", help="collapse POS")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--categories-only", action="store_true")
    modes.add_argument("--documents-only", action="store_true")
    parser.add_argument(
        "--category",
        metavar="PATH",
        help="only below this category (A\\B); totals are the category's",
    )


def add_view_commands(sub: Subparsers) -> None:
    common = client_options()
    view = sub.add_parser("view", help="define virtual views in the daemon and read them")
    cmds = view.add_subparsers(dest="view_command", required=True, metavar="ACTION")

    define = cmds.add_parser(
        "define",
        parents=[common],
        help="define (or replace) a view",
        description="Define a view in the daemon, or replace the view of that name.",
        epilog=COLUMN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    define.add_argument("name")
    define.add_argument(
        "-c", "--column", action="append", metavar="ROLE:NAME[:OPT]", help="a column, in order"
    )
    define.add_argument(
        "--source", action="append", metavar="[ORIGIN=]TENANT/DB", help="a database, in order"
    )
    define.add_argument("--where", metavar="JSON", help="field values every document must have")
    define.add_argument(
        "--categories-last", action="store_true", help="list a category's documents after it"
    )
    define.set_defaults(handler=client_command(_define))

    show = cmds.add_parser("show", parents=[common], help="print a view as an indented table")
    _state_options(show, "all")
    show.add_argument("--start", metavar="POS", help="begin after this position")
    show.add_argument("--count", type=int, default=1000, help="entries per page (max 1000)")
    show.add_argument("--backward", action="store_true", help="walk backwards")
    show.set_defaults(handler=client_command(_show))

    nav = cmds.add_parser("nav", parents=[common], help="one navigation step; prints the entry")
    _state_options(nav, "all")
    nav.add_argument("op", choices=[*_STEPS, "goto"])
    nav.add_argument("--at", metavar="POS", help="where the reader stands")
    nav.add_argument("--target", metavar="POS", help="for goto: where to go")
    nav.add_argument("--reveal", action="store_true", help="expand the way to the entry")
    nav.set_defaults(handler=client_command(_nav))

    listing = cmds.add_parser("list", parents=[common], help="list the daemon's views")
    listing.set_defaults(handler=client_command(_list))

    drop = cmds.add_parser("drop", parents=[common], help="forget a view")
    drop.add_argument("name")
    drop.set_defaults(handler=client_command(_drop))


__all__ = [
    "COLUMN_HELP",
    "add_view_commands",
    "list_line",
    "parse_column",
    "parse_source",
    "render_rows",
    "summary_line",
]
