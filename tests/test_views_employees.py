"""The spec's employees view (department / year / last name, salary SUM) over two tenants'
databases, checked number by number, then kept current through inserts, changes and deletes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mindood import InMemoryStoreFactory, VirtualViewFactory
from mindood.db import MindooDB
from mindood.views import CategoryEntry, VirtualView
from tests.tenant_helpers import fast_kdf, new_tenant
from tests.view_helpers import BRANCH, HQ, employee, employees_view, outline, snapshot


@pytest.fixture(scope="module", autouse=True)
def _fast_kdf() -> Iterator[None]:
    yield from fast_kdf()


async def _two_dbs() -> tuple[MindooDB, MindooDB]:
    """HQ and the branch live in different tenants: one view spans both."""
    acme = (await new_tenant(InMemoryStoreFactory(), "acme")).tenant
    globex = (await new_tenant(InMemoryStoreFactory(), "globex")).tenant
    hq = await acme.open_db("employees")
    branch = await globex.open_db("employees")
    for row in HQ:
        await hq.create_document(employee(row))
    await hq.create_document({"type": "contractor", "department": "Sales", "salary": 5})
    for row in BRANCH:
        await branch.create_document(employee(row))
    return hq, branch


def _category(view: VirtualView, path: str) -> CategoryEntry:
    found = view.find_category(path)
    assert found is not None, path
    return found


def _totals(view: VirtualView) -> dict[str, int | float | None]:
    nav = VirtualViewFactory.create_navigator(view).categories_only().expand_all().build()
    return {
        e.get_category_path(): e.get_total_value("salary")
        for e in nav.entries_forward()
        if isinstance(e, CategoryEntry)
    }


async def _fresh(hq: MindooDB, branch: MindooDB) -> VirtualView:
    return await employees_view(hq, branch)


async def test_spec_example_number_by_number() -> None:
    hq, branch = await _two_dbs()
    view = await employees_view(hq, branch)

    assert outline(view, "lastName") == [
        "1 Engineering",
        "1.1 2024",
        "1.1.1 Brown",
        "1.1.2 Johnson",
        "1.2 2023",
        "1.2.1 Davis",
        "2 Sales",
        "2.1 2024",
        "2.1.1 Miller",
        "2.1.2 Smith",
        "2.2 2023",
        "2.2.1 Adams",
        "3 Support",
        "3.1 2024",
        "3.1.1 Wilson",
    ]
    assert _totals(view) == {
        "Engineering": 360_000,
        "Engineering\\2024": 250_000,
        "Engineering\\2023": 110_000,
        "Sales": 270_000,
        "Sales\\2024": 190_000,
        "Sales\\2023": 80_000,
        "Support": 70_000,
        "Support\\2024": 70_000,
    }
    root = view.get_root()
    assert root.get_total_value("salary") == 700_000
    assert view.document_count() == 7  # the contractor is filtered out
    assert root.get_descendant_document_count() == 7
    assert root.get_descendant_category_count() == 8
    assert root.get_child_count() == 3

    engineering = _category(view, "Engineering")
    assert (engineering.get_level(), engineering.get_position_str()) == (0, "1")
    assert engineering.get_child_category_count() == 2
    assert engineering.get_child_document_count() == 0
    assert engineering.get_descendant_count() == 5  # 2 years + 3 people
    assert engineering.get_column_values() == {"department": "Engineering", "salary": 360_000}
    sales_2024 = _category(view, "Sales\\2024")
    assert sales_2024.get_category_value() == 2024
    assert sales_2024.get_column_value("year") == 2024
    assert (sales_2024.get_level(), sales_2024.get_position()) == (1, (2, 1))
    assert (sales_2024.get_sibling_index(), sales_2024.get_sibling_count()) == (1, 2)
    miller, smith = sales_2024.get_child_documents()
    assert (miller.origin, smith.origin) == ("branch", "hq")  # two origins side by side
    assert miller.get_level() == 2 and miller.get_position_str() == "2.1.1"
    assert miller.get_column_values() == {
        "department": "Sales",
        "year": 2024,
        "lastName": "Miller",
        "salary": 90_000,
    }
    assert miller.get_total_value("salary") == 90_000
    assert miller.get_parent() is sales_2024
    assert view.get_entries("branch", miller.doc_id) == [miller]
    assert view.get_entries("hq", miller.doc_id) == []  # keyed by (origin, doc id)


async def test_inserts_changes_and_deletes_apply_incrementally() -> None:
    hq, branch = await _two_dbs()
    view = await employees_view(hq, branch)
    ids = {e.get_column_value("lastName"): e.ident for e in _documents(view)}

    # Insert: a new department and a new year in an existing one.
    await branch.create_document(employee(("Marketing", 2022, "Garcia", 60_000)))
    await hq.create_document(employee(("Sales", 2022, "Clark", 50_000)))
    await view.update()
    totals = _totals(view)
    assert totals["Marketing"] == 60_000
    assert totals["Sales"] == 320_000 and totals["Sales\\2022"] == 50_000
    assert view.get_root().get_total_value("salary") == 810_000
    assert [c.get_category_value() for c in view.get_root().get_child_categories()] == [
        "Engineering",
        "Marketing",
        "Sales",
        "Support",
    ]
    assert _category(view, "Sales\\2022").get_position_str() == "3.3"  # years descending
    assert snapshot(view, "salary") == snapshot(await _fresh(hq, branch), "salary")

    # Change: a raise, a move to another department, a rename that reorders.
    await hq.change_doc(ids["Smith"][1], lambda d: d.get_data().update(salary=105_000))
    await branch.change_doc(ids["Davis"][1], lambda d: d.get_data().update(department="Support"))
    await hq.change_doc(ids["Brown"][1], lambda d: d.get_data().update(lastName="Young"))
    await view.update()
    totals = _totals(view)
    assert totals["Sales\\2024"] == 195_000 and totals["Sales"] == 325_000
    assert "Engineering\\2023" not in totals  # Davis left: the year category went with him
    assert totals["Engineering"] == 250_000
    assert totals["Support"] == 180_000 and totals["Support\\2023"] == 110_000
    assert outline(view, "lastName")[:4] == [
        "1 Engineering",
        "1.1 2024",
        "1.1.1 Johnson",
        "1.1.2 Young",
    ]
    assert view.get_root().get_total_value("salary") == 815_000
    assert snapshot(view, "salary") == snapshot(await _fresh(hq, branch), "salary")

    # Delete: the only person in a department, and a filter that stops matching.
    garcia = next(e for e in _documents(view) if e.get_column_value("lastName") == "Garcia")
    await branch.delete_document(garcia.doc_id)
    await hq.change_doc(ids["Adams"][1], lambda d: d.get_data().update(type="alumnus"))
    await view.update()
    totals = _totals(view)
    assert "Marketing" not in totals and "Sales\\2023" not in totals
    assert not garcia.in_view() and garcia.get_position() == ()
    assert totals["Sales"] == 245_000
    assert view.get_root().get_total_value("salary") == 675_000
    assert view.document_count() == 7
    # Engineering\2023, Marketing and its 2022, Sales\2023: each went with its last document.
    assert view.stats.categories_removed == 4
    assert snapshot(view, "salary") == snapshot(await _fresh(hq, branch), "salary")

    # Nothing changed: nothing is read, nothing moves.
    before = view.stats.entries_inserted, view.version
    result = await view.update()
    assert result.processed == 0
    assert (view.stats.entries_inserted, view.version) == before


def _documents(view: VirtualView) -> list[CategoryEntry]:
    nav = VirtualViewFactory.create_navigator(view).documents_only().build()
    return list(nav.entries_forward())  # type: ignore[arg-type]
