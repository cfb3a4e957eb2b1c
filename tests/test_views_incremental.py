"""Views over real databases: an update reads only what changed (counted, not timed), runs can
stop and resume, each origin keeps its own cursor, and a re-read drops what became invisible."""

from __future__ import annotations

import dataclasses
import random
import time

from mindood.db import DBOptions, MindooDB, MindooDoc
from mindood.views import (
    ColumnSorting,
    MindooDBDataProvider,
    TotalMode,
    UpdateProgress,
    VirtualView,
    VirtualViewFactory,
)
from store.memory import InMemoryStore
from tests.db_helpers import Allow, KeySigner, default_keys, make_db
from tests.view_helpers import snapshot

DOCS = 10_000
DEPARTMENTS = ["Sales", "Support\\EMEA", "Support\\APAC", "Engineering", "Legal"]


def _builder(db: MindooDB) -> VirtualView:
    return (
        VirtualViewFactory.create_view()
        .add_category_column("department")
        .add_category_column(
            "decade",
            sorting=ColumnSorting.DESCENDING,
            value_function=lambda doc, values, origin: doc.get_data()["year"] // 10 * 10,
        )
        .add_sorted_column("name")
        .add_total_column("salary", TotalMode.SUM)
        .with_db("docs", db)
        .build()
    )


def _provider(view: VirtualView, origin: str = "docs") -> MindooDBDataProvider:
    provider = view.get_provider(origin)
    assert isinstance(provider, MindooDBDataProvider)
    return provider


async def test_changing_10_of_10000_documents_touches_only_those_10() -> None:
    rng = random.Random(7)
    db = make_db(KeySigner(), default_keys(), options=DBOptions(snapshot_every=0))
    salaries: dict[str, int] = {}
    started = time.perf_counter()
    for i in range(DOCS):
        salary = rng.randrange(30_000, 150_000)
        doc = await db.create_document(
            {
                "department": DEPARTMENTS[i % len(DEPARTMENTS)],
                "year": 1960 + i % 60,
                "name": f"person {i:05d}",
                "salary": salary,
            }
        )
        salaries[doc.get_id()] = salary
    created = time.perf_counter() - started
    view = _builder(db)
    await view.update()
    provider = _provider(view)
    assert view.document_count() == DOCS
    assert view.get_root().get_total_value("salary") == sum(salaries.values())
    assert provider.stats.documents_read == DOCS

    changed = rng.sample(sorted(salaries), 10)
    for n, doc_id in enumerate(changed):
        salaries[doc_id] += 1_000 + n
        fields: dict[str, object] = {"salary": salaries[doc_id]}
        if n % 2:
            fields["department"] = "Marketing\\New"  # moves between categories too

        def update(doc: MindooDoc, fields: dict[str, object] = fields) -> None:
            doc.get_data().update(fields)

        await db.change_doc(doc_id, update)

    read_before = dataclasses.replace(provider.stats)
    view_before = dataclasses.replace(view.stats)
    await view.update()
    read = provider.stats.documents_read - read_before.documents_read
    extracted = provider.stats.values_extracted - read_before.values_extracted
    work = {
        field.name: getattr(view.stats, field.name) - getattr(view_before, field.name)
        for field in dataclasses.fields(view.stats)
    }
    assert (read, extracted) == (10, 10)
    assert work == {
        "documents_added": 0,
        "documents_changed": 10,
        "documents_unchanged": 0,
        "documents_removed": 0,
        "entries_inserted": 10,
        "entries_removed": 10,
        "categories_created": work["categories_created"],  # Marketing\New and its decades
        "categories_removed": 0,
    }
    assert 2 <= work["categories_created"] <= 7
    assert view.get_root().get_total_value("salary") == sum(salaries.values())
    marketing = view.find_category("Marketing\\New")
    assert marketing is not None and marketing.get_descendant_document_count() == 5

    # The kept tree equals one built from scratch over the same database.
    fresh = _builder(db)
    await fresh.update()
    assert snapshot(view, "salary") == snapshot(fresh, "salary")
    assert created < 30, f"creating {DOCS} documents took {created:.1f} s"


async def test_stopped_update_resumes_where_it_stopped() -> None:
    db = make_db(KeySigner(), default_keys(), options=DBOptions(snapshot_every=0))
    for i in range(250):
        await db.create_document(
            {"department": DEPARTMENTS[i % 5], "year": 2000 + i % 7, "name": f"p{i}", "salary": i}
        )
    view = _builder(db)
    reports: list[UpdateProgress] = []

    def stop_after_first(progress: UpdateProgress) -> bool:
        reports.append(progress)
        return False

    result = await view.update(apply_batch_size=100, on_progress=stop_after_first)
    assert not result.completed and result.processed == 100
    assert reports == [UpdateProgress("docs", 100, 250)]
    assert view.document_count() == 100
    assert await db.count_changes_since(view.cursor_of("docs")) == 150

    result = await view.update(apply_batch_size=100, on_progress=reports.append)
    assert result.completed and result.processed == 150
    assert [r.processed for r in reports[1:]] == [100, 150] and reports[-1].total == 150
    assert view.document_count() == 250
    assert _provider(view).stats.documents_read == 250  # nothing was read twice
    assert view.get_root().get_total_value("salary") == sum(range(250))


async def test_each_origin_keeps_its_own_cursor() -> None:
    one = make_db(KeySigner(), default_keys(), db_id="one")
    two = make_db(KeySigner(), default_keys(), db_id="two")
    for db in (one, two):
        for i in range(3):
            await db.create_document({"department": db.db_id, "year": 2020, "name": str(i)})
    view = await (
        VirtualViewFactory.create_view()
        .add_category_column("department")
        .add_category_column("origin", value_function=lambda doc, values, origin: origin)
        .add_sorted_column("name")
        .with_db("one", one)
        .with_db("two", two)
        .build_and_update()
    )
    assert [c.get_category_path() for c in view.get_root().get_child_categories()] == [
        "one",
        "two",
    ]
    assert view.find_category("one\\one") is not None  # the value function saw the origin
    await one.create_document({"department": "one", "year": 2021, "name": "new"})
    await two.create_document({"department": "two", "year": 2021, "name": "new"})
    cursor_two = view.cursor_of("two")
    result = await view.update_origin("one")
    assert result.processed == 1 and view.cursor_of("two") == cursor_two
    assert _provider(view, "two").stats.documents_read == 3
    assert (await view.update()).processed == 1
    assert view.document_count() == 8


async def test_a_changed_trust_picture_rereads_and_drops_what_became_invisible() -> None:
    store, keys = InMemoryStore(), default_keys()
    alice, bob = KeySigner(), KeySigner()
    trust = Allow({alice.public_pem, bob.public_pem})
    db = make_db(alice, keys, store, trust=trust)
    bobs = make_db(bob, keys, store, trust=trust)
    for name in ("a1", "a2", "a3"):
        await db.create_document({"department": "x", "year": 2000, "name": name})
    for name in ("b1", "b2"):
        await bobs.create_document({"department": "y", "year": 2000, "name": name})
    await db.sync_store_changes()
    view = _builder(db)
    await view.update()
    assert view.document_count() == 5

    trust.authors.discard(bob.public_pem)
    trust.bump()
    before = dataclasses.replace(view.stats)
    await view.update()
    assert view.document_count() == 3 and view.find_category("y") is None
    assert view.stats.documents_removed - before.documents_removed == 2
    assert view.stats.documents_unchanged - before.documents_unchanged == 3  # re-read, no moves
    assert (await view.update()).processed == 0  # and the new cursor resumes again
