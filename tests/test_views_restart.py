"""Views across restarts of the real daemon: still there with the same rows, changes after the
restart show, and a damaged view file costs only its own view."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mindood.client import MindoodClient
from mindood.daemon.view_files import views_dir
from mindood.rpc.errors import CorruptDataRpcError
from tests.daemon_helpers import DaemonProcess
from tests.view_helpers import BRANCH, HQ, employee

TENANT = "acme"
PASSWORD = "alice-pw"
COLUMNS = [
    {"name": "department", "role": "category"},
    {"name": "year", "role": "category", "sorting": "descending"},
    {"name": "lastName", "role": "sorted"},
    {"name": "salary", "role": "total", "total": "sum"},
]
SOURCES: list[dict[str, Any]] = [
    {"origin": "hq", "tenant": TENANT, "db": "hq", "where": {"type": "employee"}},
    {"origin": "branch", "tenant": TENANT, "db": "branch", "where": {"type": "employee"}},
]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("views-restart"))
    proc.start()
    try:
        proc.cli(
            "tenant", "create", TENANT, "--admin", "cn=admin/o=acme", "--user", "cn=alice/o=acme",
            stdin=f"admin-pw\n{PASSWORD}\n",
        )  # fmt: skip
        yield proc
    finally:
        proc.close()


def _sources(suffix: str) -> list[dict[str, Any]]:
    """The two sources over databases of their own (each test fills its own)."""
    return [{**s, "db": s["db"] + suffix} for s in SOURCES]


async def _fill(client: MindoodClient, suffix: str) -> None:
    for db, rows in (("hq", HQ), ("branch", BRANCH)):
        await client.db_create(TENANT, db + suffix)
        for row in rows:
            await client.doc_create(TENANT, db + suffix, employee(row))


def _restart(daemon: DaemonProcess) -> None:
    daemon.restart()
    daemon.cli("tenant", "unlock", TENANT, stdin=f"{PASSWORD}\n")


def _rows(page: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(e["position"], e["doc_id"], e.get("db"), e["values"]) for e in page["entries"]]


async def _listed(client: MindoodClient, name: str) -> dict[str, Any]:
    views: list[dict[str, Any]] = (await client.call("view.list"))["views"]
    (found,) = [v for v in views if v["name"] == name]
    return found


async def test_a_view_survives_a_daemon_restart(daemon: DaemonProcess) -> None:
    async with await daemon.client() as client:
        await _fill(client, "")
        await client.call("view.define", {"name": "staff", "columns": COLUMNS, "sources": SOURCES})
        before = await client.call("view.read", {"name": "staff", "expand": "all"})
    assert before["documents"] == 7

    _restart(daemon)
    assert daemon.cli("view", "list").stdout.startswith("staff\tready (acme)\thq, branch\n")
    async with await daemon.client() as client:
        after = await client.call("view.read", {"name": "staff", "expand": "all"})
        assert _rows(after) == _rows(before) and after["totals"] == {"salary": 700_000}
        built = await _listed(client, "staff")
        assert (built["restored_documents"], built["documents_read"]) == (7, 0)

        await client.doc_create(TENANT, "branch", employee(("Support", 2024, "Young", 30_000)))
        support = await client.call(
            "view.read", {"name": "staff", "category": "Support", "expand": "all"}
        )
        names = [e["values"].get("lastName") for e in support["entries"]]
        assert names == [None, "Wilson", "Young"] and support["totals"] == {"salary": 100_000}
        assert (await _listed(client, "staff"))["documents_read"] == 1
    shown = daemon.cli("view", "show", "staff", "--category", "Support").stdout.splitlines()
    assert shown[-1] == "# 2 documents in Support, totals: salary=100000"


async def test_a_damaged_view_file_costs_only_that_view(daemon: DaemonProcess) -> None:
    async with await daemon.client() as client:
        await _fill(client, "-b")
        for name, sources in (("broken", _sources("-b")), ("intact", _sources("-b")[1:])):
            await client.call("view.define", {"name": name, "columns": COLUMNS, "sources": sources})
    assert daemon.stop() == 0
    path = views_dir(daemon.data_dir, TENANT) / "broken.view"
    path.write_bytes(path.read_bytes()[:40])
    daemon.start()
    unlocked = daemon.cli("tenant", "unlock", TENANT, stdin=f"{PASSWORD}\n")  # not disturbed
    assert "unlocked" in unlocked.stdout

    listing = daemon.cli("view", "list").stdout.splitlines()
    broken = next(line for line in listing if line.startswith("broken\t"))
    assert broken.split("\t")[1] == "damaged (acme)" and "broken.view" in broken
    async with await daemon.client() as client:
        with pytest.raises(CorruptDataRpcError) as caught:
            await client.call("view.read", {"name": "broken"})
        assert caught.value.kind == "ViewDamagedError"
        assert (await client.call("view.read", {"name": "intact"}))["documents"] == 3
        await client.doc_create(TENANT, "hq-b", {"after": "the damage"})  # the tenant works
    assert "view file unusable" in daemon.log()


def _readme_view_commands() -> list[list[str]]:
    """The commands of the README's views example, as argument lists."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = text.split("### Views", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()]
    return [line[1:] for line in lines if line and line[0] == "mindood"]


async def test_the_readme_view_commands_work(daemon: DaemonProcess) -> None:
    commands = _readme_view_commands()
    assert [c[:2] for c in commands][:2] == [["view", "define"], ["view", "show"]]
    async with await daemon.client() as client:
        for db, rows in (("employees", HQ), ("contractors", BRANCH)):
            await client.db_create(TENANT, db)
            for row in rows:
                await client.doc_create(TENANT, db, employee(row))
    outputs = [daemon.cli(*command).stdout for command in commands]
    assert "7 documents" in outputs[0]
    assert outputs[3].splitlines()[-1] == "# 2 documents in Sales\\2024, totals: salary=190000"
    assert any(line.startswith("staff\tready (acme)\t") for line in outputs[-2].splitlines())
    assert "dropped staff" in outputs[-1]
