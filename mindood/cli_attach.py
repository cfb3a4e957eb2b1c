"""CLI: ``mindood attach add|append|list|get|remove``: files of documents, streamed both ways.

::

    mindood attach add acme files 7f3a... report.pdf            # prints the attachment id
    mindood attach add acme files 7f3a... - --name log.txt < log.txt
    mindood attach list acme files 7f3a...
    mindood attach get acme files 7f3a... 0190... --out copy.pdf
    mindood attach get acme files 7f3a... 0190... --range 0:1024 | xxd | head
    mindood attach append acme files 7f3a... 0190... more.log
    mindood attach remove acme files 7f3a... 0190...

Files move in pieces of 1 MiB, so any size works with little memory; transfers of 8 MiB or more
show their progress on standard error (``--quiet`` hides it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import mimetypes
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from mindood.cli_common import (
    EXIT_OK,
    Subparsers,
    UsageError,
    client_command,
    client_options,
    print_json,
    print_table,
)
from mindood.client import MindoodClient
from mindood.client_attachments import Source

#: Transfers at least this large report progress on standard error.
PROGRESS_FROM_BYTES = 8 * 1024 * 1024
_MIB = 1024 * 1024


class Progress:
    """``sent 12.0 / 50.0 MiB (24%)`` on standard error: redrawn in place on a terminal, one
    line per tenth otherwise (logs stay short)."""

    def __init__(self, verb: str, total: int, enabled: bool) -> None:
        self._verb = verb
        self._total = total
        self._enabled = enabled and total >= PROGRESS_FROM_BYTES
        self._tty = sys.stderr.isatty()
        self._shown = -1

    def __call__(self, done: int) -> None:
        if not self._enabled:
            return
        percent = min(100, done * 100 // max(self._total, 1))
        step = percent if self._tty else percent // 10 * 10
        if step == self._shown:
            return
        self._shown = step
        line = f"{self._verb} {done / _MIB:.1f} / {self._total / _MIB:.1f} MiB ({percent}%)"
        sys.stderr.write(f"\r{line}" if self._tty else f"{line}\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self._enabled and self._tty and self._shown >= 0:
            sys.stderr.write("\n")


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def parse_range(raw: str) -> tuple[int, int | None]:
    """``START:END`` (either side may be left out) as ``(start, end)``; END is exclusive."""
    first, sep, last = raw.partition(":")
    try:
        start = int(first) if first else 0
        end = int(last) if last else None
    except ValueError:
        raise UsageError(f"--range takes START:END in bytes, got {raw!r}") from None
    if not sep or start < 0 or (end is not None and end < start):
        raise UsageError(f"--range takes START:END with 0 <= START <= END, got {raw!r}")
    return start, end


async def _stdin_pieces() -> AsyncIterator[bytes]:
    while piece := sys.stdin.buffer.read(_MIB):
        yield piece


def _source(raw: str) -> tuple[Source, int]:
    """What to send for FILE and its size (0 when unknown: standard input)."""
    if raw == "-":
        return _stdin_pieces(), 0
    path = Path(raw)
    if not path.is_file():
        raise UsageError(f"no file {raw!r}")
    return path, path.stat().st_size


def _print_info(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(info)
    else:
        print(info["id"])


async def _add(client: MindoodClient, args: argparse.Namespace) -> int:
    name = args.name or (Path(args.file).name if args.file != "-" else None)
    if name is None:
        raise UsageError("reading standard input: give the file's --name")
    mime = args.type or mimetypes.guess_type(name)[0]
    source, size = _source(args.file)
    progress = Progress("sent", size, not args.quiet)
    try:
        info = await client.attachment_upload(
            args.tenant,
            args.db,
            args.doc_id,
            source,
            file_name=name,
            mime_type=mime,
            progress=progress,
        )
    finally:
        progress.close()
    _print_info(info, args.json)
    return EXIT_OK


async def _append(client: MindoodClient, args: argparse.Namespace) -> int:
    source, size = _source(args.file)
    progress = Progress("sent", size, not args.quiet)
    try:
        info = await client.attachment_append(
            args.tenant, args.db, args.doc_id, args.attachment_id, source, progress=progress
        )
    finally:
        progress.close()
    _print_info(info, args.json)
    return EXIT_OK


async def _list(client: MindoodClient, args: argparse.Namespace) -> int:
    files = await client.attachment_list(args.tenant, args.db, args.doc_id)
    if args.json:
        print_json({"doc_id": args.doc_id, "attachments": files})
        return EXIT_OK
    rows = [
        (f["id"], f["file_name"], f["mime_type"], f["size"], _when(f["created_at"])) for f in files
    ]
    print_table(rows, ("ID", "NAME", "TYPE", "SIZE", "CREATED"))
    return EXIT_OK


async def _get(client: MindoodClient, args: argparse.Namespace) -> int:
    start, end = parse_range(args.range) if args.range else (0, None)
    if args.json and args.out is None:
        raise UsageError("--json needs --out (without it the file's bytes go to standard output)")
    target = (args.tenant, args.db, args.doc_id, args.attachment_id)
    size = (await client.attachment_read(*target, length=0))["size"]
    stop = size if end is None else min(end, size)
    progress = Progress("received", max(0, stop - start), not args.quiet)
    try:
        if args.out is not None:
            written = await client.attachment_download(
                *target, args.out, start=start, end=end, progress=progress
            )
        else:
            written = 0
            out = sys.stdout.buffer
            async for piece in client.attachment_stream(*target, start=start, end=end):
                out.write(piece)
                written += len(piece)
                progress(written)
            out.flush()
    finally:
        progress.close()
    if args.json:
        print_json({"id": args.attachment_id, "path": os.fspath(args.out), "written": written})
    return EXIT_OK


async def _remove(client: MindoodClient, args: argparse.Namespace) -> int:
    await client.attachment_remove(args.tenant, args.db, args.doc_id, args.attachment_id)
    if args.json:
        print_json({"doc_id": args.doc_id, "id": args.attachment_id, "removed": True})
    else:
        print(f"removed {args.attachment_id}")
    return EXIT_OK


def add_attach_commands(sub: Subparsers) -> None:
    common = client_options()
    attach = sub.add_parser("attach", help="add, list, read, append to and remove attachments")
    cmds = attach.add_subparsers(dest="attach_command", required=True, metavar="ACTION")

    def target(parser: argparse.ArgumentParser, with_attachment: bool) -> None:
        parser.add_argument("tenant")
        parser.add_argument("db")
        parser.add_argument("doc_id")
        if with_attachment:
            parser.add_argument("attachment_id")

    def quiet(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="no progress on stderr")

    add = cmds.add_parser("add", parents=[common], help="attach a file, print its id")
    target(add, False)
    add.add_argument("file", help="the file to attach (- reads standard input)")
    add.add_argument("--name", help="file name to record (default: FILE's name)")
    add.add_argument("--type", help="MIME type (default: guessed from the name)")
    quiet(add)
    add.set_defaults(handler=client_command(_add))

    append = cmds.add_parser("append", parents=[common], help="add bytes at the end of a file")
    target(append, True)
    append.add_argument("file", help="the bytes to add (- reads standard input)")
    quiet(append)
    append.set_defaults(handler=client_command(_append))

    listing = cmds.add_parser("list", parents=[common], help="list a document's attachments")
    target(listing, False)
    listing.set_defaults(handler=client_command(_list))

    get = cmds.add_parser("get", parents=[common], help="write a file (or a range) out")
    target(get, True)
    get.add_argument("--out", type=Path, help="write here (default: standard output)")
    get.add_argument("--range", metavar="START:END", help="only these bytes (END exclusive)")
    quiet(get)
    get.set_defaults(handler=client_command(_get))

    remove = cmds.add_parser("remove", parents=[common], help="remove an attachment")
    target(remove, True)
    remove.set_defaults(handler=client_command(_remove))


__all__ = ["Progress", "add_attach_commands", "parse_range"]
