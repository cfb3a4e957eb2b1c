"""CLI: ``mindood doc create|change|get|list|delete|changes``.

Values and operations are JSON (``-`` reads standard input, ``@FILE`` a file). Shorthands for
``doc change``: ``--set PATH=VALUE``, ``--delete PATH``, ``--increment PATH[=N]``, where PATH is
dot-separated and all-digit parts are list indices (``tags.0``); anything else goes through
``--ops`` with the full operation list::

    mindood doc change acme contacts 7f3a... --set name=Ada --set zip='"01234"' --increment visits
    mindood doc change acme contacts 7f3a... --ops '[{"op":"splice","path":["notes"],
        "index":0,"delete":0,"text":"Hello "}]'

The VALUE of ``--set`` is read as JSON when it is valid JSON, and is a plain string otherwise
(:data:`SET_VALUE_RULES`, also in ``mindood doc change --help``).
"""

from __future__ import annotations

import argparse
import datetime as dt
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
)
from mindood.cli_history import add_history_commands
from mindood.client import MindoodClient, op_delete, op_increment, op_set

#: How ``--set PATH=VALUE`` types its VALUE (the help text and the README say the same).
SET_VALUE_RULES = """\
--set PATH=VALUE reads VALUE as JSON when it is valid JSON, and as a plain string otherwise:
  --set n=1234          the number 1234          --set ok=true       the boolean true
  --set zip=01234       the string "01234"       --set gone=null     null
  --set city=Oslo       the string "Oslo"        --set 'tags=["a"]'  a list
JSON has no leading zeros, so 01234 stays a string. To force a string, quote it as JSON
(in the shell, inside single quotes): --set 'zip="1234"' stores the string "1234"."""


def parse_path(raw: str) -> list[str | int]:
    if not raw:
        raise UsageError("a path must not be empty")
    parts: list[str | int] = []
    for part in raw.split("."):
        if not part:
            raise UsageError(f"empty component in path {raw!r}")
        parts.append(int(part) if part.isdigit() else part)
    return parts


def _refuse_constant(name: str) -> Any:
    """Python's ``json`` reads NaN and Infinity, which JSON does not have: they stay text."""
    raise ValueError(name)


