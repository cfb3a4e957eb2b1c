"""Shared pieces of the view tests: the spec's employees, a tree snapshot, an in-memory source."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

from mindood.daemon.config import parse_config
from mindood.daemon.node import Node
from mindood.db import MindooDB, MindooDoc
from mindood.views import (
    ColumnSorting,
    TotalMode,
    ViewBuilder,
    ViewChange,
    VirtualView,
    VirtualViewFactory,
)
from mindood.views.columns import ColumnSet

#: (department, year, lastName, salary) per database; the spec's employees example, two origins.
HQ = [
    ("Sales", 2024, "Smith", 100_000),
    ("Sales", 2023, "Adams", 80_000),
    ("Engineering", 2024, "Johnson", 130_000),
    ("Engineering", 2024, "Brown", 120_000),
]
BRANCH = [
    ("Sales", 2024, "Miller", 90_000),
    ("Engineering", 2023, "Davis", 110_000),
    ("Support", 2024, "Wilson", 70_000),
]


#: The password of tenant acme's user in ``employees_data_dir``.
ACME_PASSWORD = "alice-pw"


def employees_data_dir(root: Path) -> Path:
    """A node's data directory with tenant acme, the employees in databases hq and branch, and
    one contractor in hq (the views' ``where`` filters it out). Made once per ``root``."""
    made = root / "template"
    if not made.exists():
        asyncio.run(_fill_employees(made))
    return made


def copy_data_dir(template: Path, target: Path) -> Path:
    """A private copy of a (closed) data directory: a tenant costs a second of key generation."""
    shutil.copytree(template, target)
    return target


async def _fill_employees(root: Path) -> None:
    node = Node(root, parse_config({}), {})
    try:
        await node.tenants.create(
            "acme",
            admin_name="cn=admin/o=acme",
            admin_password="admin-pw",
            user_name="cn=alice/o=acme",
            user_password=ACME_PASSWORD,
        )
        for name, rows in (("hq", HQ), ("branch", BRANCH)):
            db = await node.tenants.open_db("acme", name, create=True)
            for row in rows:
                await db.create_document(employee(row))
        hq = await node.tenants.open_db("acme", "hq")
        await hq.create_document({"type": "contractor", "department": "Sales", "salary": 1})
    finally:
        await node.close()


def employee(row: tuple[str, int, str, int]) -> dict[str, Any]:
    department, year, last_name, salary = row
    return {
        "type": "employee",
        "department": department,
        "year": year,
        "lastName": last_name,
        "salary": salary,
    }


def is_employee(doc: MindooDoc) -> bool:
    return doc.get_data().get("type") == "employee"


def employees_builder() -> ViewBuilder:
    """The spec's view: department ascending, year descending, last name, salary SUM."""
    return (
        VirtualViewFactory.create_view()
        .add_category_column("department", sorting=ColumnSorting.ASCENDING)
        .add_category_column("year", sorting=ColumnSorting.DESCENDING)
        .add_sorted_column("lastName", ColumnSorting.ASCENDING)
        .add_total_column("salary", TotalMode.SUM)
    )


async def employees_view(hq: MindooDB, branch: MindooDB) -> VirtualView:
    return await (
        employees_builder()
        .with_db("hq", hq, is_employee)
        .with_db("branch", branch, is_employee)
        .build_and_update()
    )


def snapshot(view: VirtualView, total: str | None = None) -> list[tuple[Any, ...]]:
    """Every entry in view order: position, what it is, its counts and its total."""
    nav = VirtualViewFactory.create_navigator(view).expand_all().build()
    rows: list[tuple[Any, ...]] = []
    for entry in nav.entries_forward():
        what: Any = (
            ("cat", entry.get_category_value()) if entry.is_category() else ("doc", *entry.ident)
        )
        rows.append(
            (
                entry.get_position_str(),
                what,
                entry.get_child_count(),
                entry.get_descendant_document_count(),
                entry.get_descendant_category_count(),
                entry.get_total_value(total) if total else None,
            )
        )
    return rows


def outline(view: VirtualView, label: str) -> list[str]:
    """``"1.2 2023"`` / ``"1.2.1 Davis"`` lines of the fully expanded view, for readable asserts."""
    nav = VirtualViewFactory.create_navigator(view).expand_all().build()
    return [
        f"{e.get_position_str()} "
        f"{e.get_category_value() if e.is_category() else e.get_column_value(label)}"
        for e in nav.entries_forward()
    ]


class DictProvider:
    """A data provider over a plain dict of documents: the view's logic without a database.

    ``put``/``delete`` record pending changes; an update hands them out like a change feed.
    """

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.docs: dict[str, dict[str, Any]] = {}
        self.pending: list[str] = []
        self.read = 0

    def put(self, doc_id: str, data: dict[str, Any]) -> None:
        self.docs[doc_id] = data
        self._touch(doc_id)

    def delete(self, doc_id: str) -> None:
        self.docs.pop(doc_id, None)
        self._touch(doc_id)

    def _touch(self, doc_id: str) -> None:
        if doc_id in self.pending:
            self.pending.remove(doc_id)
        self.pending.append(doc_id)

    async def restarts(self) -> bool:
        return False

    async def count_pending(self) -> int:
        return len(self.pending)

    async def changes(
        self, columns: ColumnSet, batch_size: int
    ) -> AsyncGenerator[ViewChange, None]:
        change = ViewChange(self.origin)
        for doc_id in list(self.pending):
            self.read += 1
            data = self.docs.get(doc_id)
            if data is None:
                change.removals.add(doc_id)
            else:
                change.additions[doc_id] = {
                    c.name: data.get(c.field or c.name) for c in columns.all
                }
            if change.size >= batch_size:
                yield change
                change = ViewChange(self.origin)
        if change.size:
            yield change

    def commit(self, change: ViewChange) -> None:
        done = set(change.additions) | change.removals
        self.pending = [d for d in self.pending if d not in done]


def rebuilt(builder: Callable[[], ViewBuilder], *providers: DictProvider) -> VirtualView:
    """A fresh view holding what ``providers`` hold now (the oracle for incremental updates)."""
    builder_ = builder()
    for provider in providers:
        copy = DictProvider(provider.origin)
        for doc_id, data in provider.docs.items():
            copy.put(doc_id, data)
        builder_.with_data_provider(copy)
    view = builder_.build()
    for provider_origin in view.get_origins():
        source = view.get_provider(provider_origin)
        assert isinstance(source, DictProvider)
        change = ViewChange(provider_origin)
        for doc_id in source.pending:
            change.additions[doc_id] = {
                c.name: source.docs[doc_id].get(c.field or c.name) for c in view.columns.all
            }
        view.apply_changes(change)
        source.commit(change)
    return view
