"""What every client command of the CLI shares: connecting, passwords, output, exit codes.

Exit codes: 0 success, 1 an error (its message on stderr), 2 a usage error. With ``--json`` the
error is one JSON object on stderr instead of a line of text (stdout keeps only results)::

    {"error": {"code": -32002, "type": "NotFoundError", "message": "no document ..."}}

``code`` is the daemon's RPC error code (see :mod:`mindood.rpc.errors`), or null when the CLI
itself refused (``type`` is then ``UsageError``, ``CliError`` or ``DaemonConnectionError``).

Passwords are never taken from the command line or the environment (both leak to other users
through ``ps`` and ``/proc``). In order of preference a command reads a password from:

1. a file named by its ``--...password-file`` option (e.g. a systemd credential,
   ``$CREDENTIALS_DIRECTORY/acme``), holding the password and at most one line ending;
2. the terminal, with ``getpass`` (no echo), when standard input is a terminal;
3. standard input otherwise, one line per password in the order the command asks for them
   (for scripts: ``printf '%s\\n' "$ADMIN_PW" "$USER_PW" | mindood tenant create acme ...``).

A new password (``tenant create``, ``tenant request``, a share password for ``tenant approve``)
is asked twice on a terminal and must have at least ``MIN_NEW_PASSWORD_CHARS`` characters,
whatever its source; a password that opens something existing is asked once.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeAlias

import uvloop

from mindood.client import DaemonConnectionError, MindoodClient
from mindood.daemon.secrets import (
    MAX_PASSWORD_BYTES,
    MIN_NEW_PASSWORD_CHARS,
    PasswordFileError,
    read_password_file,
)
from mindood.errors import MindoodError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
#: Shortest new password the CLI accepts (a guessable password defeats the key derivation).

#: The object ``add_subparsers`` returns (not subscriptable at run time, hence the string).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(Exception):
    """The command line is wrong in a way argparse cannot see (exit code 2)."""


class CliError(Exception):
    """A failure to report on stderr (exit code 1)."""


def client_options() -> argparse.ArgumentParser:
    """Options of every command that talks to the daemon (use as ``parents=[...]``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--socket",
        type=Path,
        default=None,
        help="daemon socket (default: $MINDOOD_SOCKET, else the daemon's default path)",
    )
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    return common


# -- passwords -----------------------------------------------------------------------------------
class Passwords:
    """Asks for passwords as the module docstring describes."""

    def __init__(self, stdin: TextIO | None = None) -> None:
        self._stdin = stdin if stdin is not None else sys.stdin

    def get(self, prompt: str, file: Path | None = None, *, new: bool = False) -> str:
        """One password; ``new``: one being chosen now (long enough, typed twice)."""
        password = self._read(prompt, file)
        if not password:
            raise CliError(f"{prompt}: the password must not be empty")
        if new and len(password) < MIN_NEW_PASSWORD_CHARS:
            raise CliError(
                f"{prompt}: a new password needs at least {MIN_NEW_PASSWORD_CHARS} characters"
            )
        typed = file is None and self._stdin.isatty()
        if new and typed and getpass.getpass(f"{prompt} (again): ") != password:
            raise CliError("the passwords do not match")
        return password

    def _read(self, prompt: str, file: Path | None) -> str:
        if file is not None:
            try:
                return read_password_file(file)
            except PasswordFileError as exc:
                raise CliError(str(exc)) from None
        if self._stdin.isatty():
            return getpass.getpass(f"{prompt}: ")
        line = self._stdin.readline(MAX_PASSWORD_BYTES + 2)
        if not line:
            raise CliError(f"{prompt}: no password on standard input")
        return line.removesuffix("\n").removesuffix("\r")


# -- output --------------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """Wire data as JSON: binary as ``{"$bytes": base64}``, timestamps as ISO 8601."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode("ascii")}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def print_json(value: Any, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    json.dump(jsonable(value), stream, indent=2, sort_keys=True, ensure_ascii=False)
    stream.write("\n")


def print_json_line(value: Any) -> None:
    sys.stdout.write(json.dumps(jsonable(value), sort_keys=True, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """A plain aligned table for people."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for index, row in enumerate(cells):
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        sys.stdout.write("\n")
        if index == 0:
            sys.stdout.write("  ".join("-" * w for w in widths) + "\n")


def print_tenants(tenants: Sequence[dict[str, Any]]) -> None:
    """The tenant table of ``tenant list`` and ``status``; a revoked device says so."""
    rows = []
    for t in tenants:
        state = str(t["state"])
        note = t.get("sync")
        if isinstance(note, dict) and note.get("state"):
            state = f"{state}, {note['state']}"
        rows.append((t["id"], state, t.get("user", ""), ", ".join(t["databases"])))
    print_table(rows, ("TENANT", "STATE", "USER", "DATABASES"))


def parse_json_arg(raw: str, what: str) -> Any:
    """A JSON argument; ``-`` reads it from standard input, ``@FILE`` from a file."""
    try:
        if raw == "-":
            text = sys.stdin.read()
        elif raw.startswith("@"):
            text = Path(raw[1:]).read_text(encoding="utf-8")
        else:
            text = raw
    except OSError as exc:
        raise CliError(f"cannot read {what}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from None


# -- running -------------------------------------------------------------------------------------
def error_object(exc: Exception) -> dict[str, Any]:
    """The ``{"error": {...}}`` object ``--json`` prints for a failure (module docstring)."""
    code = getattr(exc, "code", None)
    return {
        "error": {
            "code": code if isinstance(code, int) else None,
            "type": str(getattr(exc, "kind", None) or type(exc).__name__),
            "message": str(getattr(exc, "message", None) or exc),
        }
    }


def report_error(exc: Exception, text: str, exit_code: int, *, as_json: bool) -> int:
    """Tell stderr about ``exc`` (``text`` for people, or the JSON object) and return the code."""
    if as_json:
        sys.stderr.write(json.dumps(error_object(exc), sort_keys=True, ensure_ascii=False) + "\n")
    else:
        print(f"mindood: {text}", file=sys.stderr)
    return exit_code


ClientAction = Callable[[MindoodClient, argparse.Namespace], Awaitable[int]]


def run_client(args: argparse.Namespace, action: ClientAction) -> int:
    """Connect, run ``action``, and turn failures into an exit code and a stderr message."""

    async def main() -> int:
        async with await MindoodClient.connect(args.socket) as client:
            return await action(client, args)

    as_json = bool(getattr(args, "json", False))
    try:
        return uvloop.run(main())
    except UsageError as exc:
        return report_error(exc, f"usage error: {exc}", EXIT_USAGE, as_json=as_json)
    except (CliError, DaemonConnectionError) as exc:
        return report_error(exc, str(exc), EXIT_ERROR, as_json=as_json)
    except MindoodError as exc:
        kind = getattr(exc, "kind", type(exc).__name__)
        code = getattr(exc, "code", None)
        suffix = f" [{kind} {code}]" if code is not None else f" [{kind}]"
        return report_error(exc, f"error: {exc}{suffix}", EXIT_ERROR, as_json=as_json)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `mindood doc list ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR


def client_command(action: ClientAction) -> Callable[[argparse.Namespace], int]:
    """The ``handler`` for a subparser whose work is ``action``."""
    return lambda args: run_client(args, action)


__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "MIN_NEW_PASSWORD_CHARS",
    "CliError",
    "Passwords",
    "Subparsers",
    "UsageError",
    "client_command",
    "client_options",
    "error_object",
    "jsonable",
    "parse_json_arg",
    "print_json",
    "print_json_line",
    "print_table",
    "report_error",
]
