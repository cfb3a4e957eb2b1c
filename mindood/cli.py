"""The ``mindood`` command line: the daemon, its client commands, and benchmarks.

Subcommands are registered in one table (``_COMMANDS``) so ``--help`` lists exactly what exists.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import uvloop

from mindood import __version__
from mindood.cli_admin import add_admin_commands
from mindood.cli_attach import add_attach_commands
from mindood.cli_daemon import add_client_commands, add_run
from mindood.cli_doc import add_doc_commands
from mindood.cli_rpc import add_rpc_commands
from mindood.cli_store import add_store_commands
from mindood.cli_tenant import add_tenant_commands
from mindood.cli_view import add_view_commands, add_views_bench
from mindood.logfmt import configure as configure_logging

log = logging.getLogger("mindood.cli")


def _run_async(coro: Coroutine[Any, Any, int]) -> int:
    """Run a coroutine on uvloop, the loop the daemon uses in production."""
    return uvloop.run(coro)


def _print_json(result: object) -> None:
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


async def _bench_store(args: argparse.Namespace) -> int:
    from mindood.bench_store import run_store_bench

    with tempfile.TemporaryDirectory(prefix="mindood-bench-", dir=args.dir) as workdir:
        result = await run_store_bench(
            Path(workdir), entries=args.entries, progress=lambda line: print(line, file=sys.stderr)
        )
    _print_json(result)
    return 0


async def _bench_docs(args: argparse.Namespace) -> int:
    from mindood.bench_docs import run_docs_bench

    with tempfile.TemporaryDirectory(prefix="mindood-bench-", dir=args.dir) as workdir:
        result = await run_docs_bench(Path(workdir), documents=args.documents)
    _print_json(result)
    return 0


async def _bench_sync(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="mindood-bench-", dir=args.dir) as workdir:
        if args.transport == "webrtc":
            from mindood.bench_sync_webrtc import run_webrtc_sync_bench

            result = await run_webrtc_sync_bench(Path(workdir), entries=args.entries)
        else:
            from mindood.bench_sync import run_sync_bench

            result = await run_sync_bench(Path(workdir), entries=args.entries)
    _print_json(result)
    return 0


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="measure throughput; prints JSON")
    kinds = bench.add_subparsers(dest="bench_kind", required=True, metavar="KIND")
    store = kinds.add_parser("store", help="durable put throughput and cold-open time")
    store.add_argument("--entries", type=int, default=100_000, help="entries for cold open")
    store.add_argument("--dir", type=Path, default=None, help="where to create the test store")
    store.set_defaults(handler=lambda a: _run_async(_bench_store(a)))
    docs = kinds.add_parser("docs", help="durable document creates and changes per second")
    docs.add_argument("--documents", type=int, default=2000, help="documents to create")
    docs.add_argument("--dir", type=Path, default=None, help="where to create the test store")
    docs.set_defaults(handler=lambda a: _run_async(_bench_docs(a)))
    sync = kinds.add_parser("sync", help="full sync between two node processes on loopback")
    sync.add_argument("--entries", type=int, default=100_000, help="signed 1 KiB entries")
    sync.add_argument("--transport", choices=["tcp", "webrtc"], default="tcp")
    sync.add_argument("--dir", type=Path, default=None, help="where to create the test stores")
    sync.set_defaults(handler=lambda a: _run_async(_bench_sync(a)))
    add_views_bench(kinds)


_COMMANDS: Sequence[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = (
    add_run,
    add_client_commands,
    add_tenant_commands,
    add_doc_commands,
    add_attach_commands,
    add_view_commands,
    add_admin_commands,
    add_rpc_commands,
    add_store_commands,
    _add_bench,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mindood",
        description="MindooDB sync daemon: end-to-end encrypted, offline-first, peer to peer.",
    )
    parser.add_argument("--version", action="version", version=f"mindood {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: the daemon's configured level, else INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Under systemd the journal stamps every line itself (it sets $JOURNAL_STREAM).
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    configure_logging(args.log_level or "INFO", f"{stamp}%(levelname)s %(name)s: %(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
