"""The view's tree: the sorted container, the value order, exact totals, categories from values
(nesting, fan-out, empty values, styles), sort order, and incremental updates against rebuilds."""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mindood.views import (
    CategorizationStyle,
    ColumnSorting,
    TotalMode,
    ViewBuilder,
    ViewChange,
    ViewDefinitionError,
    VirtualView,
    VirtualViewFactory,
    sortedlist,
)
from mindood.views.ordering import ascending_key, descending_key
from mindood.views.sortedlist import SortedKeyList
from mindood.views.totals import Total
from tests.view_helpers import DictProvider, outline, rebuilt, snapshot

# -- the sorted container ----------------------------------------------------------------------

_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "many"]), st.lists(st.integers(0, 300), max_size=40)
    )
)


@settings(max_examples=150, deadline=None)
@given(ops=_ops)
def test_sorted_list_matches_a_plain_sorted_list(ops: list[tuple[str, list[int]]]) -> None:
    with mock.patch.object(sortedlist, "LOAD", 4):  # tiny chunks: splits and joins happen
        items: SortedKeyList[str] = SortedKeyList()
        model: list[int] = []
        for op, keys in ops:
            if op == "add":
                for key in keys:
                    if key not in model:
                        items.add(key, f"v{key}")
                        model.append(key)
            elif op == "remove":
                for key in keys:
                    if key in model:
                        assert items.remove(key) == f"v{key}"
                        model.remove(key)
                    else:
                        with pytest.raises(KeyError):
                            items.remove(key)
            else:
                fresh = sorted(set(keys) - set(model))
                items.add_many([(k, f"v{k}") for k in fresh])
                model.extend(fresh)
            model.sort()
            assert list(items) == [f"v{k}" for k in model]
            assert list(reversed(items)) == [f"v{k}" for k in reversed(model)]
            assert len(items) == len(model)
        for position, key in enumerate(model):
            assert items.index(key) == position
            assert items[position] == f"v{key}" and items.key_at(position) == key
            assert list(items.iter_from(position)) == [f"v{k}" for k in model[position:]]
            assert list(items.iter_before(position)) == [f"v{k}" for k in model[:position][::-1]]
            assert items.bisect(key) == position and key in items
        assert -1 not in items


def test_sorted_list_refuses_duplicate_keys() -> None:
    items: SortedKeyList[str] = SortedKeyList([(1, "a"), (2, "b")])
    with pytest.raises(ValueError):
        items.add(1, "again")
    with pytest.raises(ValueError):
        items.add_many([(2, "x"), (3, "y"), (4, "z")])
    with pytest.raises(IndexError):
        items[2]


