"""Document operations: validation before anything is written, then one change per request."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from mindood.daemon.docops import apply_ops, initial_data, parse_ops, value_from_wire
from mindood.document.values import Counter, Text
from mindood.rpc.errors import InvalidParamsError
from mindood.storefactory import InMemoryStoreFactory
from tests.tenant_helpers import fast_kdf, new_tenant

_fast = pytest.fixture(autouse=True, scope="module")(fast_kdf)


def test_markers_become_crdt_values() -> None:
    value = value_from_wire(
        {"t": {"$text": "hi"}, "c": {"$counter": 3}, "plain": {"$text": "x", "other": 1}}, "v"
    )
    assert isinstance(value["t"], Text) and value["t"] == "hi"
    assert isinstance(value["c"], Counter) and value["c"] == 3
    assert value["plain"] == {"$text": "x", "other": 1}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"$text": 5}, r"\$text must be a string"),
        ({"$counter": "5"}, r"\$counter must be an integer"),
        ({"": 1}, "non-empty strings"),
        ({b"k": 1}, "non-empty strings"),
        (2**63, "between"),
        (object(), "cannot store"),
    ],
)
def test_bad_values(raw: object, message: str) -> None:
    with pytest.raises(InvalidParamsError, match=message):
        value_from_wire(raw, "v")


def test_values_cannot_nest_without_bound() -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    with pytest.raises(InvalidParamsError, match="deeper"):
        value_from_wire(deep, "v")


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        ("x", "must be an array"),
        ([], "must not be empty"),
        ([1], r"ops\[0\] must be a map"),
        ([{"op": "set", "path": ["a"]}], r"ops\[0\].value is required"),
        ([{"op": "set", "path": 7, "value": 1}], "path must be an array or a key"),
        ([{"op": "set", "path": "", "value": 1}], r"path\[0\] must be a non-empty string"),
        ([{"op": "set", "path": "_attachments", "value": 1}], "maintained by MindooDB"),
        ([{"op": "set", "path": [0], "value": 1}], "must start with a key"),
        ([{"op": "set", "path": ["a", -1], "value": 1}], r"path\[1\]"),
        ([{"op": "set", "path": ["a", True], "value": 1}], r"path\[1\]"),
        ([{"op": "set", "path": ["_lastModified"], "value": 1}], "maintained by MindooDB"),
        ([{"op": "splice", "path": ["t"], "index": "0"}], "index must be an integer"),
        ([{"op": "splice", "path": ["t"], "index": 0, "text": 5}], "text must be a string"),
        ([{"op": "increment", "path": ["c"], "by": 1.5}], "by must be an integer"),
        ([{"op": "insert", "path": ["l"], "value": 1}], "index must be an integer"),
        ([{"op": "delete", "path": ["a"], "value": 1}], "unknown field 'value'"),
        ([{"op": "rename", "path": ["a"]}], "op must be one of"),
    ],
)
def test_parse_ops_rejects(ops: object, message: str) -> None:
    with pytest.raises(InvalidParamsError, match=message):
        parse_ops(ops, max_ops=10)


def test_a_string_path_is_one_key() -> None:
    """``"city"`` names the key city, not the path c/i/t/y."""
    [as_key, as_list] = parse_ops(
        [
            {"op": "set", "path": "city", "value": "Oslo"},
            {"op": "set", "path": ["city"], "value": "Oslo"},
        ],
        max_ops=10,
    )
    assert as_key.path == as_list.path == ("city",)


def test_parse_ops_limits_the_count() -> None:
    ops = [{"op": "delete", "path": ["a"]}] * 11
    with pytest.raises(InvalidParamsError, match="more than 10"):
        parse_ops(ops, max_ops=10)


def test_initial_data_refuses_system_fields() -> None:
    assert initial_data(None) == {}
    with pytest.raises(InvalidParamsError, match="maintained"):
        initial_data({"_attachments": []})


async def test_ops_apply_as_one_change_or_not_at_all() -> None:
    created = await new_tenant(InMemoryStoreFactory())
    try:
        db = await created.tenant.open_db("notes")
        when = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
        doc = await db.create_document(
            initial_data(
                {
                    "t": {"$text": "hello"},
                    "c": {"$counter": 1},
                    "l": [1, [2, 3]],
                    "m": {"k": "v"},
                    "when": when,
                }
            )
        )
        doc_id = doc.get_id()
        ops = parse_ops(
            [
                {"op": "splice", "path": ["t"], "index": 5, "text": " world"},
                {"op": "increment", "path": ["c"], "by": -3},
                {"op": "insert", "path": ["l", 1], "index": 2, "value": 4},
                {"op": "set", "path": ["l", 0], "value": {"$text": "x"}},
                {"op": "delete", "path": ["m", "k"]},
                {"op": "set", "path": ["m", "n"], "value": None},
            ],
            max_ops=100,
        )
        changed = await db.change_doc(doc_id, lambda d: apply_ops(d, ops))
        assert changed.get_data() == {
            "t": "hello world",
            "c": -2,
            "l": ["x", [2, 3, 4]],
            "m": {"n": None},
            "when": when,
        }
        before = changed.get_last_modified()

        first = {"op": "set", "path": ["m", "n"], "value": 1}  # written, then rolled back
        failing: list[list[dict[str, Any]]] = [
            [first, {"op": "set", "path": ["x", "y"], "value": 1}],
            [first, {"op": "delete", "path": ["l", 9]}],
            [first, {"op": "set", "path": ["l", "a"], "value": 1}],
            [first, {"op": "set", "path": ["m", 0], "value": 1}],
            [first, {"op": "insert", "path": ["l"], "index": 9, "value": 1}],
            [first, {"op": "splice", "path": ["c"], "index": 0}],
            [first, {"op": "splice", "path": ["t"], "index": 10, "delete": 5}],
            [first, {"op": "increment", "path": ["t"]}],
            [first, {"op": "set", "path": ["t", "x"], "value": 1}],
            [
                {"op": "increment", "path": ["c"], "by": 2**63 - 1},
                {"op": "increment", "path": ["c"], "by": 2**63 - 1},  # overflows int64
            ],
        ]
        for raw in failing:
            bad = parse_ops(raw, max_ops=100)
            with pytest.raises(InvalidParamsError, match=r"ops\[1\]"):
                await db.change_doc(doc_id, lambda d, bad=bad: apply_ops(d, bad))
        after = await db.get_document(doc_id)
        assert after.get_data() == changed.get_data()
        assert after.get_last_modified() == before
    finally:
        await created.tenant.close()
