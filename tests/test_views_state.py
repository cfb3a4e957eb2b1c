"""A view's exported state: restored into a fresh view it gives the same tree without reading a
document, the next update reads only the changes after its cursors, and bad states are refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgpack
import pytest

from mindood.db import DBOptions, MindooDB
from mindood.views import (
    MindooDBDataProvider,
    ViewState,
    ViewStateError,
    VirtualView,
)
from mindood.views.state import OriginState
from store.memory import InMemoryStore
from tests.db_helpers import Allow, KeySigner, default_keys, make_db
from tests.view_helpers import (
    BRANCH,
    HQ,
    DictProvider,
    employee,
    employees_builder,
    is_employee,
    snapshot,
)


def _view(hq: MindooDB, branch: MindooDB) -> VirtualView:
    return (
        employees_builder()
        .with_db("hq", hq, is_employee)
        .with_db("branch", branch, is_employee)
        .build()
    )


def _read(view: VirtualView) -> int:
    providers = [view.get_provider(o) for o in view.get_origins()]
    return sum(p.stats.documents_read for p in providers if isinstance(p, MindooDBDataProvider))


def _packed(state: ViewState) -> ViewState:
    """Through the bytes a file holds, as the daemon writes them."""
    raw = msgpack.packb(state.to_plain(), use_bin_type=True, datetime=True)
    return ViewState.from_plain(msgpack.unpackb(raw, raw=False, timestamp=3))


async def _dbs() -> tuple[MindooDB, MindooDB, dict[str, str]]:
    """The employees in two databases, and their ids by last name."""
    options = DBOptions(snapshot_every=0)
    hq = make_db(KeySigner(), default_keys(), options=options, db_id="hq")
    branch = make_db(KeySigner(), default_keys(), options=options, db_id="branch")
    ids: dict[str, str] = {}
    for db, rows in ((hq, HQ), (branch, BRANCH)):
        for row in rows:
            ids[row[2]] = (await db.create_document(employee(row))).get_id()
    return hq, branch, ids


async def test_a_restored_view_equals_the_built_one_and_resumes_after_its_cursors() -> None:
    hq, branch, ids = await _dbs()
    built = _view(hq, branch)
    await built.update()
    state = _packed(built.export_state())
    assert state.document_count() == 7

    restored = _view(hq, branch)
    assert await restored.restore_state(state, apply_batch_size=2) == 7
    assert restored.version == 4  # hq's 4 and branch's 3 in batches of 2, yielding between
    assert snapshot(restored, "salary") == snapshot(built, "salary")
    await restored.update()
    assert _read(restored) == 0  # nothing changed after the cursors

    await hq.change_doc(ids["Adams"], lambda d: d.get_data().__setitem__("salary", 85_000))
    await branch.create_document(employee(("Legal", 2022, "Quinn", 60_000)))
    await restored.update()
    assert _read(restored) == 2
    fresh = _view(hq, branch)
    await fresh.update()
    assert snapshot(restored, "salary") == snapshot(fresh, "salary")


async def test_values_of_every_stored_type_survive_the_bytes() -> None:
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    values: dict[str, Any] = {"a": when, "b": b"\x00\xff", "c": [1, "x", None], "d": {"e": 1.5}}
    state = ViewState({"docs": OriginState(None, {"id1": values})})
    assert _packed(state).origins["docs"].documents == {"id1": values}


async def test_an_origin_in_a_full_reread_is_exported_from_the_start() -> None:
    first, second = KeySigner(), KeySigner()
    trust = Allow({first.public_pem, second.public_pem})
    keys, store, attachments = default_keys(), InMemoryStore(), InMemoryStore("att")
    mine = make_db(first, keys, store, attachments, trust=trust)
    theirs = make_db(second, keys, store, attachments, trust=trust)
    for i in range(30):
        db = mine if i < 20 else theirs
        await db.create_document({"department": f"d{i % 3}", "lastName": f"p{i}", "salary": i})
    view = employees_builder().with_db("docs", mine).build()
    await view.update()
    assert view.document_count() == 30
    # Trust changed: the next update re-reads everything and must drop the other author's ten.
    trust.authors.discard(second.public_pem)
    stopped = await view.update(apply_batch_size=10, on_progress=lambda progress: False)
    assert not stopped.completed
    exported = view.export_state().origins["docs"]
    assert (exported.cursor, dict(exported.documents)) == (None, {})

    restored = employees_builder().with_db("docs", mine).build()
    assert await restored.restore_state(view.export_state()) == 0
    await restored.update()
    assert restored.document_count() == 20


async def test_bad_states_are_refused() -> None:
    hq, branch, _ = await _dbs()
    built = _view(hq, branch)
    await built.update()
    good = built.export_state()
    with pytest.raises(ViewStateError, match="never updated"):
        await built.restore_state(good)
    with pytest.raises(ViewStateError, match="origins"):
        await _view(hq, branch).restore_state(ViewState({"hq": good.origins["hq"]}))
    unfit = {"x": {"department": "Sales"}}
    bad_values = ViewState({**good.origins, "hq": OriginState(None, unfit)})
    with pytest.raises(ViewStateError, match="fit the columns"):
        await _view(hq, branch).restore_state(bad_values)
    no_cursor = employees_builder().with_data_provider(DictProvider("hq")).build()
    with pytest.raises(ViewStateError, match="cursor"):
        no_cursor.export_state()

    plain = good.to_plain()
    for broken in (
        None,
        {**plain, "format": 99},
        {**plain, "origins": []},
        {**plain, "origins": {"hq": {"cursor": 5, "documents": {}}}},
        {**plain, "origins": {"hq": {"cursor": "[9]", "documents": {}}}},
        {**plain, "origins": {"hq": {"cursor": None, "documents": {"id": 1}}}},
        {**plain, "origins": {"hq": {"cursor": None}}},
    ):
        with pytest.raises(ViewStateError):
            ViewState.from_plain(broken)
