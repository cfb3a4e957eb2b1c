"""One schema for every RPC method: the daemon, the client, the CLI and the README agree with it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mindood.cli import build_parser
from mindood.client import MindoodClient
from mindood.client_api import CLIENT_METHODS
from mindood.rpc.errors import InvalidParamsError
from mindood.rpc.schema import SCHEMA
from mindood.rpc.schema.model import Method, opt, req
from mindood.rpc.schema.reference import markdown
from tests.daemon_helpers import DaemonProcess

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("schema"))
    proc.start()
    try:
        yield proc
    finally:
        proc.close()


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    """Every command path of the CLI, e.g. ``doc get``."""
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                path = f"{prefix} {name}".strip()
                found.add(path)
                found |= _commands(child, path)
    return found


def test_the_client_has_one_method_per_declared_method() -> None:
    assert set(CLIENT_METHODS) == set(SCHEMA)
    for attribute in CLIENT_METHODS.values():
        assert callable(getattr(MindoodClient, attribute))


def test_every_declared_cli_command_exists() -> None:
    commands = _commands(build_parser())
    missing = {m.name: m.cli for m in SCHEMA.values() if m.cli and m.cli not in commands}
    assert not missing


def test_the_readme_reference_is_generated_from_the_schema() -> None:
    assert markdown() in README.read_text(encoding="utf-8"), (
        "README's RPC table is stale: run python -m mindood.rpc.schema.reference README.md"
    )


def test_parameters_are_checked_against_the_declaration() -> None:
    method = Method(
        "x.y",
        "doc",
        (req("tenant", "string", "t"), opt("limit", "integer", "l"), opt("on", "boolean", "b")),
        "{}",
        cli=None,
    )
    method.check({"tenant": "acme", "limit": 3, "on": True})
    method.check({"tenant": "acme", "limit": None})  # nil is "not given"
    with pytest.raises(InvalidParamsError, match=r"unknown parameter 'tenantt' \(x.y takes"):
        method.check({"tenantt": "acme"})
    with pytest.raises(InvalidParamsError, match="missing parameter 'tenant'"):
        method.check({})
    with pytest.raises(InvalidParamsError, match="'limit' must be an integer"):
        method.check({"tenant": "acme", "limit": True})
    with pytest.raises(InvalidParamsError, match="'on' must be true or false"):
        method.check({"tenant": "acme", "on": 1})
    with pytest.raises(ValueError, match="declared twice"):
        Method("a.b", "", (req("x", "string", ""), req("x", "string", "")), "{}", cli=None)


async def test_the_daemon_serves_exactly_the_schema(daemon: DaemonProcess) -> None:
    async with await MindoodClient.connect(daemon.socket) as client:
        served = await client.rpc_methods()
    assert [m["name"] for m in served] == list(SCHEMA)
    by_name = {m["name"]: m for m in served}
    assert by_name["doc.get"] == SCHEMA["doc.get"].to_wire()
    assert {p["name"] for p in by_name["doc.create"]["params"]} >= {"tenant", "db", "data"}


def test_rpc_methods_and_rpc_call_from_the_cli(daemon: DaemonProcess) -> None:
    shown = daemon.cli("rpc", "methods", "doc.create").stdout
    assert "doc.create(tenant, db, [data], [doc_id], [key_id])" in shown
    assert "optional" in shown and "returns {id, data" in shown
    listing = json.loads(daemon.cli("rpc", "methods", "--json").stdout)
    assert len(listing) == len(SCHEMA)
    assert json.loads(daemon.cli("rpc", "call", "ping").stdout) == "pong"
    bad = daemon.cli("rpc", "call", "db.list", "--params", '{"tenantt": "x"}', check=False)
    assert bad.returncode == 1 and "unknown parameter 'tenantt'" in bad.stderr
    assert daemon.cli("ping").stdout.strip() == "pong"
