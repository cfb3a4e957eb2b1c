"""``mindood rpc``, ``mindood sync`` and ``mindood ping``: the schema and generic calls.

``rpc call`` reaches every method the daemon declares, so an app developer can try a method
before writing code for it; ``rpc methods`` prints the declarations the daemon serves.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mindood.cli_common import (
    EXIT_OK,
    Subparsers,
    UsageError,
    client_command,
    client_options,
    parse_json_arg,
    print_json,
    print_table,
)
from mindood.client import MindoodClient


async def _ping(client: MindoodClient, args: argparse.Namespace) -> int:
    answer = await client.ping()
    if args.json:
        print_json({"answer": answer})
    else:
        print(answer)
    return EXIT_OK


def _signature(method: dict[str, Any]) -> str:
    params = [p["name"] if p["required"] else f"[{p['name']}]" for p in method["params"]]
    return f"{method['name']}({', '.join(params)})"


async def _methods(client: MindoodClient, args: argparse.Namespace) -> int:
    methods = await client.rpc_methods()
    if args.json:
        print_json(methods)
        return EXIT_OK
    if args.method:
        chosen = [m for m in methods if m["name"] == args.method]
        if not chosen:
            raise UsageError(f"the daemon has no method {args.method!r}")
        method = chosen[0]
        print(f"{_signature(method)}\n  {method['doc']}")
        for p in method["params"]:
            need = "required" if p["required"] else "optional"
            print(f"  {p['name']:<16} {p['type']:<8} {need:<9} {p['doc']}")
        print(f"  returns {method['result']}")
        if method["errors"]:
            print(f"  errors  {', '.join(method['errors'])}")
        return EXIT_OK
    rows = [(_signature(m), m["doc"]) for m in methods]
    print_table(rows, ("METHOD", "WHAT IT DOES"))
    return EXIT_OK


async def _call(client: MindoodClient, args: argparse.Namespace) -> int:
    params = parse_json_arg(args.params, "--params") if args.params is not None else {}
    if not isinstance(params, dict):
        raise UsageError("--params must be a JSON object of named parameters")
    print_json(await client.call(args.method, params))
    return EXIT_OK


async def _sync_status(client: MindoodClient, args: argparse.Namespace) -> int:
    print_json(await client.sync_status())
    return EXIT_OK


async def _sync_now(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.sync_now(tenant=args.tenant, db=args.db, peer=args.peer)
    print_json(result, sys.stdout)
    return EXIT_OK


def add_rpc_commands(sub: Subparsers) -> None:
    common = client_options()
    ping = sub.add_parser("ping", parents=[common], help="check that the daemon answers")
    ping.set_defaults(handler=client_command(_ping))

    rpc = sub.add_parser("rpc", help="the daemon's RPC methods: list them, call any of them")
    actions = rpc.add_subparsers(dest="action", required=True, metavar="ACTION")
    methods = actions.add_parser(
        "methods", parents=[common], help="list the methods (one: its parameters and result)"
    )
    methods.add_argument("method", nargs="?", help="show this method in full")
    methods.set_defaults(handler=client_command(_methods))
    call = actions.add_parser(
        "call", parents=[common], help="call a method; prints its result as JSON"
    )
    call.add_argument("method", help="e.g. doc.get")
    call.add_argument(
        "--params", help="named parameters as a JSON object ('-' stdin, '@FILE' a file)"
    )
    call.set_defaults(handler=client_command(_call))

    sync = sub.add_parser("sync", help="sync state, and sync now")
    sync_actions = sync.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = sync_actions.add_parser("status", parents=[common], help="per-peer sync state")
    status.set_defaults(handler=client_command(_sync_status))
    now = sync_actions.add_parser("now", parents=[common], help="start a sync round now")
    now.add_argument("--tenant", help="only this tenant")
    now.add_argument("--db", help="only this database")
    now.add_argument("--peer", help="only this peer (node id or address)")
    now.set_defaults(handler=client_command(_sync_now))


__all__ = ["add_rpc_commands"]