# -- value order -------------------------------------------------------------------------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.binary(max_size=3),
    st.datetimes(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(a=_values, b=_values, c=_values)
def test_keys_are_a_total_order_and_descending_reverses_it(a: Any, b: Any, c: Any) -> None:
    ka, kb, kc = ascending_key(a), ascending_key(b), ascending_key(c)
    assert (ka < kb) + (kb < ka) + (ka == kb) == 1
    if ka < kb and kb < kc:
        assert ka < kc
    da, db = descending_key(a), descending_key(b)
    assert (ka < kb) == (db < da) and (ka == kb) == (da == db)


def test_mixed_types_sort_in_a_documented_order() -> None:
    values: list[Any] = [
        "banana", 3, None, "Banana", 2.5, True, b"x", dt.datetime(2024, 1, 1), "apple", {"k": 1}
    ]  # fmt: skip
    assert sorted(values, key=ascending_key) == [
        None, True, 2.5, 3, dt.datetime(2024, 1, 1), "apple", "Banana", "banana", b"x", {"k": 1}
    ]  # fmt: skip


# -- totals ------------------------------------------------------------------------------------


def test_float_totals_do_not_drift_with_updates() -> None:
    running, fresh = Total(), Total()
    for x in (0.1, 0.2, 0.3, 1e16, 3):
        running.add(x)
    for x in (0.1, 1e16):
        running.add(x, -1)
    for x in (0.2, 0.3, 3):
        fresh.add(x)
    assert running.value(TotalMode.SUM) == fresh.value(TotalMode.SUM) == 0.2 + 0.3 + 3
    assert running.value(TotalMode.AVERAGE) == fresh.value(TotalMode.AVERAGE) == (3.5 / 3)
    running.add(0.2, -1)
    running.add(0.3, -1)
    assert running.value(TotalMode.SUM) == 3 and isinstance(running.value(TotalMode.SUM), int)
    running.add(math.inf)
    assert running.value(TotalMode.SUM) == math.inf
    running.add(-math.inf)
    assert math.isnan(running.value(TotalMode.SUM) or 0.0)
    running.add(math.inf, -1)
    running.add(-math.inf, -1)
    assert running.value(TotalMode.SUM) == 3
    empty = Total()
    assert empty.value(TotalMode.SUM) == 0 and empty.value(TotalMode.AVERAGE) is None


# -- categories from values --------------------------------------------------------------------


def _view(builder: ViewBuilder, docs: dict[str, Any]) -> VirtualView:
    source = DictProvider("a")
    for doc_id, data in docs.items():
        source.put(doc_id, data)
    view = builder.with_data_provider(source).build()
    change = ViewChange("a")
    for doc_id, data in docs.items():
        change.additions[doc_id] = {c.name: data.get(c.name) for c in view.columns.all}
    view.apply_changes(change)
    return view


def test_backslash_nesting_fan_out_and_empty_values() -> None:
    builder = (
        VirtualViewFactory.create_view()
        .add_category_column("path")
        .add_sorted_column("name")
        .add_total_column("n", TotalMode.SUM)
    )
    view = _view(
        builder,
        {
            "d1": {"path": "2024\\Q1\\Jan", "name": "one", "n": 1},
            "d2": {"path": ["2024\\Q1\\Feb", "2023"], "name": "two", "n": 10},
            "d3": {"path": None, "name": "three", "n": 100},
            "d4": {"path": "\\2024\\\\Q2\\", "name": "four", "n": 1000},
            "d5": {"path": [], "name": "five", "n": 10000},
        },
    )
    assert outline(view, "name") == [
        "1 five",  # no category: at the top, documents before categories
        "2 three",
        "3 2023",
        "3.1 two",
        "4 2024",
        "4.1 Q1",
        "4.1.1 Feb",
        "4.1.1.1 two",
        "4.1.2 Jan",
        "4.1.2.1 one",
        "4.2 Q2",
        "4.2.1 four",
    ]
    two = view.get_entries("a", "d2")
    assert [e.get_position_str() for e in two] == ["4.1.1.1", "3.1"]
    assert view.find_category("2024\\Q1").get_total_value("n") == 11  # type: ignore[union-attr]
    assert view.find_category(["2024"]).get_total_value("n") == 1011  # type: ignore[union-attr]
    assert view.get_root().get_total_value("n") == 11121  # d2 counts once per row
    assert view.document_count() == 5 and view.get_root().get_descendant_document_count() == 6
    view.apply_changes(ViewChange("a", removals={"d2"}))
    assert view.find_category("2023") is None and view.find_category("2024\\Q1\\Feb") is None
    assert not any(e.in_view() for e in two)


def test_categorization_style_puts_documents_after_categories() -> None:
    docs = {"x": {"dept": "A", "name": "x"}, "y": {"dept": None, "name": "y"}}
    first = _view(
        VirtualViewFactory.create_view().add_category_column("dept").add_sorted_column("name"), docs
    )
    assert outline(first, "name") == ["1 y", "2 A", "2.1 x"]
    last = _view(
        VirtualViewFactory.create_view()
        .add_category_column("dept")
        .add_sorted_column("name")
        .with_categorization_style(CategorizationStyle.CATEGORY_THEN_DOCUMENT),
        docs,
    )
    assert outline(last, "name") == ["1 A", "1.1 x", "2 y"]


def test_sorting_columns_directions_ties_and_mixed_types() -> None:
    builder = (
        VirtualViewFactory.create_view()
        .add_sorted_column("rank", ColumnSorting.DESCENDING)
        .add_sorted_column("name", ColumnSorting.ASCENDING)
        .add_display_column("label")
    )
    docs = {
        "a": {"rank": 1, "name": "b"},
        "b": {"rank": 1, "name": "A"},
        "c": {"rank": "high", "name": "z"},
        "d": {"rank": None, "name": "n"},
        "e": {"rank": 2.5, "name": "m"},
        "f": {"rank": 1, "name": "b"},  # same values as "a": the id decides
    }
    view = _view(builder, docs)
    ids = [e.doc_id for e in VirtualViewFactory.create_navigator(view).build().entries_forward()]
    assert ids == ["c", "e", "b", "a", "f", "d"]


def test_value_functions_fields_and_average() -> None:
    builder = (
        VirtualViewFactory.create_view()
        .add_category_column(
            "initial", value_function=lambda doc, values, origin: doc.get_data()["name"][0]
        )
        .add_sorted_column("city", field="address.city")
        .add_total_column("age", TotalMode.AVERAGE)
    )
    with pytest.raises(ViewDefinitionError):
        VirtualViewFactory.create_view().add_display_column("x").add_display_column("x").build()
    with pytest.raises(ViewDefinitionError):
        VirtualViewFactory.create_view().build()
    view = builder.build()
    assert [c.name for c in view.get_sort_columns()] == ["city"]
    assert [c.name for c in view.get_total_columns()] == ["age"]
    # Value functions need documents: exercise them through a real database elsewhere; here
    # the extraction order and the average.
    source = DictProvider("a")
    view2 = (
        VirtualViewFactory.create_view()
        .add_category_column("team")
        .add_total_column("age", TotalMode.AVERAGE)
        .with_data_provider(source)
        .build()
    )
    change = ViewChange("a")
    for i, (team, age) in enumerate([("x", 30), ("x", 41), ("y", "n/a"), ("y", 20)]):
        change.additions[f"d{i}"] = {"team": team, "age": age}
    view2.apply_changes(change)
    assert view2.find_category("x").get_total_value("age") == 35.5  # type: ignore[union-attr]
    assert view2.find_category("y").get_total_value("age") == 20  # type: ignore[union-attr]
    assert view2.get_root().get_total_value("age") == 91 / 3


# -- incremental updates equal rebuilds -------------------------------------------------------

_DEPTS = ["Sales", "Support\\EMEA", "Support\\APAC", "", None, ["Sales", "R&D"], "R&D\\Lab"]
_YEARS = [2023, 2024, "2024", None, [2022, 2023]]
_SALARY = [100, 250, 0.1, 0.2, 1e9 + 0.5, None, "x", -7]


def _builder() -> ViewBuilder:
    return (
        VirtualViewFactory.create_view()
        .add_category_column("dept", sorting=ColumnSorting.ASCENDING)
        .add_category_column("year", sorting=ColumnSorting.DESCENDING)
        .add_sorted_column("name", ColumnSorting.ASCENDING)
        .add_total_column("salary", TotalMode.SUM)
        .add_total_column("avg", TotalMode.AVERAGE, field="salary")
    )


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32), steps=st.integers(1, 6), batch=st.sampled_from([1, 3, 1000]))
async def test_incremental_updates_equal_a_fresh_build(seed: int, steps: int, batch: int) -> None:
    rng = random.Random(seed)
    sources = [DictProvider("one"), DictProvider("two")]
    view = VirtualView(_builder().build().columns, sources)
    for _ in range(steps):
        for _ in range(rng.randint(1, 25)):
            source = rng.choice(sources)
            doc_id = f"d{rng.randint(0, 30)}"
            if rng.random() < 0.2:
                source.delete(doc_id)
            else:
                data = {
                    "dept": rng.choice(_DEPTS),
                    "year": rng.choice(_YEARS),
                    "name": rng.choice(["ann", "Bob", "bob", "cy", None, 3]),
                    "salary": rng.choice(_SALARY),
                }
                source.put(doc_id, data)
        await view.update(apply_batch_size=batch)
        fresh = rebuilt(_builder, *sources)
        assert snapshot(view, "salary") == snapshot(fresh, "salary")
        assert snapshot(view, "avg") == snapshot(fresh, "avg")
        assert view.document_count() == sum(len(s.docs) for s in sources)
