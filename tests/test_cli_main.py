"""The CLI without a daemon: parsing, password sources, output helpers, exit codes."""

from __future__ import annotations

import datetime as dt
import io
import os
from pathlib import Path

import pytest

from mindood import cli
from mindood.cli_common import CliError, Passwords, UsageError, jsonable
from mindood.cli_daemon import describe_note
from mindood.cli_doc import parse_path, shorthand_ops
from mindood.client import Note


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_commands_are_registered(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "status", "watch", "peers", "tenant", "db", "doc", "bench"):
        assert command in out
    assert cli.main([]) == 2


def test_no_daemon_is_exit_code_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["status", "--socket", str(tmp_path / "none.sock")])
    assert code == 1
    assert "no mindood daemon is listening" in capsys.readouterr().err


def test_usage_errors_are_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["doc", "get", "acme"])
    assert info.value.code == 2


def test_paths_and_shorthand_operations() -> None:
    assert parse_path("a.b.0.c") == ["a", "b", 0, "c"]
    with pytest.raises(UsageError):
        parse_path("a..b")
    args = cli.build_parser().parse_args(
        [
            "doc", "change", "acme", "db", "id",
            "--set", "name=Ada",
            "--set", 'tags=["x"]',
            "--set", "n=3",
            "--delete", "old.0",
            "--increment", "visits",
            "--increment", "score=-2",
        ]
    )  # fmt: skip
    assert shorthand_ops(args) == [
        {"op": "set", "path": ["name"], "value": "Ada"},
        {"op": "set", "path": ["tags"], "value": ["x"]},
        {"op": "set", "path": ["n"], "value": 3},
        {"op": "delete", "path": ["old", 0]},
        {"op": "increment", "path": ["visits"], "by": 1},
        {"op": "increment", "path": ["score"], "by": -2},
    ]
    bad = cli.build_parser().parse_args(["doc", "change", "a", "b", "c", "--set", "novalue"])
    with pytest.raises(UsageError):
        shorthand_ops(bad)


def test_passwords_from_files_stdin_and_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    os.chmod(secret, 0o600)
    assert Passwords(io.StringIO("")).get("pw", secret) == "s3cret"
    with pytest.raises(CliError, match="cannot open"):
        Passwords(io.StringIO("")).get("pw", tmp_path / "missing")

    piped = Passwords(io.StringIO("first\r\nsecond\n"))
    assert piped.get("a") == "first" and piped.get("b") == "second"
    with pytest.raises(CliError, match="no password on standard input"):
        piped.get("c")
    with pytest.raises(CliError, match="must not be empty"):
        Passwords(io.StringIO("\n")).get("d")

    prompts: list[str] = []
    answers = iter(["long enough", "long enough", "long enough", "different", "short", "old"])

    def typed(prompt: str) -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", typed)
    terminal = Passwords(FakeTty())
    assert terminal.get("new", new=True) == "long enough"
    with pytest.raises(CliError, match="do not match"):
        terminal.get("new", new=True)
    with pytest.raises(CliError, match="at least 8 characters"):
        terminal.get("new", new=True)  # refused before it is asked again
    assert terminal.get("old") == "old"  # an existing password: asked once, any length
    assert prompts == ["new: ", "new (again): "] * 2 + ["new: ", "old: "]


def test_json_output_of_binary_and_times() -> None:
    when = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    assert jsonable({"b": b"\x00\x01", "t": when, "l": (1, 2)}) == {
        "b": {"$bytes": "AAE="},
        "t": "2024-01-02T00:00:00+00:00",
        "l": [1, 2],
    }


def test_notifications_read_well() -> None:
    many = Note("doc.changed", {"tenant": "a", "db": "b", "doc_ids": [str(i) for i in range(7)]})
    assert describe_note(many).endswith("0, 1, 2, 3, 4 (+2 more)")
    assert "dropped" in describe_note(Note("lagged", {"dropped": 3}))
    assert "is locked" in describe_note(Note("tenant.state", {"tenant": "a", "state": "locked"}))
    progress = Note(
        "sync.progress",
        {"peer_id": "p", "tenant": "a", "db": "b", "sent": 1, "received": 2, "done": True},
    )
    assert "(done)" in describe_note(progress)
