"""The ``mindood`` command line: the daemon, its client commands, and benchmarks.

Subcommands are registered in one table (``COMMAND_GROUPS``) so ``--help`` lists exactly what
exists. A group's module is imported only when one of its commands runs (or for ``--help``):
``mindood --version`` loads no command module and ``mindood status`` only the client's, so a
call starts in a fraction of the time that importing crypto, Automerge and the library costs.

Errors: a failure prints one line on stderr and exits 1 (2 for a usage error). With ``--json``
the line is a JSON object instead, ``{"error": {"code": ..., "type": ..., "message": ...}}``
(see :mod:`mindood.cli_common`); argparse's own usage errors follow the same rule.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, cast

from mindood import __version__
from mindood.logfmt import configure as configure_logging

#: The exit code of a usage error (also in :mod:`mindood.cli_common`, which this avoids loading).
_EXIT_USAGE = 2

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


@dataclass(frozen=True, slots=True)
class CommandGroup:
    """Top-level commands that one function of one module registers."""

    names: frozenset[str]
    module: str
    register: str

    def load(self) -> Register:
        return cast(Register, getattr(importlib.import_module(self.module), self.register))


COMMAND_GROUPS: Sequence[CommandGroup] = (
    CommandGroup(frozenset({"run"}), "mindood.cli_daemon", "add_run"),
    CommandGroup(
        frozenset({"status", "reload", "peers", "watch"}),
        "mindood.cli_daemon",
        "add_client_commands",
    ),
    CommandGroup(frozenset({"tenant", "db"}), "mindood.cli_tenant", "add_tenant_commands"),
    CommandGroup(frozenset({"doc"}), "mindood.cli_doc", "add_doc_commands"),
    CommandGroup(frozenset({"attach"}), "mindood.cli_attach", "add_attach_commands"),
    CommandGroup(frozenset({"view"}), "mindood.cli_view", "add_view_commands"),
    CommandGroup(
        frozenset({"key", "group", "settings", "purge"}), "mindood.cli_admin", "add_admin_commands"
    ),
    CommandGroup(frozenset({"ping", "rpc", "sync"}), "mindood.cli_rpc", "add_rpc_commands"),
    CommandGroup(frozenset({"store"}), "mindood.cli_store", "add_store_commands"),
    CommandGroup(frozenset({"bench"}), "mindood.cli_bench", "add_bench"),
)


class _JsonErrorParser(argparse.ArgumentParser):
    """Reports usage errors as the JSON error object, for a command line that asked for JSON."""

    def error(self, message: str) -> NoReturn:
        error = {"code": None, "type": "UsageError", "message": f"{self.prog}: {message}"}
        sys.stderr.write(json.dumps({"error": error}, sort_keys=True) + "\n")
        self.exit(_EXIT_USAGE)


def _command_of(argv: Sequence[str]) -> str | None:
    """The top-level command named in ``argv`` (skipping the options before it), if any."""
    tokens = iter(argv)
    for token in tokens:
        if token == "--log-level":
            next(tokens, None)
        elif not token.startswith("-"):
            return token
    return None


def groups_for(argv: Sequence[str]) -> list[CommandGroup]:
    """The command groups that parsing ``argv`` needs: one, none (``--version``) or all."""
    command = _command_of(argv)
    if command is not None:
        wanted = [g for g in COMMAND_GROUPS if command in g.names]
        return wanted or list(COMMAND_GROUPS)  # a typo: argparse lists every choice
    if "--version" in argv and not {"-h", "--help"} & set(argv):
        return []
    return list(COMMAND_GROUPS)


def build_parser(
    groups: Sequence[CommandGroup] | None = None, *, json_errors: bool = False
) -> argparse.ArgumentParser:
    """The parser with ``groups`` registered (default: every command)."""
    parser_class = _JsonErrorParser if json_errors else argparse.ArgumentParser
    parser = parser_class(
        prog="mindood",
        description="MindooDB sync daemon: end-to-end encrypted, offline-first, peer to peer.",
        epilog="Errors go to stderr (exit 1, usage errors 2); with --json as one JSON object: "
        '{"error": {"code": RPC code or null, "type": ..., "message": ...}}.',
    )
    parser.add_argument("--version", action="version", version=f"mindood {__version__}")
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: the daemon's configured level, else INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS if groups is None else groups:
        group.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(groups_for(argv), json_errors="--json" in argv)
    args = parser.parse_args(argv)
    # Under systemd the journal stamps every line itself (it sets $JOURNAL_STREAM).
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    configure_logging(args.log_level or "INFO", f"{stamp}%(levelname)s %(name)s: %(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return _EXIT_USAGE
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
