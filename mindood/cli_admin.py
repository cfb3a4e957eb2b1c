"""CLI: ``mindood key|group|settings|purge ...`` — named keys and the tenant's administration.

Passwords come as for every command (``mindood.cli_common``); on standard input one line each,
in this order: ``key create``/``key export``/``key import`` read your password, then the share
password; directory changes (``group`` changes, ``settings change``, ``purge request``) read the
admin password. ::

    mindood key create acme hr -o hr.key           # seal it under a share password, pass it on
    mindood key import acme hr @hr.key             # on the receiving member
    mindood doc create acme staff --key hr --data '{"salary": 1}'
    mindood group create acme sales cn=ada/o=acme cn=bob/o=acme
    mindood settings change acme --set retention_days=30 --delete legacy
    mindood settings change acme contacts --set 'labels.title="Contacts"'
    mindood purge request acme contacts 7f3a... --reason "erasure request #12"

Settings change with ``doc change``'s operations (``--set PATH=JSON``, ``--delete PATH``,
``--increment PATH[=N]``, ``--ops JSON``), all applied as one change.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from mindood.cli_common import (
    EXIT_OK,
    CliError,
    Passwords,
    Subparsers,
    UsageError,
    client_command,
    client_options,
    jsonable,
    parse_json_arg,
    print_json,
    print_table,
)
from mindood.cli_doc import collect_ops
from mindood.client import MindoodClient


def _password_file(parser: argparse.ArgumentParser, flag: str) -> None:
    parser.add_argument(
        flag, type=Path, default=None, help="read the password from this file (not the terminal)"
    )


def _admin_password(args: argparse.Namespace) -> str:
    return Passwords().get(f"admin password for tenant {args.tenant}", args.admin_password_file)


def _write_private(path: Path, text: str) -> None:
    """A new file only its owner can read (an exported key is as secret as its password)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc}") from None


# -- keys ----------------------------------------------------------------------------------------
def _key_passwords(args: argparse.Namespace) -> tuple[str, str]:
    passwords = Passwords()
    password = passwords.get(f"your password for tenant {args.tenant}", args.password_file)
    share = passwords.get(f"share password for key {args.key_id}", args.share_password_file)
    return password, share


def _emit_key(result: dict[str, Any], args: argparse.Namespace, done: str) -> None:
    if args.json:
        print_json(result)
    exported = json.dumps(result["exported"], sort_keys=True)
    if args.output is not None:
        _write_private(args.output, exported + "\n")
        if not args.json:
            print(f"key {result['key_id']} {done}; sealed copy written to {args.output}")
    elif not args.json:
        print(exported)
        print(
            f"key {result['key_id']} {done}: pass on the line above and, separately, the "
            "share password",
            file=sys.stderr,
        )


async def _key_list(client: MindoodClient, args: argparse.Namespace) -> int:
    keys = await client.key_list(args.tenant)
    if args.json:
        print_json({"tenant": args.tenant, "keys": keys})
    else:
        print_table([(k["id"], k["versions"]) for k in keys], ("KEY", "VERSIONS"))
    return EXIT_OK


async def _key_create(client: MindoodClient, args: argparse.Namespace) -> int:
    password, share = _key_passwords(args)
    result = await client.key_create(
        args.tenant, args.key_id, password=password, share_password=share, rotate=args.rotate
    )
    _emit_key(result, args, "rotated" if result["rotated"] else "created")
    return EXIT_OK


async def _key_export(client: MindoodClient, args: argparse.Namespace) -> int:
    password, share = _key_passwords(args)
    result = await client.key_export(
        args.tenant, args.key_id, password=password, share_password=share
    )
    _emit_key(result, args, "exported")
    return EXIT_OK


async def _key_import(client: MindoodClient, args: argparse.Namespace) -> int:
    exported = parse_json_arg(args.exported, "the exported key")
    if not isinstance(exported, dict):
        raise UsageError("the exported key must be a JSON object (as key create prints it)")
    password, share = _key_passwords(args)
    result = await client.key_import(
        args.tenant, args.key_id, exported, share_password=share, password=password
    )
    if args.json:
        print_json(result)
    else:
        news = "imported" if result["added"] else "was already held"
        print(f"key {args.key_id} {news} in tenant {args.tenant}")
    return EXIT_OK


