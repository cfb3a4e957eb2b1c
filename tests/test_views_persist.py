"""Views kept on disk: a node on the same data directory finds them again, restores them from
their saved state, reads only the changes after the saved cursors, and a damaged file costs only
its own view. Nodes run in process on real files; a "restart" is a new ``Node`` on the data dir.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from mindood.daemon.config import parse_config
from mindood.daemon.node import Node
from mindood.daemon.params import Params
from mindood.daemon.view_files import stem_for, views_dir
from mindood.daemon.view_methods import VIEW_METHODS
from mindood.daemon.view_registry import ViewDamagedError, ViewStoreOptions, registry
from mindood.rpc.connection import Connection
from mindood.rpc.errors import CORRUPT, NotFoundError, TenantLockedError
from tests.view_helpers import (
    ACME_PASSWORD,
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
PASSWORD = ACME_PASSWORD


async def call(node: Node, method: str, **params: Any) -> Any:
    return await VIEW_METHODS[method](node, Params(params), cast(Connection, None))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return employees_data_dir(tmp_path_factory.mktemp("views-persist"))


@pytest.fixture
def data_dir(template: Path, tmp_path: Path) -> Path:
    return copy_data_dir(template, tmp_path / "data")


class Nodes:
    """Opens nodes on one data directory, one at a time, as daemon runs would."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.current: Node | None = None

    async def start(self, options: ViewStoreOptions | None = None, unlock: bool = True) -> Node:
        await self.stop()
        node = self.current = Node(self.data_dir, parse_config({}), {})
        if options is not None:
            registry(node, options)
        if unlock:
            assert await node.tenants.unlock("acme", PASSWORD)
        return node

    async def stop(self) -> None:
        if self.current is not None:
            node, self.current = self.current, None
            await node.close()


@pytest.fixture
async def nodes(data_dir: Path) -> AsyncIterator[Nodes]:
    runs = Nodes(data_dir)
    try:
        yield runs
    finally:
        await runs.stop()


def rows(page: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(e["position"], e["doc_id"], e.get("db"), e["values"]) for e in page["entries"]]


def listed(views: dict[str, list[dict[str, Any]]], name: str | None) -> dict[str, Any]:
    (found,) = [v for v in views["views"] if v["name"] == name]
    return found


async def test_a_view_survives_a_restart_and_reads_only_later_changes(nodes: Nodes) -> None:
    node = await nodes.start()
    await call(node, "view.define", name="staff", columns=COLUMNS, sources=SOURCES)
    before = await call(node, "view.read", name="staff", expand="all")

    node = await nodes.start(unlock=False)
    locked = listed(await call(node, "view.list"), "staff")
    assert (locked["state"], locked["tenant"]) == ("locked", "acme") and "origins" not in locked
    with pytest.raises(TenantLockedError):
        await call(node, "view.read", name="staff")

    assert await node.tenants.unlock("acme", PASSWORD)
    assert listed(await call(node, "view.list"), "staff")["built"] is False  # built on first use
    after = await call(node, "view.read", name="staff", expand="all")
    assert rows(after) == rows(before) and after["totals"] == before["totals"]
    built = listed(await call(node, "view.list"), "staff")
    assert (built["restored_documents"], built["documents_read"]) == (7, 0)

    branch = await node.tenants.open_db("acme", "branch")
    await branch.create_document(employee(("Support", 2024, "Young", 30_000)))
    changed = await call(node, "view.read", name="staff", category="Support", expand="all")
    assert changed["totals"] == {"salary": 100_000}
    assert [e["values"].get("lastName") for e in changed["entries"]] == [None, "Wilson", "Young"]
    assert listed(await call(node, "view.list"), "staff")["documents_read"] == 1


async def test_a_stale_state_replays_the_changes_after_its_cursor(nodes: Nodes) -> None:
    # Saved only once a whole view's worth of documents changed: two changes stay unsaved.
    lazy = ViewStoreOptions(resave_fraction=1.0)
    node = await nodes.start(lazy)
    await call(node, "view.define", name="staff", columns=COLUMNS, sources=SOURCES)
    hq = await node.tenants.open_db("acme", "hq")
    smith = next(
        e["doc_id"]
        for e in (await call(node, "view.read", name="staff", expand="all"))["entries"]
        if e["values"].get("lastName") == "Smith"
    )
    await hq.change_doc(smith, lambda d: d.get_data().__setitem__("salary", 150_000))
    await hq.create_document(employee(("Legal", 2022, "Quinn", 60_000)))
    expected = await call(node, "view.read", name="staff", expand="all")
    assert expected["totals"] == {"salary": 810_000}

    node = await nodes.start(lazy)
    again = await call(node, "view.read", name="staff", expand="all")
    assert rows(again) == rows(expected)
    built = listed(await call(node, "view.list"), "staff")
    assert (built["restored_documents"], built["documents_read"]) == (7, 2)


