"""The CLI starts quickly because it imports only what the command needs.

Times are not asserted (the machine is shared); what makes them small is: ``mindood --version``
loads no command module, no asyncio and no MessagePack, and ``mindood status`` against a real
daemon loads the client but none of the crypto, Automerge, the library or the sync stack.
The modules are read from ``python -X importtime``, the real ``python -m mindood`` start.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from mindood import cli
from tests.daemon_helpers import DaemonProcess, base_env

#: Loaded only by commands that read or write data, never by the client commands.
HEAVY = (
    "automerge",
    "cryptography",
    "mindood.crypto",
    "mindood.db",
    "mindood.document",
    "mindood.keybag",
    "mindood.tenant",
    "mindood.views",
    "mindood.sync",
    "store.ondisk",
    "protocol",
    "transports",
    "aiortc",
    "zeroconf",
    "aiohttp",
)


def imported_modules(*args: str, env: dict[str, str]) -> tuple[set[str], str]:
    """Every module ``python -m mindood ARGS`` imports, and its standard output."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "mindood", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert "mindood.cli" in names, "no import trace: -X importtime did not run"
    return names, result.stdout


def heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.split(".")[0] in HEAVY or n.startswith(HEAVY))


def test_version_loads_no_command_module(tmp_path: Path) -> None:
    names, out = imported_modules("--version", env=base_env(tmp_path))
    assert out.startswith("mindood ")
    ours = {n for n in names if n.split(".")[0] == "mindood"}
    assert ours <= {"mindood", "mindood.__main__", "mindood.cli", "mindood.logfmt"}, ours
    assert not {"asyncio", "uvloop", "msgpack"} & names
    assert heavy(names) == []


def test_status_against_a_daemon_loads_only_the_client(tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path)
    daemon.start()
    try:
        env = base_env(tmp_path)
        env["MINDOOD_SOCKET"] = str(daemon.socket)
        names, out = imported_modules("status", env=env)
    finally:
        daemon.close()
    assert "no tenants yet" in out  # it really talked to the daemon
    assert "mindood.client" in names
    assert heavy(names) == []


@pytest.mark.parametrize("group", cli.COMMAND_GROUPS, ids=lambda g: "/".join(sorted(g.names)))
def test_each_group_registers_exactly_its_commands(group: cli.CommandGroup) -> None:
    """The table routes a command to the one module that registers it."""
    parser = cli.build_parser([group])
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == group.names


def test_every_command_goes_to_its_own_group() -> None:
    assert [g.names for g in cli.groups_for(["--log-level", "DEBUG", "status", "--json"])] == [
        {"status", "reload", "peers", "watch"}
    ]
    assert cli.groups_for(["--version"]) == []
    assert cli.groups_for(["--help"]) == list(cli.COMMAND_GROUPS)
    assert cli.groups_for(["stauts"]) == list(cli.COMMAND_GROUPS)  # argparse names the choices
    assert cli.groups_for([]) == list(cli.COMMAND_GROUPS)  # prints the whole help
