"""CLI: ``mindood store check``: a full check of the on-disk stores, without the daemon.

    mindood store check                      # every store under the default data directory
    mindood store check --data-dir /var/lib/mindood
    mindood store check PATH [PATH ...]      # store directories (.../<tenant>/<db>/docs)
    mindood store check --quick              # SQLite's quick_check only (structure)
    mindood store check --quarantine         # also set damaged entries aside (peers resend them)

Stores are SQLite files that several processes may open at once, so a check runs next to a
running daemon. Exit code 0 when every store is ok, 1 when any is damaged or cannot be opened.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mindood.cli_common import EXIT_ERROR, EXIT_OK, Subparsers, print_json
from mindood.daemon.paths import TENANTS_DIR, default_data_dir


async def _check_all(args: argparse.Namespace) -> int:
    from mindood.storecheck import check_store, find_stores  # the store, lazily

    paths = [Path(p) for p in args.paths] or find_stores(args.data_dir)
    reports = [
        await check_store(path, full=not args.quick, quarantine=args.quarantine) for path in paths
    ]
    if args.json:
        print_json(reports)
    else:
        if not reports:
            print(f"no stores under {args.data_dir / TENANTS_DIR}")
        for report in reports:
            status = "ok     " if report["ok"] else "DAMAGED"
            detail = report.get("problem") or report.get("summary")
            counted = report.get("entries_checked")
            suffix = f" ({counted} entries)" if counted else ""
            print(f"{status} {report['store']}{suffix}: {detail}")
    return EXIT_OK if all(report["ok"] for report in reports) else EXIT_ERROR


def add_store_commands(sub: Subparsers) -> None:
    store = sub.add_parser("store", help="inspect the on-disk stores (works beside the daemon)")
    actions = store.add_subparsers(dest="store_action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="check every row and page of the stores")
    check.add_argument("paths", nargs="*", help="store directories (default: all of them)")
    check.add_argument(
        "--data-dir", type=Path, default=default_data_dir(os.environ), help="the daemon's data"
    )
    check.add_argument("--quick", action="store_true", help="SQLite's quick_check only")
    check.add_argument(
        "--quarantine", action="store_true", help="set damaged entries aside (peers resend them)"
    )
    check.add_argument("--json", action="store_true", help="print the reports as JSON")
    check.set_defaults(handler=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    import uvloop

    return uvloop.run(_check_all(args))
