"""CLI: ``mindood doc at|history|list-at`` — documents as they were, and how they got there.

A TIME is milliseconds since the epoch (all digits) or ISO 8601 text (``2026-01-31T12:00``,
no zone = UTC); what had been written before it counts::

    mindood doc at acme contacts 7f3a... 2026-01-31T12:00Z
    mindood doc history acme contacts 7f3a... --data        # every version with its data
    mindood doc history acme contacts 7f3a... --start 100   # the next page
    mindood doc list-at acme contacts 1767182400000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from mindood.cli_common import (
    EXIT_OK,
    Subparsers,
    client_command,
    client_options,
    jsonable,
    print_json,
    print_table,
)
from mindood.client import MindoodClient


def parse_time(raw: str) -> int | str:
    """Digits are milliseconds; anything else goes to the daemon as ISO 8601 text."""
    return int(raw) if raw.isdigit() else raw


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _author(version: dict[str, Any]) -> str:
    if version.get("author"):
        return str(version["author"])
    if version.get("by_admin"):
        return "(administrator)"
    return "(unknown key)"


async def _at(client: MindoodClient, args: argparse.Namespace) -> int:
    doc = await client.doc_get_at(args.tenant, args.db, args.doc_id, parse_time(args.time))
    if args.json:
        print_json(doc)
        return EXIT_OK
    state = " (deleted)" if doc["deleted"] else ""
    print(f"id:       {doc['id']}{state}")
    print(f"as of:    {_when(doc['at'])} UTC")
    print(f"modified: {_when(doc['last_modified'])} UTC")
    print(json.dumps(jsonable(doc["data"]), indent=2, sort_keys=True, ensure_ascii=False))
    return EXIT_OK


async def _history(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.doc_history(
        args.tenant, args.db, args.doc_id, start=args.start, count=args.count, data=args.data
    )
    if args.json:
        print_json(result)
        return EXIT_OK
    versions = result["versions"]
    if args.data:
        for v in versions:
            print(f"#{v['index']}  {_when(v['created_at'])} UTC  {v['type']}  {_author(v)}")
            print(json.dumps(jsonable(v["data"]), sort_keys=True, ensure_ascii=False))
    else:
        rows = [
            (v["index"], f"{_when(v['created_at'])} UTC", v["type"], _author(v), v["device"])
            for v in versions
        ]
        print_table(rows, ("#", "WHEN", "CHANGE", "AUTHOR", "DEVICE"))
    if result["next"] is not None:
        print(f"# more: --start {result['next']}")
    return EXIT_OK


async def _list_at(client: MindoodClient, args: argparse.Namespace) -> int:
    ids = await client.doc_list_at(args.tenant, args.db, parse_time(args.time))
    if args.json:
        print_json({"tenant": args.tenant, "db": args.db, "doc_ids": ids})
    else:
        for doc_id in ids:
            print(doc_id)
    return EXIT_OK


def add_history_commands(cmds: Subparsers) -> None:
    """Register under ``mindood doc`` (``cmds`` is its sub-command set)."""
    common = client_options()
    time_help = "milliseconds since the epoch, or ISO 8601 (no zone = UTC)"

    at = cmds.add_parser("at", parents=[common], help="show a document as it was at a time")
    at.add_argument("tenant")
    at.add_argument("db")
    at.add_argument("doc_id")
    at.add_argument("time", help=time_help)
    at.set_defaults(handler=client_command(_at))

    history = cmds.add_parser(
        "history", parents=[common], help="a document's versions: when, which change, who"
    )
    history.add_argument("tenant")
    history.add_argument("db")
    history.add_argument("doc_id")
    history.add_argument("--start", type=int, default=None, help="first version (index)")
    history.add_argument("--count", type=int, default=None, help="versions per page (100)")
    history.add_argument("--data", action="store_true", help="print each version's data")
    history.set_defaults(handler=client_command(_history))

    list_at = cmds.add_parser(
        "list-at", parents=[common], help="ids of the documents that existed at a time"
    )
    list_at.add_argument("tenant")
    list_at.add_argument("db")
    list_at.add_argument("time", help=time_help)
    list_at.set_defaults(handler=client_command(_list_at))


__all__ = ["add_history_commands", "parse_time"]