async def test_a_damaged_definition_costs_only_that_view(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    node = await nodes.start()
    await call(node, "view.define", name="staff", columns=COLUMNS, sources=SOURCES)
    await call(node, "view.define", name="hq-only", columns=COLUMNS, sources=SOURCES[:1])
    await nodes.stop()
    path = views_dir(nodes.data_dir, "acme") / "staff.view"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    path.write_bytes(bytes(raw))

    with caplog.at_level(logging.WARNING, logger="mindood.views"):
        node = await nodes.start()  # the unlock is not disturbed by the file
        views = await call(node, "view.list")
    damaged = listed(views, "staff")
    assert damaged["state"] == "damaged" and "damaged" in damaged["error"]
    assert any("view file unusable" in r.getMessage() for r in caplog.records)
    with pytest.raises(ViewDamagedError, match="staff") as caught:
        await call(node, "view.read", name="staff")
    assert caught.value.code == CORRUPT
    assert (await call(node, "view.read", name="hq-only"))["documents"] == 4

    # Defining it again repairs it, for this run and the next.
    await call(node, "view.define", name="staff", columns=COLUMNS, sources=SOURCES)
    node = await nodes.start()
    assert (await call(node, "view.read", name="staff"))["documents"] == 7
    path.write_bytes(b"MDVIEW1\ngarbage")
    node = await nodes.start()
    await call(node, "view.drop", name="staff")  # a damaged view can be dropped
    assert not path.exists()
    assert [v["name"] for v in (await call(node, "view.list"))["views"]] == ["hq-only"]


async def test_a_damaged_or_stale_state_costs_a_rebuild(
    nodes: Nodes, caplog: pytest.LogCaptureFixture
) -> None:
    node = await nodes.start()
    await call(node, "view.define", name="staff", columns=COLUMNS, sources=SOURCES)
    before = rows(await call(node, "view.read", name="staff", expand="all"))
    await nodes.stop()
    state = views_dir(nodes.data_dir, "acme") / "staff.state"
    state.write_bytes(state.read_bytes()[:-5])

    with caplog.at_level(logging.WARNING, logger="mindood.views"):
        node = await nodes.start()
        assert rows(await call(node, "view.read", name="staff", expand="all")) == before
    built = listed(await call(node, "view.list"), "staff")
    assert (built["restored_documents"], built["documents_read"]) == (0, 8)
    assert "unusable" in built["rebuild_reason"]
    assert any("state unusable" in r.getMessage() for r in caplog.records)

    # The rebuild saved a good state again; a changed definition makes that state stale.
    node = await nodes.start()
    await call(node, "view.read", name="staff")
    assert listed(await call(node, "view.list"), "staff")["restored_documents"] == 7
    old_state = state.read_bytes()
    await call(node, "view.define", name="staff", columns=COLUMNS[:1], sources=SOURCES)
    await nodes.stop()
    state.write_bytes(old_state)  # as if the new state never reached the disk
    node = await nodes.start()
    page = await call(node, "view.read", name="staff")
    assert [c["name"] for c in page["columns"]] == ["department"] and page["documents"] == 7
    assert "earlier definition" in listed(await call(node, "view.list"), "staff")["rebuild_reason"]


async def test_view_files_are_sealed_and_private(nodes: Nodes) -> None:
    node = await nodes.start()
    name = "Staff / 2024 — Q1"  # not a file name: the file is named by a hash
    await call(node, "view.define", name=name, columns=COLUMNS, sources=SOURCES)
    directory = views_dir(nodes.data_dir, "acme")
    files = sorted(p.name for p in directory.iterdir())
    assert files == [f"{stem_for(name)}.state", f"{stem_for(name)}.view"]
    for path in directory.iterdir():
        content = path.read_bytes()
        for plain in (b"Smith", b"salary", b"employee", b"department", name.encode()):
            assert plain not in content, (path.name, plain)
        assert path.stat().st_mode & 0o777 == 0o600

    node = await nodes.start(unlock=False)
    assert listed(await call(node, "view.list"), None)["state"] == "locked"  # name is sealed
    assert await node.tenants.unlock("acme", PASSWORD)
    assert (await call(node, "view.read", name=name))["documents"] == 7
    assert listed(await call(node, "view.list"), name)["restored_documents"] == 7


async def test_locking_the_tenant_forgets_what_was_read(nodes: Nodes) -> None:
    node = await nodes.start()
    await call(node, "view.define", name="staff", columns=COLUMNS, sources=SOURCES)
    await node.tenants.lock("acme")
    assert listed(await call(node, "view.list"), "staff")["state"] == "locked"
    with pytest.raises(TenantLockedError):
        await call(node, "view.read", name="staff")
    await node.tenants.unlock("acme", PASSWORD)
    assert (await call(node, "view.read", name="staff"))["documents"] == 7
    assert listed(await call(node, "view.list"), "staff")["restored_documents"] == 7
    await call(node, "view.drop", name="staff")
    with pytest.raises(NotFoundError):
        await call(node, "view.read", name="staff")
    assert list(views_dir(nodes.data_dir, "acme").iterdir()) == []
