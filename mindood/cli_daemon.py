"""CLI: ``mindood run`` (the daemon), ``status``, ``watch``, ``peers``, ``reload``."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mindood.cli_common import (
    EXIT_OK,
    CliError,
    Subparsers,
    UsageError,
    client_command,
    client_options,
    print_json,
    print_json_line,
    print_table,
    print_tenants,
)
from mindood.client import DaemonConnectionError, MindoodClient, Note
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
    sync: dict[str, Any] = status.get("sync") or {}
    for line in describe_node(sync) if sync else []:
        print(line)
    peers = status["peers"]
    upstreams = sync.get("upstreams") or []
    counted = f"{peers['connected']} connected, {peers['configured']} configured"
    if peers.get("upstreams"):
        counted += f", {peers['upstreams']} upstream"
    print(f"peers:    {counted}")
    for upstream in upstreams:
        state = "connected" if upstream.get("connected") else "not connected"
        print(f"upstream: {upstream['address']} for {upstream['tenant']} ({state})")
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


def describe_node(sync: dict[str, Any]) -> list[str]:
    """Who this node is on the sync network: its node id, role and listen addresses."""
    ids: dict[str, str] = sync.get("node_ids") or {}
    roles: dict[str, str] = sync.get("roles") or {}
    lines = []
    if len(set(ids.values())) == 1:
        lines.append(f"node id:  {next(iter(ids.values()))}")
    else:
        lines += [f"node id:  {node} ({tenant})" for tenant, node in sorted(ids.items())]
    role = sync.get("role")
    if role == "mixed":
        role = ", ".join(f"{r} ({t})" for t, r in sorted(roles.items()))
    lines.append(f"role:     {role or '(no tenant unlocked)'}")
    listening = sync.get("listening") or []
    lines.append(f"listen:   {', '.join(listening) or 'not listening ([network] listen)'}")
    http = sync.get("http") or []
    if http:
        lines.append(f"http:     {', '.join(http)}")
    refused = sync.get("http_refused") or {}
    if refused:
        counts = ", ".join(f"{tier} {count:,}" for tier, count in sorted(refused.items()))
        lines.append(f"          refused over rate limits: {counts}")
    return lines


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


def _reach(address: str, reached: set[str]) -> str:
    return "connected" if address in reached else "not connected"


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
                p.get("user") or "-",
                p.get("device") or "-",
                p["address"],
                p.get("transport", ""),
                ", ".join(p["tenants"]),
                p.get("state", ""),
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(p["connected_at"])),
            )
            for p in peers
        ]
        headers = ("PEER", "USER", "DEVICE", "ADDRESS", "TRANSPORT", "TENANT", "STATE", "SINCE")
        print_table(rows, headers)
        progress = [
            (
                p["peer_id"][:12],
                f"{', '.join(p['tenants'])}/{d['db']}",
                f"{d['sent']} ({human_bytes(d['sent_bytes'])})",
                f"{d['received']} ({human_bytes(d['received_bytes'])})",
                d.get("error") or ("syncing" if d.get("syncing") else "up to date"),
            )
            for p in peers
            for d in p.get("databases", [])
        ]
        if progress:
            print()
            print_table(progress, ("PEER", "DATABASE", "SENT", "RECEIVED", "STATE"))
    else:
        print("no peers connected")
    if result["configured"]:
        reached = {p["address"] for p in peers}
        print()
        print_table(
            [
                (
                    p["address"],
                    ", ".join(p["tenants"]) or "(all)",
                    _reach(p["address"], reached),
                )
                for p in result["configured"]
            ],
            ("CONFIGURED PEER", "TENANTS", "STATE"),
        )
    upstreams = result.get("upstreams") or []
    if upstreams:
        reached = {p["address"] for p in peers}
        print()
        print_table(
            [
                (
                    u["address"],
                    u["tenant"],
                    "connected" if u["address"] in reached else "not connected",
                )
                for u in upstreams
            ],
            ("UPSTREAM", "TENANT", "STATE"),
        )
    return EXIT_OK


def human_bytes(size: int) -> str:
    """``1536`` -> ``1.5 KiB``: sizes people read at a glance."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


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
        who = " ".join(str(x) for x in (p.get("user"), p.get("device")) if x)
        return (
            f"peer.connected  {p['peer_id']} at {p['address']} over {p.get('transport', '?')}"
            + (f" ({who})" if who else "")
        )
    if note.method == "peer.disconnected":
        return f"peer.disconnected {p['peer_id']} at {p.get('address', '?')}: {p.get('reason', '')}"
    if note.method == "sync.progress":
        state = "done" if p.get("done") else "syncing"
        return (
            f"sync.progress   {p['peer_id']} {p['tenant']}/{p['db']}: "
            f"sent {p['sent']} ({human_bytes(p.get('sent_bytes', 0))}), "
            f"received {p['received']} ({human_bytes(p.get('received_bytes', 0))}) ({state})"
        )
    if note.method == "lagged":
        return f"lagged          {p['dropped']} notifications were dropped (reader too slow)"
    return f"{note.method} {p}"


