"""Views over RPC (define, read a page, navigate) on an in-process node, and ``mindood view``
against the real daemon."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from mindood.cli_common import UsageError
from mindood.cli_view import parse_column, parse_source, render_rows
from mindood.daemon.config import parse_config
from mindood.daemon.node import Node
from mindood.daemon.params import Params
from mindood.daemon.view_methods import VIEW_METHODS
from mindood.rpc.connection import Connection
from mindood.rpc.errors import InvalidParamsError, NotFoundError, TenantLockedError
from tests.daemon_helpers import DaemonProcess
from tests.view_helpers import BRANCH, HQ, employee

COLUMNS = [
    {"name": "department", "role": "category"},
    {"name": "year", "role": "category", "sorting": "descending"},
    {"name": "lastName", "role": "sorted"},
    {"name": "salary", "role": "total", "total": "sum"},
]
SOURCES = [
    {"origin": "hq", "tenant": "acme", "db": "hq", "where": {"type": "employee"}},
    {"origin": "branch", "tenant": "acme", "db": "branch", "where": {"type": "employee"}},
]


async def call(node: Node, method: str, **params: Any) -> Any:
    return await VIEW_METHODS[method](node, Params(params), cast(Connection, None))


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    node = Node(tmp_path, parse_config({}), {})
    await node.tenants.create(
        "acme",
        admin_name="cn=admin/o=acme",
        admin_password="admin-pw",
        user_name="cn=alice/o=acme",
        user_password="alice-pw",
    )
    for name, rows in (("hq", HQ), ("branch", BRANCH)):
        db = await node.tenants.open_db("acme", name, create=True)
        for row in rows:
            await db.create_document(employee(row))
    hq = await node.tenants.open_db("acme", "hq")
    await hq.create_document({"type": "contractor", "department": "Sales", "salary": 1})
    try:
        yield node
    finally:
        await node.close()


def _positions(page: dict[str, Any]) -> list[str]:
    return [e["position"] for e in page["entries"]]


async def test_define_read_and_page(node: Node) -> None:
    defined = await call(node, "view.define", name="staff", columns=COLUMNS, sources=SOURCES)
    assert defined["documents"] == 7 and defined["totals"] == {"salary": 700_000}
    assert defined["origins"] == ["hq", "branch"]

    top = await call(node, "view.read", name="staff")  # collapsed unless asked
    assert _positions(top) == ["1", "2", "3"]
    assert [(e["value"], e["values"]["salary"], e["expanded"]) for e in top["entries"]] == [
        ("Engineering", 360_000, False),
        ("Sales", 270_000, False),
        ("Support", 70_000, False),
    ]
    page = await call(node, "view.read", name="staff", expand="all", count=5)
    assert _positions(page) == ["1", "1.1", "1.1.1", "1.1.2", "1.2"]
    assert page["has_more"] and page["next"] == "1.2"
    smith_free = page["entries"][2]
    assert smith_free["values"]["lastName"] == "Brown" and smith_free["level"] == 2
    rest = await call(node, "view.read", name="staff", expand="all", start="1.2", count=100)
    assert _positions(rest)[:2] == ["1.2.1", "2"] and not rest["has_more"]
    back = await call(node, "view.read", name="staff", expand="all", start="2", backward=True)
    assert _positions(back) == ["1.2.1", "1.2", "1.1.2", "1.1.1", "1.1", "1"]
    toggled = await call(
        node, "view.read", name="staff", expand=1, expanded=["2.1"], collapsed=["1"]
    )
    assert _positions(toggled) == ["1", "2", "2.1", "2.1.1", "2.1.2", "2.2", "3", "3.1"]
    docs = await call(node, "view.read", name="staff", mode="documents", category="Sales")
    assert [e["values"]["lastName"] for e in docs["entries"]] == ["Miller", "Smith", "Adams"]

    # A read brings the view up to date first.
    branch = await node.tenants.open_db("acme", "branch")
    await branch.create_document(employee(("Support", 2024, "Young", 30_000)))
    again = await call(node, "view.read", name="staff", expand="all", start="3.1", count=3)
    assert [e["values"]["lastName"] for e in again["entries"]] == ["Wilson", "Young"]
    assert again["totals"] == {"salary": 730_000}

    assert (await call(node, "view.list"))["views"] == [
        {"name": "staff", "origins": ["hq", "branch"]}
    ]
    assert (await call(node, "view.drop", name="staff"))["dropped"]
    with pytest.raises(NotFoundError):
        await call(node, "view.read", name="staff")


async def test_navigate_statelessly(node: Node) -> None:
    await call(node, "view.define", name="staff", columns=COLUMNS, sources=SOURCES)
    step = await call(node, "view.navigate", name="staff", op="first")
    assert step["moved"] and step["entry"]["position"] == "1"
    step = await call(node, "view.navigate", name="staff", op="next", at="1")
    assert step["entry"]["position"] == "2"  # collapsed: the next top-level category
    step = await call(node, "view.navigate", name="staff", op="next", at="1", expand="all")
    assert step["entry"]["position"] == "1.1"
    step = await call(node, "view.navigate", name="staff", op="parent", at="2.1.2", expand="all")
    assert step["entry"]["position"] == "2.1"
    step = await call(node, "view.navigate", name="staff", op="goto", target="2.2.1", reveal=True)
    assert step["entry"]["values"]["lastName"] == "Adams" and step["revealed"] == ["2", "2.2"]
    step = await call(node, "view.navigate", name="staff", op="next_sibling", at="3", expand="all")
    assert not step["moved"] and step["entry"] is None
    with pytest.raises(NotFoundError):  # not listed while collapsed
        await call(node, "view.navigate", name="staff", op="next", at="2.1.1")


async def test_bad_definitions_and_locked_tenants(node: Node) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"columns": [{"role": "category"}], "sources": SOURCES}, "name is required"),
        ({"columns": [{"name": "x", "role": "pivot"}], "sources": SOURCES}, "role must be"),
        ({"columns": [{"name": "x", "role": "total"}], "sources": SOURCES}, "total must be"),
        ({"columns": [{"name": "x", "role": "display", "y": 1}], "sources": SOURCES}, "unknown"),
        ({"columns": COLUMNS + COLUMNS[:1], "sources": SOURCES}, "duplicate"),
        ({"columns": COLUMNS, "sources": []}, "must not be empty"),
        ({"columns": COLUMNS, "sources": SOURCES + SOURCES[:1]}, "unique"),
        ({"columns": COLUMNS, "sources": [{"tenant": "../x", "db": "d"}]}, "tenant"),
    ]
    for params, message in bad:
        with pytest.raises(InvalidParamsError, match=message):
            await call(node, "view.define", name="v", **params)
    with pytest.raises(NotFoundError):
        await call(
            node, "view.define", name="v", columns=COLUMNS, sources=[{"tenant": "acme", "db": "no"}]
        )
    await call(node, "view.define", name="staff", columns=COLUMNS, sources=SOURCES)
    with pytest.raises(InvalidParamsError, match="expand"):
        await call(node, "view.read", name="staff", expand="some")
    with pytest.raises(NotFoundError, match="no entry"):
        await call(node, "view.read", name="staff", start="9.9")

    await node.tenants.lock("acme")
    with pytest.raises(TenantLockedError):
        await call(node, "view.read", name="staff")
    await node.tenants.unlock("acme", "alice-pw")
    page = await call(node, "view.read", name="staff", expand="all")  # rebuilt on new handles
    assert page["documents"] == 7 and len(page["entries"]) == 15


def test_cli_parsing_and_rendering() -> None:
    assert parse_column("category:year:desc") == {
        "name": "year",
        "role": "category",
        "sorting": "descending",
    }
    assert parse_column("total:salary:avg") == {
        "name": "salary",
        "role": "total",
        "total": "average",
    }
    assert parse_column("display:email") == {"name": "email", "role": "display"}
    for bad in ("pivot:x", "total:salary", "display:x:asc", "category:"):
        with pytest.raises(UsageError):
            parse_column(bad)
    assert parse_source("hq=acme/db", {"a": 1}) == {
        "origin": "hq",
        "tenant": "acme",
        "db": "db",
        "where": {"a": 1},
    }
    assert parse_source("acme/db", None)["origin"] == "acme/db"
    with pytest.raises(UsageError):
        parse_source("acme", None)
    page = {
        "columns": [
            {"name": "d", "role": "category", "title": "d"},
            {"name": "n", "role": "sorted", "title": "name"},
            {"name": "s", "role": "total", "title": "salary"},
        ],
        "entries": [
            {"position": "1", "level": 0, "category": True, "value": "A", "expanded": True,
             "values": {"d": "A", "s": 3}},
            {"position": "1.1", "level": 1, "category": False, "doc_id": "x",
             "values": {"d": "A", "n": "Ann", "s": 3.0}},
        ],
    }  # fmt: skip
    headers, rows = render_rows(page)
    assert headers == ["POS", "name", "salary"]
    assert rows == [["1", "- A", "3"], ["1.1", "    Ann", "3"]]


# -- the real daemon -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("views"))
    proc.start()
    try:
        proc.cli(
            "tenant", "create", "acme", "--admin", "cn=admin/o=acme", "--user", "cn=alice/o=acme",
            stdin="admin-pw\nalice-pw\n",
        )  # fmt: skip
        yield proc
    finally:
        proc.close()


def test_mindood_view_prints_an_indented_table(daemon: DaemonProcess) -> None:
    for db, rows in (("hq", HQ), ("branch", BRANCH)):
        daemon.cli("db", "create", "acme", db)
        for row in rows:
            daemon.cli("doc", "create", "acme", db, "--data", json.dumps(employee(row)))
    defined = daemon.cli(
        "view", "define", "staff",
        "-c", "category:department", "-c", "category:year:desc",
        "-c", "sorted:lastName", "-c", "total:salary:sum",
        "--source", "hq=acme/hq", "--source", "branch=acme/branch",
        "--where", '{"type": "employee"}',
    )  # fmt: skip
    assert "7 documents" in defined.stdout
    shown = daemon.cli("view", "show", "staff").stdout.splitlines()
    assert shown == [
        "POS    lastName       salary",
        "-----  -------------  ------",
        "1      - Engineering  360000",
        "1.1      - 2024       250000",
        "1.1.1        Brown    120000",
        "1.1.2        Johnson  130000",
        "1.2      - 2023       110000",
        "1.2.1        Davis    110000",
        "2      - Sales        270000",
        "2.1      - 2024       190000",
        "2.1.1        Miller   90000",
        "2.1.2        Smith    100000",
        "2.2      - 2023       80000",
        "2.2.1        Adams    80000",
        "3      - Support      70000",
        "3.1      - 2024       70000",
        "3.1.1        Wilson   70000",
        "# 7 documents, totals: salary=700000",
    ]
    collapsed = daemon.cli("view", "show", "staff", "--expand", "0", "--expanded", "2").stdout
    assert [line.split()[0] for line in collapsed.splitlines()[2:-1]] == [
        "1",
        "2",
        "2.1",
        "2.2",
        "3",
    ]
    assert "+ Engineering" in collapsed and "- Sales" in collapsed
    step = daemon.cli("view", "nav", "staff", "next", "--at", "1.1.2").stdout
    assert step.splitlines()[-1].split() == ["1.2", "-", "2023", "110000"]
    listed = daemon.cli("view", "list").stdout
    assert listed.startswith("staff\thq, branch")
