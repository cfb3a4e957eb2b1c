"""CLI: ``mindood bench store|docs|sync|views|tenant``: measure this machine, print JSON.

A bench runs for tens of seconds to minutes, so it says what it is doing on stderr as it goes
(each line stamped with the seconds since the start) and ends with a short summary there too;
standard output carries only the JSON result, so ``mindood bench store > store.json`` keeps
working. The benches themselves (``mindood.bench_*``) are imported only when one runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeAlias

from mindood.bench_progress import Progress, stderr_progress
from mindood.cli_common import EXIT_OK, Subparsers, print_json

Parser: TypeAlias = argparse.ArgumentParser
#: A bench's result and the summary lines a person reads.
Outcome: TypeAlias = tuple[dict[str, Any], list[str]]
Bench: TypeAlias = Callable[[argparse.Namespace, Path, Progress], Coroutine[Any, Any, Outcome]]


def _run(args: argparse.Namespace, bench: Bench) -> int:
    import uvloop

    progress = stderr_progress()
    where = getattr(args, "dir", None)
    with tempfile.TemporaryDirectory(prefix="mindood-bench-", dir=where) as workdir:
        result, summary = uvloop.run(bench(args, Path(workdir), progress))
    print_json(result)
    sys.stderr.write("\n".join(["summary:", *(f"  {line}" for line in summary)]) + "\n")
    return EXIT_OK


# -- the benches (each imports its module only when it runs) -------------------------------------
async def _store(args: argparse.Namespace, workdir: Path, progress: Progress) -> Outcome:
    from mindood import bench_store

    result = await bench_store.run_store_bench(workdir, entries=args.entries, progress=progress)
    return result, bench_store.summary(result)


async def _docs(args: argparse.Namespace, workdir: Path, progress: Progress) -> Outcome:
    from mindood import bench_docs

    result = await bench_docs.run_docs_bench(
        workdir, documents=args.documents, batch=args.batch, progress=progress
    )
    return result, bench_docs.summary(result)


async def _sync(args: argparse.Namespace, workdir: Path, progress: Progress) -> Outcome:
    if args.transport == "webrtc":
        from mindood import bench_sync_webrtc as webrtc

        result = await webrtc.run_webrtc_sync_bench(workdir, args.entries, progress=progress)
        return result, webrtc.summary(result)
    if args.transport == "http":
        from mindood import bench_sync_http as http

        result = await http.run_http_sync_bench(workdir, args.entries, progress=progress)
        return result, http.summary(result)
    from mindood import bench_sync

    result = await bench_sync.run_sync_bench(workdir, entries=args.entries, progress=progress)
    return result, bench_sync.summary(result)


async def _views(args: argparse.Namespace, workdir: Path, progress: Progress) -> Outcome:
    from mindood import bench_views

    result = await bench_views.run_views_bench(args.documents, progress=progress)
    return result, bench_views.summary(result)


async def _tenant(args: argparse.Namespace, workdir: Path, progress: Progress) -> Outcome:
    from mindood import bench_tenant

    result = await bench_tenant.run_tenant_bench(args.rounds, progress=progress)
    return result, bench_tenant.summary(result)


def add_bench(sub: Subparsers) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure throughput; prints JSON (progress and a summary on stderr)",
        description="Measure this machine. The JSON result goes to stdout; progress lines and "
        "a short summary go to stderr. Compare ratios, not absolute numbers.",
    )
    kinds = bench.add_subparsers(dest="bench_kind", required=True, metavar="KIND")

    def kind(name: str, help_text: str, bench: Bench, *, on_disk: bool = True) -> Parser:
        parser = kinds.add_parser(name, help=help_text)
        if on_disk:
            parser.add_argument("--dir", type=Path, default=None, help="where to create test data")
        parser.set_defaults(handler=lambda args: _run(args, bench))
        return parser

    store = kind("store", "durable put throughput and cold-open time", _store)
    store.add_argument("--entries", type=int, default=100_000, help="entries for cold open")
    docs = kind("docs", "durable document writes and cold reads against their floors", _docs)
    docs.add_argument(
        "--documents", type=int, default=500, help="documents created and changed one at a time"
    )
    docs.add_argument("--batch", type=int, default=1000, help="documents per batch create/change")
    sync = kind("sync", "full sync between two node processes on loopback", _sync)
    sync.add_argument("--entries", type=int, default=100_000, help="signed 1 KiB entries")
    sync.add_argument("--transport", choices=["tcp", "webrtc", "http"], default="tcp")
    views = kind(
        "views", "view build and update times against the change feed", _views, on_disk=False
    )
    views.add_argument("--documents", type=int, default=100_000, help="documents in the view")
    tenant = kind(
        "tenant",
        "createTenant, approve and join against one PBKDF2 + one RSA load",
        _tenant,
        on_disk=False,
    )
    tenant.add_argument("--rounds", type=int, default=3, help="rounds (medians are reported)")


__all__ = ["add_bench"]