#: Waits between attempts to reach the daemon again under ``watch --follow``: doubling, capped.
FOLLOW_FIRST_DELAY = 0.2
FOLLOW_MAX_DELAY = 2.0


class _Deadline:
    """``--timeout`` across reconnects: the seconds left, None for no limit."""

    def __init__(self, seconds: float | None) -> None:
        loop = asyncio.get_running_loop()
        self._at = None if seconds is None else loop.time() + seconds

    def left(self) -> float | None:
        if self._at is None:
            return None
        return max(0.0, self._at - asyncio.get_running_loop().time())

    def passed(self) -> bool:
        left = self.left()
        return left is not None and left <= 0


async def _reconnect(args: argparse.Namespace, deadline: _Deadline) -> MindoodClient | None:
    """The daemon again, trying with bounded backoff; None once ``--timeout`` ran out."""
    delay = FOLLOW_FIRST_DELAY
    while not deadline.passed():
        try:
            return await MindoodClient.connect(args.socket, connect_timeout=FOLLOW_MAX_DELAY)
        except DaemonConnectionError:
            pass
        left = deadline.left()
        await asyncio.sleep(delay if left is None else min(delay, left))
        delay = min(delay * 2, FOLLOW_MAX_DELAY)
    return None


async def _watch(client: MindoodClient, args: argparse.Namespace) -> int:
    """Print notifications; ``--follow`` survives daemon restarts (resubscribing each time)."""
    if args.topic and not set(args.topic) <= TOPICS:
        raise UsageError(f"--topic must be one of {', '.join(sorted(TOPICS))}")
    deadline = _Deadline(args.timeout)
    progress = _WatchProgress()
    current = client
    try:
        while True:
            try:
                return await _watch_once(current, args, deadline, progress)
            except DaemonConnectionError as exc:
                if not args.follow:
                    raise CliError(
                        f"lost the connection to the daemon ({exc}): it stopped or restarted; "
                        "`mindood watch --follow` reconnects by itself"
                    ) from None
                print(
                    f"mindood: lost the connection to the daemon ({exc}); reconnecting",
                    file=sys.stderr,
                    flush=True,
                )
            if current is not client:
                await current.close()
            reached = await _reconnect(args, deadline)
            if reached is None:
                return EXIT_OK
            current = reached
    finally:
        if current is not client:
            await current.close()


@dataclass(slots=True)
class _WatchProgress:
    seen: int = 0
    subscribed: bool = False


async def _watch_once(
    client: MindoodClient, args: argparse.Namespace, deadline: _Deadline, progress: _WatchProgress
) -> int:
    """Subscribe and print until ``--count`` or ``--timeout``; raises if the daemon goes."""
    sub = await client.subscribe(args.topic or None, tenant=args.tenant, db=args.db)
    if not progress.subscribed:
        progress.subscribed = True
        if args.json:
            print_json_line({"subscribed": sub.id, "topics": sub.topics})
        else:
            print(f"watching {', '.join(sub.topics)} (Ctrl-C to stop)", flush=True)
    else:
        print(
            "mindood: reconnected to the daemon; watching again "
            "(notifications while it was away are not replayed)",
            file=sys.stderr,
            flush=True,
        )
    async with sub:
        while args.count is None or progress.seen < args.count:
            try:
                async with asyncio.timeout(deadline.left()):
                    note = await sub.get()
            except TimeoutError:
                break
            progress.seen += 1
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
    watch.add_argument(
        "--follow",
        action="store_true",
        help="keep watching when the daemon restarts: reconnect (retrying with backoff, "
        "saying so on stderr) and subscribe again",
    )
    watch.set_defaults(handler=client_command(_watch))


__all__ = ["add_client_commands", "add_run", "describe_note"]
