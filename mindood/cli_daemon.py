"""CLI: ``mindood run`` (the daemon), ``status``, ``watch``, ``peers``, ``reload``."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from mindood.cli_common import (
    EXIT_OK,
    Subparsers,
    UsageError,
    client_command,
    client_options,
    print_json,
    print_json_line,
    print_table,
    print_tenants,
)
from mindood.client import MindoodClient, Note
from mindood.daemon.events import TOPICS


def _run(args: argparse.Namespace) -> int:
    from mindood.daemon.daemon import DaemonOptions
    from mindood.daemon.main import run

    return run(
        DaemonOptions(
            config_path=args.config,
            config_required=args.config is not None,
            data_dir=args.data_dir,
            socket=args.socket,
            log_level=args.log_level,
        )
    )


def add_run(sub: Subparsers) -> None:
    run = sub.add_parser(
        "run",
        help="run the daemon in the foreground",
        description="Run the mindood daemon until SIGTERM/SIGINT; SIGHUP reloads the config.",
    )
    run.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    run.add_argument("--data-dir", type=Path, default=None, help="where tenants are stored")
    run.add_argument("--socket", type=Path, default=None, help="path of the RPC socket")
    run.set_defaults(handler=_run)


# -- status --------------------------------------------------------------------------------------
async def _status(client: MindoodClient, args: argparse.Namespace) -> int:
    status = await client.status()
    if args.json:
        print_json(status)
        return EXIT_OK
    print(f"mindood {status['version']} (pid {status['pid']}), up {status['uptime_seconds']:.0f}s")
    print(f"socket:   {status['socket']}")
    print(f"data:     {status['data_dir']}")
    print(f"config:   {status['config'] or '(defaults)'}")
    peers = status["peers"]
    print(f"peers:    {peers['connected']} connected, {peers['configured']} configured")
    print()
    tenants = status["tenants"]
    if tenants:
        print_tenants(tenants)
        for tenant in tenants:
            note = tenant.get("sync")
            if isinstance(note, dict) and note.get("state") == "revoked":
                print(
                    f"sync {tenant['id']}: this device's key was revoked: {note.get('reason', '')}"
                    " (peers refuse it; ask the tenant admin)"
                )
            for name, health in tenant.get("stores", {}).items():
                print(f"store {tenant['id']}/{name}: {describe_store_health(health)}")
                for entry_id in health.get("quarantined_ids", []):
                    print(f"  quarantined entry {entry_id}")
    else:
        print("no tenants yet: create one with `mindood tenant create <id>`")
    for peer in (status.get("sync") or {}).get("peers", []):
        for db, error in peer.get("errors", []):
            print(
                f"sync {peer['tenant_id']}/{db} from {peer['address']}: failing, retried: {error}"
            )
    return EXIT_OK


def describe_store_health(health: dict[str, Any]) -> str:
    """One line for a store that is not simply ok: its state and every loss it reported."""
    parts = [str(health.get("state", "?"))]
    if health.get("problem"):
        parts.append(str(health["problem"]))
    if health.get("quarantined"):
        parts.append(f"{health['quarantined']} damaged entries quarantined (peers resend them)")
    if health.get("recovered"):
        parts.append(f"recovered: {health['recovered']}")
    return "; ".join(parts)


async def _reload(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.reload_config()
    if args.json:
        print_json(result)
    elif result.get("ok"):
        print("configuration reloaded")
        for key in result.get("restart_required", []):
            print(f"  {key} changed: restart the daemon to apply it")
    else:
        print(f"reload failed, the old configuration stays: {result.get('error')}")
    return EXIT_OK if result.get("ok") else 1


async def _peers(client: MindoodClient, args: argparse.Namespace) -> int:
    result = await client.peers()
    if args.json:
        print_json(result)
        return EXIT_OK
    peers = result["peers"]
    if peers:
        rows = [
            (
                p["peer_id"],
                p["address"],
                p.get("transport", ""),
                ", ".join(p["tenants"]),
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["connected_at"])),
            )
            for p in peers
        ]
        print_table(rows, ("PEER", "ADDRESS", "TRANSPORT", "TENANTS", "SINCE"))
    else:
        print("no peers connected")
    if result["configured"]:
        print()
        print_table(
            [(p["address"], ", ".join(p["tenants"])) for p in result["configured"]],
            ("CONFIGURED PEER", "TENANTS"),
        )
    return EXIT_OK


# -- watch ---------------------------------------------------------------------------------------
def describe_note(note: Note) -> str:
    """One readable line per notification."""
    p: dict[str, Any] = note.params
    if note.method == "doc.changed":
        ids = p["doc_ids"]
        shown = ", ".join(ids[:5]) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")
        return f"doc.changed     {p['tenant']}/{p['db']}: {shown}"
    if note.method == "tenant.state":
        return f"tenant.state    {p['tenant']} is {p['state']}"
    if note.method == "peer.connected":
        return f"peer.connected  {p['peer_id']} at {p['address']}"
    if note.method == "peer.disconnected":
        return f"peer.disconnected {p['peer_id']} {p.get('reason', '')}".rstrip()
    if note.method == "sync.progress":
        state = "done" if p.get("done") else "syncing"
        return (
            f"sync.progress   {p['peer_id']} {p['tenant']}/{p['db']}: "
            f"sent {p['sent']}, received {p['received']} ({state})"
        )
    if note.method == "lagged":
        return f"lagged          {p['dropped']} notifications were dropped (reader too slow)"
    return f"{note.method} {p}"


async def _watch(client: MindoodClient, args: argparse.Namespace) -> int:
    topics = args.topic or None
    if topics and not set(topics) <= TOPICS:
        raise UsageError(f"--topic must be one of {', '.join(sorted(TOPICS))}")
    sub = await client.subscribe(topics, tenant=args.tenant, db=args.db)
    if args.json:
        print_json_line({"subscribed": sub.id, "topics": sub.topics})
    else:
        print(f"watching {', '.join(sub.topics)} (Ctrl-C to stop)", flush=True)
    seen = 0
    deadline = None if args.timeout is None else asyncio.get_running_loop().time() + args.timeout
    async with sub:
        while args.count is None or seen < args.count:
            remaining = None
            if deadline is not None:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
            try:
                async with asyncio.timeout(remaining):
                    note = await sub.get()
            except TimeoutError:
                break
            seen += 1
            if args.json:
                print_json_line({"method": note.method, "params": note.params})
            else:
                print(describe_note(note), flush=True)
    return EXIT_OK


def add_client_commands(sub: Subparsers) -> None:
    common = client_options()
    status = sub.add_parser("status", parents=[common], help="show the daemon's state")
    status.set_defaults(handler=client_command(_status))
    reload = sub.add_parser("reload", parents=[common], help="reload the configuration file")
    reload.set_defaults(handler=client_command(_reload))
    peers = sub.add_parser("peers", parents=[common], help="list connected and configured peers")
    peers.set_defaults(handler=client_command(_peers))
    watch = sub.add_parser(
        "watch", parents=[common], help="stream notifications (document changes, peers, sync)"
    )
    watch.add_argument(
        "--topic",
        action="append",
        help=f"only these topics (repeatable): {', '.join(sorted(TOPICS))}",
    )
    watch.add_argument("--tenant", help="only events of this tenant")
    watch.add_argument("--db", help="only events of this database")
    watch.add_argument("--count", type=int, default=None, help="exit after N notifications")
    watch.add_argument("--timeout", type=float, default=None, help="exit after SECONDS")
    watch.set_defaults(handler=client_command(_watch))


__all__ = ["add_client_commands", "add_run", "describe_note"]
