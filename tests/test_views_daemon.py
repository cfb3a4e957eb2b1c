"""Views over RPC (define, read a page, navigate) on an in-process node, and ``mindood view``
against the real daemon."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from mindood.cli_common import UsageError
from mindood.cli_view import list_line, parse_column, parse_source, render_rows, summary_line
from mindood.daemon.config import parse_config
from mindood.daemon.node import Node
from mindood.daemon.params import Params
from mindood.daemon.view_methods import VIEW_METHODS
from mindood.rpc.connection import Connection
from mindood.rpc.errors import InvalidParamsError, NotFoundError, TenantLockedError
from tests.daemon_helpers import DaemonProcess
from tests.view_helpers import (
    ACME_PASSWORD,
    BRANCH,
    HQ,
    copy_data_dir,
    employee,
    employees_data_dir,
)

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


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return employees_data_dir(tmp_path_factory.mktemp("views-rpc"))


@pytest.fixture
async def node(template: Path, tmp_path: Path) -> AsyncIterator[Node]:
    node = Node(copy_data_dir(template, tmp_path / "data"), parse_config({}), {})
    assert await node.tenants.unlock("acme", ACME_PASSWORD)
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

    (listed,) = (await call(node, "view.list"))["views"]
    assert (listed["name"], listed["tenant"], listed["state"]) == ("staff", "acme", "ready")
    assert listed["origins"] == ["hq", "branch"] and listed["documents"] == 8
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


async def test_a_category_read_totals_that_category(node: Node) -> None:
    await call(node, "view.define", name="staff", columns=COLUMNS, sources=SOURCES)
    whole = await call(node, "view.read", name="staff")
    scope = (whole["category"], whole["documents"], whole["totals"])
    assert scope == (None, 7, {"salary": 700_000})
    sales = await call(node, "view.read", name="staff", category="Sales", expand="all")
    assert (sales["category"], sales["documents"], sales["totals"]) == (
        "Sales",
        3,
        {"salary": 270_000},
    )
    nested = await call(node, "view.read", name="staff", category="Engineering\\2024")
    assert (nested["category"], nested["documents"], nested["totals"]) == (
        "Engineering\\2024",
        2,
        {"salary": 250_000},
    )
    assert [e["values"]["lastName"] for e in nested["entries"]] == ["Brown", "Johnson"]


async def test_document_rows_carry_their_id_and_database(node: Node) -> None:
    await call(node, "view.define", name="staff", columns=COLUMNS, sources=SOURCES)
    page = await call(node, "view.read", name="staff", mode="documents", expand="all")
    rows = {e["values"]["lastName"]: e for e in page["entries"]}
    assert len(rows) == 7
    for origin, rows_of in (("hq", HQ), ("branch", BRANCH)):
        db = await node.tenants.open_db("acme", origin)
        for _, _, last_name, _ in rows_of:
            row = rows[last_name]
            assert (row["origin"], row["tenant"], row["db"]) == (origin, "acme", origin)
            stored = await db.get_document(row["doc_id"])  # the id opens that very document
            assert stored.get_data()["lastName"] == last_name
    step = await call(node, "view.navigate", name="staff", op="goto", target="1.1.1", reveal=True)
    landed = step["entry"]
    assert (landed["doc_id"], landed["db"]) == (rows["Brown"]["doc_id"], "hq")


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
    assert (await call(node, "view.list"))["views"] == []  # a refused define leaves nothing
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
    page: dict[str, Any] = {
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
    headers, rows = render_rows({**page, "origins": ["hq"]})
    assert headers == ["POS", "name", "salary", "DOC"]
    assert rows == [["1", "- A", "3", ""], ["1.1", "    Ann", "3", "x"]]
    page["entries"][1].update(origin="hq", tenant="acme", db="people")
    headers, rows = render_rows({**page, "origins": ["hq", "branch"]})
    assert headers == ["POS", "name", "salary", "DB", "DOC"]
    assert rows[1] == ["1.1", "    Ann", "3", "acme/people", "x"]

    scoped = {"documents": 3, "category": "Sales", "totals": {"s": 270_000}, "has_more": False}
    assert summary_line(scoped) == "# 3 documents in Sales, totals: s=270000"
    assert list_line({"name": None, "tenant": "acme", "state": "locked"}) == [
        "(name sealed while locked)",
        "locked (acme)",
        "unlock tenant acme to use it",
    ]
    damaged = {"name": "v", "tenant": "acme", "state": "damaged", "error": "bad"}
    assert list_line(damaged)[1:] == ["damaged (acme)", "bad"]


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
    ids: dict[str, tuple[str, str]] = {}  # last name -> (tenant/db, doc id)
    for db, rows in (("hq", HQ), ("branch", BRANCH)):
        daemon.cli("db", "create", "acme", db)
        for row in rows:
            made = daemon.cli("doc", "create", "acme", db, "--data", json.dumps(employee(row)))
            ids[row[2]] = (f"acme/{db}", made.stdout.strip())
    defined = daemon.cli(
        "view", "define", "staff",
        "-c", "category:department", "-c", "category:year:desc",
        "-c", "sorted:lastName", "-c", "total:salary:sum",
        "--source", "hq=acme/hq", "--source", "branch=acme/branch",
        "--where", '{"type": "employee"}',
    )  # fmt: skip
    assert "7 documents" in defined.stdout
    shown = daemon.cli("view", "show", "staff").stdout.splitlines()
    table = [
        "POS    lastName       salary  DB",
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
    assert len(shown) == len(table)
    for line, expected in zip(shown, table, strict=True):
        # The known columns come first, unchanged; document rows end with their database and id.
        assert line.startswith(expected), (line, expected)
        tokens = expected.split()
        if len(tokens) == 3 and tokens[1] in ids:
            assert line[len(expected) :].split() == list(ids[tokens[1]])
        elif tokens[0][0].isdigit():
            assert line == expected  # a category row: nothing after its total
    assert shown[0].split() == ["POS", "lastName", "salary", "DB", "DOC"]
    sales = daemon.cli("view", "show", "staff", "--category", "Sales").stdout.splitlines()
    assert sales[-1] == "# 3 documents in Sales, totals: salary=270000"
    assert [line.split()[0] for line in sales[2:-1]] == ["2.1", "2.1.1", "2.1.2", "2.2", "2.2.1"]
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
    assert listed.startswith("staff\tready (acme)\thq, branch")
