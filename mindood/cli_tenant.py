"""CLI: ``mindood tenant ...`` and ``mindood db ...``.

Joining a tenant from a second node (both daemons running)::

    node-b$ mindood tenant request --user cn=bob/o=acme > request.txt   # bob's new password
    node-a$ mindood tenant approve acme "$(cat request.txt)" > response.txt  # admin password
    node-b$ mindood tenant join "$(cat response.txt)"                   # bob's password again

``approve`` first shows who asks (user and device label, on stderr) and ``join`` checks the
response, both before any password is asked. New passwords (``create``, ``request``, a share
password) are typed twice and need at least 8 characters.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from mindood.cli_common import (
    EXIT_OK,
    CliError,
    Passwords,
    Subparsers,
    UsageError,
    client_command,
    client_options,
    print_json,
    print_tenants,
)
from mindood.client import MindoodClient


def _passwords() -> Passwords:
    return Passwords()


async def _create(client: MindoodClient, args: argparse.Namespace) -> int:
    user = args.user or f"cn=user/o={args.tenant}"
    admin = args.admin or f"cn=admin/o={args.tenant}"
    passwords = _passwords()
    admin_password = passwords.get(
        f"admin password for {admin}", args.admin_password_file, new=True
    )
    user_password = passwords.get(f"password for {user}", args.password_file, new=True)
    result = await client.tenant_create(
        args.tenant,
        admin_name=admin,
        admin_password=admin_password,
        user_name=user,
        user_password=user_password,
    )
    if args.json:
        print_json(result)
    else:
        print(f"tenant {result['tenant']} created and unlocked for {result['user']}")
    return EXIT_OK


async def _unlock(client: MindoodClient, args: argparse.Namespace) -> int:
    password = _passwords().get(f"password for tenant {args.tenant}", args.password_file)
    result = await client.tenant_unlock(args.tenant, password)
    if args.json:
        print_json(result)
    else:
        print(f"tenant {args.tenant} {'unlocked' if result['changed'] else 'was already unlocked'}")
    return EXIT_OK


async def _lock(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.tenant_lock(args.tenant)
    if args.json:
        print_json(result)
    else:
        print(f"tenant {args.tenant} {'locked' if result['changed'] else 'was already locked'}")
    return EXIT_OK


async def _list(client: MindoodClient, args: argparse.Namespace) -> int:
    tenants = await client.tenant_list()
    if args.json:
        print_json({"tenants": tenants})
    elif tenants:
        print_tenants(tenants)
    else:
        print("no tenants")
    return EXIT_OK


async def _request(client: MindoodClient, args: argparse.Namespace) -> int:
    password = _passwords().get(f"password for {args.user}", args.password_file, new=True)
    request = await client.tenant_join_request(args.user, password, label=args.label)
    if args.json:
        print_json({"request": request})
    else:
        print(request)
    return EXIT_OK


def _describe_request(request: str, username: str | None) -> dict[str, str | None]:
    """Who a join request says is asking; a request the daemon would refuse fails here."""
    from mindood.tenant.joinrequest import JoinRequest  # the crypto, only for this command

    parsed = JoinRequest.from_uri(request)
    if not (username or parsed.username):
        raise UsageError("the join request names no user: give --username")
    return {"user": username or parsed.username, "device": parsed.label}


async def _approve(client: MindoodClient, args: argparse.Namespace) -> int:
    asking = _describe_request(args.request, args.username)
    if not args.json:
        device = f'device "{asking["device"]}"' if asking["device"] else "no device label"
        print(f"join request from {asking['user']} ({device})", file=sys.stderr, flush=True)
    passwords = _passwords()
    admin_password = passwords.get(
        f"admin password for tenant {args.tenant}", args.admin_password_file
    )
    share_password = None
    if args.share_password_file is not None:
        share_password = passwords.get("share password", args.share_password_file, new=True)
    response = await client.tenant_approve(
        args.tenant,
        args.request,
        admin_password=admin_password,
        username=args.username,
        label=args.label,
        share_password=share_password,
        relay=args.relay,
    )
    if args.json:
        print_json({"response": response, "request": asking})
    else:
        print(response)
    return EXIT_OK


async def _revoke(client: MindoodClient, args: argparse.Namespace) -> int:
    admin_password = _passwords().get(
        f"admin password for tenant {args.tenant}", args.admin_password_file
    )
    revoked = await client.tenant_revoke(args.tenant, args.username, admin_password=admin_password)
    if args.json:
        print_json({"revoked": revoked})
    else:
        print(f"revoked {revoked} device(s) of {args.username}")
    return EXIT_OK


async def _join(client: MindoodClient, args: argparse.Namespace) -> int:
    from mindood.tenant.joinresponse import JoinResponse  # the crypto, only for this command

    response = JoinResponse.from_uri(args.response)  # a bad URI fails before any password
    passwords = _passwords()
    password = passwords.get(
        f"password for {response.username} (tenant {response.tenant_id})", args.password_file
    )
    share_password = None
    if args.share_password_file is not None:
        share_password = passwords.get("share password", args.share_password_file)
    result = await client.tenant_join(args.response, password, share_password=share_password)
    if args.json:
        print_json(result)
    else:
        print(f"joined tenant {result['tenant']} as {result['user']}")
    return EXIT_OK


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner alone (0600), also over an old file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


async def _export(client: MindoodClient, args: argparse.Namespace) -> int:
    password = _passwords().get(f"password for tenant {args.tenant}", args.password_file)
    blob = await client.tenant_export_session(args.tenant, password)
    try:
        if args.output == "-":
            sys.stdout.buffer.write(blob)
            sys.stdout.buffer.flush()
        else:
            await asyncio.to_thread(write_private, Path(args.output), blob)
    except OSError as exc:
        raise CliError(f"cannot write the session: {exc}") from None
    if args.output != "-" and not args.json:
        print(f"session of {args.tenant} written to {args.output} (sealed with your password)")
    elif args.json:
        print_json({"tenant": args.tenant, "output": args.output, "bytes": len(blob)})
    return EXIT_OK


async def _import(client: MindoodClient, args: argparse.Namespace) -> int:
    try:
        blob = await asyncio.to_thread(Path(args.input).read_bytes)
    except OSError as exc:
        raise CliError(f"cannot read the session: {exc}") from None
    password = _passwords().get("password of the session", args.password_file)
    result = await client.tenant_import_session(blob, password)
    if args.json:
        print_json(result)
    else:
        print(f"tenant {result['tenant']} imported and unlocked for {result['user']}")
    return EXIT_OK


async def _db_list(client: MindoodClient, args: argparse.Namespace) -> int:
    names = await client.db_list(args.tenant)
    if args.json:
        print_json({"tenant": args.tenant, "databases": names})
    else:
        for name in names:
            print(name)
    return EXIT_OK


async def _db_create(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.db_create(args.tenant, args.db)
    if args.json:
        print_json(result)
    else:
        print(f"database {args.tenant}/{args.db} {'created' if result['created'] else 'exists'}")
    return EXIT_OK


async def _db_drop(client: MindoodClient, args: argparse.Namespace) -> int:
    if not args.yes:
        raise UsageError(f"dropping deletes this node's copy of {args.tenant}/{args.db}: add --yes")
    result = await client.db_drop(args.tenant, args.db)
    if args.json:
        print_json(result)
    else:
        print(f"database {args.tenant}/{args.db} dropped on this node (other nodes keep theirs)")
    return EXIT_OK


def _password_file(parser: argparse.ArgumentParser, flag: str = "--password-file") -> None:
    parser.add_argument(
        flag, type=Path, default=None, help="read the password from this file (not the terminal)"
    )


def add_tenant_commands(sub: Subparsers) -> None:
    common = client_options()
    tenant = sub.add_parser("tenant", help="create, join, unlock and lock tenants")
    cmds = tenant.add_subparsers(dest="tenant_command", required=True, metavar="ACTION")

    create = cmds.add_parser("create", parents=[common], help="create a tenant on this node")
    create.add_argument("tenant", help="tenant id")
    create.add_argument("--admin", help="admin username (default cn=admin/o=<tenant>)")
    create.add_argument("--user", help="your username (default cn=user/o=<tenant>)")
    _password_file(create, "--admin-password-file")
    _password_file(create)
    create.set_defaults(handler=client_command(_create))

    unlock = cmds.add_parser("unlock", parents=[common], help="unlock a tenant with its password")
    unlock.add_argument("tenant")
    _password_file(unlock)
    unlock.set_defaults(handler=client_command(_unlock))

    lock = cmds.add_parser("lock", parents=[common], help="lock a tenant (drop its keys)")
    lock.add_argument("tenant")
    lock.set_defaults(handler=client_command(_lock))

    listing = cmds.add_parser("list", parents=[common], help="list tenants")
    listing.set_defaults(handler=client_command(_list))

    request = cmds.add_parser(
        "request", parents=[common], help="make a join request (prints an mdb:// URI)"
    )
    request.add_argument("--user", required=True, help="your username on the tenant")
    request.add_argument("--label", help="a label for this device")
    _password_file(request)
    request.set_defaults(handler=client_command(_request))

    approve = cmds.add_parser(
        "approve", parents=[common], help="admin: approve a join request (prints the response)"
    )
    approve.add_argument("tenant")
    approve.add_argument("request", help="the join request URI")
    approve.add_argument("--username", help="register the user under this name")
    approve.add_argument("--label", help="label of the new device")
    approve.add_argument(
        "--relay",
        action="store_true",
        help="a relay or edge-cache node: share only $publicinfos (it can never read documents)",
    )
    _password_file(approve, "--admin-password-file")
    _password_file(approve, "--share-password-file")
    approve.set_defaults(handler=client_command(_approve))

    revoke = cmds.add_parser(
        "revoke", parents=[common], help="admin: revoke every device of a user (sessions close)"
    )
    revoke.add_argument("tenant")
    revoke.add_argument("username")
    _password_file(revoke, "--admin-password-file")
    revoke.set_defaults(handler=client_command(_revoke))

    join = cmds.add_parser("join", parents=[common], help="join a tenant with a join response")
    join.add_argument("response", help="the join response URI")
    _password_file(join)
    _password_file(join, "--share-password-file")
    join.set_defaults(handler=client_command(_join))

    export = cmds.add_parser(
        "export",
        parents=[common],
        help="export the tenant's session (sealed with your password; the file is 0600)",
    )
    export.add_argument("tenant")
    export.add_argument("--output", "-o", required=True, help="file to write, or - for stdout")
    _password_file(export)
    export.set_defaults(handler=client_command(_export))

    restore = cmds.add_parser("import", parents=[common], help="import an exported session")
    restore.add_argument("input", help="session file")
    _password_file(restore)
    restore.set_defaults(handler=client_command(_import))

    db = sub.add_parser("db", help="list, create and drop databases")
    db_cmds = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_list = db_cmds.add_parser("list", parents=[common], help="databases of a tenant")
    db_list.add_argument("tenant")
    db_list.set_defaults(handler=client_command(_db_list))
    db_create = db_cmds.add_parser("create", parents=[common], help="create a database")
    db_create.add_argument("tenant")
    db_create.add_argument("db")
    db_create.set_defaults(handler=client_command(_db_create))
    db_drop = db_cmds.add_parser(
        "drop", parents=[common], help="delete this node's copy of a database, stop syncing it"
    )
    db_drop.add_argument("tenant")
    db_drop.add_argument("db")
    db_drop.add_argument("--yes", action="store_true", help="yes, delete it")
    db_drop.set_defaults(handler=client_command(_db_drop))


__all__ = ["add_tenant_commands", "write_private"]