def _loose_json(raw: str) -> Any:
    """A ``--set`` VALUE: JSON if it parses as JSON, else the text itself (SET_VALUE_RULES)."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant)
    except ValueError:  # not JSON (JSONDecodeError is a ValueError)
        return raw


def shorthand_ops(args: argparse.Namespace) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for item in args.set or []:
        path, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set needs PATH=VALUE, got {item!r}")
        ops.append(op_set(parse_path(path), _loose_json(value)))
    for item in args.delete or []:
        ops.append(op_delete(parse_path(item)))
    for item in args.increment or []:
        path, sep, amount = item.partition("=")
        try:
            by = int(amount) if sep else 1
        except ValueError:
            raise UsageError(f"--increment needs PATH[=INTEGER], got {item!r}") from None
        ops.append(op_increment(parse_path(path), by))
    return ops


def _when(ms: int) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _show_ids(docs: list[dict[str, Any]], as_json: bool) -> None:
    """What a batch write made: the documents as JSON, or one id a line."""
    if as_json:
        print_json(docs)
        return
    for doc in docs:
        print(doc["id"])


def _show(doc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(doc)
        return
    state = " (deleted)" if doc["deleted"] else ""
    print(f"id:       {doc['id']}{state}")
    print(f"created:  {_when(doc['created_at'])}")
    print(f"modified: {_when(doc['last_modified'])}")
    print(json.dumps(jsonable(doc["data"]), indent=2, sort_keys=True, ensure_ascii=False))


async def _create(client: MindoodClient, args: argparse.Namespace) -> int:
    data = parse_json_arg(args.data, "--data") if args.data is not None else {}
    if isinstance(data, list):
        return await _create_many(client, args, data)
    if not isinstance(data, dict):
        raise UsageError("--data must be a JSON object (or an array of objects)")
    doc = await client.doc_create(args.tenant, args.db, data, doc_id=args.id, key_id=args.key)
    if args.json:
        print_json(doc)
    else:
        print(doc["id"])
    return EXIT_OK


async def _create_many(client: MindoodClient, args: argparse.Namespace, items: list[Any]) -> int:
    """``--data`` holding an array: one document per object, all in one durable write."""
    if args.id is not None:
        raise UsageError("--id names one document; give an object to --data, not an array")
    if not all(isinstance(item, dict) for item in items):
        raise UsageError("--data as an array must hold JSON objects only")
    docs = await client.doc_create_many(
        args.tenant, args.db, [{"data": item, "key_id": args.key} for item in items]
    )
    _show_ids(docs, args.json)
    return EXIT_OK


def collect_ops(args: argparse.Namespace) -> list[Any]:
    """``--ops`` JSON first, then the shorthand options, in the order given; at least one."""
    ops: list[Any] = []
    if args.ops is not None:
        given = parse_json_arg(args.ops, "--ops")
        if not isinstance(given, list):
            raise UsageError("--ops must be a JSON array of operations")
        ops.extend(given)
    ops.extend(shorthand_ops(args))
    if not ops:
        raise UsageError("nothing to change: give --ops, --set, --delete or --increment")
    return ops


async def _change(client: MindoodClient, args: argparse.Namespace) -> int:
    if args.changes is not None:
        return await _change_many(client, args)
    if args.doc_id is None:
        raise UsageError("name the document to change (or give --changes)")
    doc = await client.doc_change(args.tenant, args.db, args.doc_id, collect_ops(args))
    _show(doc, args.json)
    return EXIT_OK


async def _change_many(client: MindoodClient, args: argparse.Namespace) -> int:
    """``--changes``: ``[{"doc_id": ..., "ops": [...]}, ...]``, all in one durable write."""
    if args.doc_id is not None or args.ops is not None or shorthand_ops(args):
        raise UsageError("--changes carries every document and its ops: give nothing else")
    given = parse_json_arg(args.changes, "--changes")
    if not isinstance(given, list) or not all(isinstance(c, dict) for c in given):
        raise UsageError('--changes must be a JSON array of {"doc_id": ..., "ops": [...]}')
    changes = [(c.get("doc_id"), c.get("ops")) for c in given]
    docs = await client.doc_change_many(args.tenant, args.db, changes)  # checked by the daemon
    _show_ids(docs, args.json)
    return EXIT_OK


async def _get(client: MindoodClient, args: argparse.Namespace) -> int:
    if len(args.doc_id) == 1:
        _show(await client.doc_get(args.tenant, args.db, args.doc_id[0]), args.json)
        return EXIT_OK
    docs = await client.doc_get_many(args.tenant, args.db, args.doc_id)
    if args.json:
        print_json(docs)
        return EXIT_OK
    for i, doc in enumerate(docs):
        if i:
            print()
        _show(doc, False)
    return EXIT_OK


async def _list(client: MindoodClient, args: argparse.Namespace) -> int:
    ids = await client.doc_list(args.tenant, args.db)
    if args.json:
        print_json({"tenant": args.tenant, "db": args.db, "doc_ids": ids})
    else:
        for doc_id in ids:
            print(doc_id)
    return EXIT_OK


async def _delete(client: MindoodClient, args: argparse.Namespace) -> int:
    await client.doc_delete(args.tenant, args.db, args.doc_id)
    if args.json:
        print_json({"id": args.doc_id, "deleted": True})
    else:
        print(f"deleted {args.doc_id}")
    return EXIT_OK


async def _changes(client: MindoodClient, args: argparse.Namespace) -> int:
    cursor = parse_json_arg(args.cursor, "--cursor") if args.cursor else None
    result = await client.doc_changes(args.tenant, args.db, cursor, limit=args.limit)
    if args.json:
        print_json(result)
    else:
        for doc_id in result["doc_ids"]:
            print(doc_id)
        more = " (more)" if result["has_more"] else ""
        print(f"# cursor: {json.dumps(result['cursor'])}{more}")
    return EXIT_OK


def add_doc_commands(sub: Subparsers) -> None:
    common = client_options()
    doc = sub.add_parser("doc", help="create, change, read and delete documents")
    cmds = doc.add_subparsers(dest="doc_command", required=True, metavar="ACTION")

    def target(parser: argparse.ArgumentParser, with_doc: bool) -> None:
        parser.add_argument("tenant")
        parser.add_argument("db")
        if with_doc:
            parser.add_argument("doc_id")

    create = cmds.add_parser("create", parents=[common], help="create a document, print its id")
    target(create, False)
    create.add_argument(
        "--data",
        help="initial fields as a JSON object (- or @FILE); an array of objects creates one "
        "document per object in one write and prints their ids",
    )
    create.add_argument("--id", help="a custom document id (^[a-z][a-z0-9_]*$)")
    create.add_argument("--key", help="id of the key to encrypt with (default: default)")
    create.set_defaults(handler=client_command(_create))

    change = cmds.add_parser(
        "change",
        parents=[common],
        help="change a document (one change)",
        epilog=SET_VALUE_RULES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target(change, False)
    change.add_argument("doc_id", nargs="?", help="the document (not with --changes)")
    change.add_argument("--ops", help="JSON array of operations (- or @FILE)")
    change.add_argument(
        "--changes",
        help='JSON array of {"doc_id": ..., "ops": [...]}: several documents, one write',
    )
    change.add_argument(
        "--set", action="append", metavar="PATH=VALUE", help="set a value (typing rules below)"
    )
    change.add_argument("--delete", action="append", metavar="PATH", help="delete a key/item")
    change.add_argument("--increment", action="append", metavar="PATH[=N]", help="add to counter")
    change.set_defaults(handler=client_command(_change))

    get = cmds.add_parser("get", parents=[common], help="show documents (several: one read)")
    target(get, False)
    get.add_argument("doc_id", nargs="+")
    get.set_defaults(handler=client_command(_get))

    listing = cmds.add_parser("list", parents=[common], help="list document ids")
    target(listing, False)
    listing.set_defaults(handler=client_command(_list))

    delete = cmds.add_parser("delete", parents=[common], help="delete a document")
    target(delete, True)
    delete.set_defaults(handler=client_command(_delete))

    changes = cmds.add_parser(
        "changes", parents=[common], help="documents changed since a cursor (prints the next)"
    )
    target(changes, False)
    changes.add_argument("--cursor", help="cursor JSON from a previous call")
    changes.add_argument("--limit", type=int, default=None)
    changes.set_defaults(handler=client_command(_changes))

    add_history_commands(cmds)


__all__ = ["SET_VALUE_RULES", "add_doc_commands", "collect_ops", "parse_path", "shorthand_ops"]