def _add_key(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    key = sub.add_parser("key", help="named keys: create, export, import, list")
    cmds = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")

    listing = cmds.add_parser("list", parents=[common], help="keys this member holds")
    listing.add_argument("tenant")
    listing.set_defaults(handler=client_command(_key_list))

    def key_command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = cmds.add_parser(name, parents=[common], help=help_text)
        parser.add_argument("tenant")
        parser.add_argument("key_id", help="the key's id (not 'default', no leading '$')")
        _password_file(parser, "--password-file")
        _password_file(parser, "--share-password-file")
        return parser

    create = key_command("create", "create a named key; prints it sealed with a share password")
    create.add_argument("--rotate", action="store_true", help="add a newer version to a key")
    create.add_argument("--output", "-o", type=Path, help="write the sealed key here (0600)")
    create.set_defaults(handler=client_command(_key_create))

    export = key_command("export", "print a key this member holds, sealed with a share password")
    export.add_argument("--output", "-o", type=Path, help="write the sealed key here (0600)")
    export.set_defaults(handler=client_command(_key_export))

    imported = key_command("import", "import a key someone shared")
    imported.add_argument("exported", help="the sealed key: JSON, @FILE, or - for stdin")
    imported.set_defaults(handler=client_command(_key_import))


# -- groups --------------------------------------------------------------------------------------
def _show_group(result: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print_json(result)
        return
    print(f"group {result['name']}: {len(result['members'])} member(s)")
    for member in result["members"]:
        print(f"  {member}")


async def _group_list(client: MindoodClient, args: argparse.Namespace) -> int:
    groups = await client.group_list(args.tenant)
    if args.json:
        print_json({"tenant": args.tenant, "groups": groups})
    else:
        for name in groups:
            print(name)
    return EXIT_OK


async def _group_show(client: MindoodClient, args: argparse.Namespace) -> int:
    members = await client.group_members(args.tenant, args.name)
    _show_group({"tenant": args.tenant, "name": args.name, "members": members}, args)
    return EXIT_OK


async def _group_create(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.group_create(
        args.tenant, args.name, args.members, admin_password=_admin_password(args)
    )
    _show_group(result, args)
    return EXIT_OK


async def _group_add(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.group_add(
        args.tenant, args.name, args.members, admin_password=_admin_password(args)
    )
    _show_group(result, args)
    return EXIT_OK


async def _group_remove(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.group_remove(
        args.tenant, args.name, args.members, admin_password=_admin_password(args)
    )
    _show_group(result, args)
    return EXIT_OK


async def _group_delete(client: MindoodClient, args: argparse.Namespace) -> int:
    await client.group_delete(args.tenant, args.name, admin_password=_admin_password(args))
    if args.json:
        print_json({"tenant": args.tenant, "name": args.name, "deleted": True})
    else:
        print(f"group {args.name} deleted")
    return EXIT_OK


def _add_group(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("group", help="groups of users (changes need the admin password)")
    cmds = group.add_subparsers(dest="group_command", required=True, metavar="ACTION")

    listing = cmds.add_parser("list", parents=[common], help="the tenant's groups")
    listing.add_argument("tenant")
    listing.set_defaults(handler=client_command(_group_list))

    show = cmds.add_parser("show", parents=[common], help="members of a group")
    show.add_argument("tenant")
    show.add_argument("name")
    show.set_defaults(handler=client_command(_group_show))

    changes = (
        ("create", "admin: create a group", "*", _group_create),
        ("add", "admin: add members to a group", "+", _group_add),
        ("remove", "admin: remove members from a group", "+", _group_remove),
        ("delete", "admin: delete a group", None, _group_delete),
    )
    for name, help_text, nargs, action in changes:
        parser = cmds.add_parser(name, parents=[common], help=help_text)
        parser.add_argument("tenant")
        parser.add_argument("name", help="the group (case-insensitive)")
        if nargs is not None:
            parser.add_argument("members", nargs=nargs, help="user names or other groups' names")
        _password_file(parser, "--admin-password-file")
        parser.set_defaults(handler=client_command(action))


# -- settings ------------------------------------------------------------------------------------
def _show_settings(settings: dict[str, Any], args: argparse.Namespace) -> None:
    if args.json:
        print_json({"tenant": args.tenant, "db": args.db, "settings": settings})
    else:
        print(json.dumps(jsonable(settings), indent=2, sort_keys=True, ensure_ascii=False))


async def _settings_get(client: MindoodClient, args: argparse.Namespace) -> int:
    _show_settings(await client.settings_get(args.tenant, db=args.db), args)
    return EXIT_OK


async def _settings_change(client: MindoodClient, args: argparse.Namespace) -> int:
    settings = await client.settings_change(
        args.tenant, collect_ops(args), admin_password=_admin_password(args), db=args.db
    )
    _show_settings(settings, args)
    return EXIT_OK


def _add_settings(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    settings = sub.add_parser("settings", help="tenant and database settings")
    cmds = settings.add_subparsers(dest="settings_command", required=True, metavar="ACTION")

    get = cmds.add_parser("get", parents=[common], help="show the tenant's or a database's")
    get.add_argument("tenant")
    get.add_argument("db", nargs="?", help="a database (default: the tenant's settings)")
    get.set_defaults(handler=client_command(_settings_get))

    change = cmds.add_parser("change", parents=[common], help="admin: change settings")
    change.add_argument("tenant")
    change.add_argument("db", nargs="?", help="a database (default: the tenant's settings)")
    change.add_argument("--set", action="append", metavar="PATH=JSON", help="set a value")
    change.add_argument("--delete", action="append", metavar="PATH", help="delete a setting")
    change.add_argument("--increment", action="append", metavar="PATH[=N]", help="add to counter")
    change.add_argument("--ops", help="JSON array of doc change operations (- or @FILE)")
    _password_file(change, "--admin-password-file")
    change.set_defaults(handler=client_command(_settings_change))


# -- purge ---------------------------------------------------------------------------------------
async def _purge_request(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.purge_request(
        args.tenant,
        args.db,
        args.doc_ids,
        admin_password=_admin_password(args),
        reason=args.reason,
    )
    if args.json:
        print_json(result)
    else:
        print(
            f"purge {result['request_id']} of {len(result['doc_ids'])} document(s) published; "
            f"{result['entries_removed']} entries erased here, other nodes follow when they sync"
        )
    return EXIT_OK


async def _purge_apply(client: MindoodClient, args: argparse.Namespace) -> int:
    applied = await client.purge_apply(args.tenant)
    if args.json:
        print_json({"tenant": args.tenant, "applied": applied})
    else:
        print(f"{len(applied)} pending purge request(s) applied")
    return EXIT_OK


async def _purge_list(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.purge_list(args.tenant, db=args.db)
    if args.json:
        print_json(result)
        return EXIT_OK
    rows = [
        (
            r["request_id"],
            r["db"],
            len(r["doc_ids"]),
            "applied" if r["applied"] else "pending",
            r["reason"] or "",
        )
        for r in result["requests"]
    ]
    print_table(rows, ("REQUEST", "DB", "DOCS", "HERE", "REASON"))
    return EXIT_OK


def _add_purge(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    purge = sub.add_parser("purge", help="erase documents' whole history on every node")
    cmds = purge.add_subparsers(dest="purge_command", required=True, metavar="ACTION")

    request = cmds.add_parser(
        "request", parents=[common], help="admin: purge documents (here now, elsewhere on sync)"
    )
    request.add_argument("tenant")
    request.add_argument("db")
    request.add_argument("doc_ids", nargs="+", metavar="DOC_ID")
    request.add_argument("--reason", help="why (members can read it)")
    _password_file(request, "--admin-password-file")
    request.set_defaults(handler=client_command(_purge_request))

    apply = cmds.add_parser("apply", parents=[common], help="apply pending purge requests now")
    apply.add_argument("tenant")
    apply.set_defaults(handler=client_command(_purge_apply))

    listing = cmds.add_parser("list", parents=[common], help="purge requests and their state")
    listing.add_argument("tenant")
    listing.add_argument("--db", help="only this database")
    listing.set_defaults(handler=client_command(_purge_list))


def add_admin_commands(sub: Subparsers) -> None:
    common = client_options()
    _add_key(sub, common)
    _add_group(sub, common)
    _add_settings(sub, common)
    _add_purge(sub, common)


__all__ = ["add_admin_commands"]
