"""Proxies: value round trips, the mapping/sequence protocols, text, counters, convergence."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator, MutableMapping, MutableSequence
from functools import partial
from typing import Any

import pytest
from automerge.core import ROOT, ObjType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mindood.document import (
    AutomergeDoc,
    Counter,
    CounterProxy,
    ListProxy,
    MapProxy,
    Text,
    TextProxy,
    UnsupportedValueError,
    walk,
)
from mindood.document.values import TEXT_MAX_CHARS

A = bytes.fromhex("aa" * 8)
B = bytes.fromhex("bb" * 8)
UTC = dt.UTC


def _doc(**fields: Any) -> AutomergeDoc:
    doc = AutomergeDoc.new(A)
    if fields:
        doc.change(lambda m: m.update(fields))
    return doc


def _round_trip(value: Any) -> Any:
    doc = _doc(v=value)
    return AutomergeDoc.load(doc.save(), B).to_python()["v"]


# ----- scalar and nested values ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        0,
        1,
        -7,
        2**63 - 1,
        -(2**63),
        1.5,
        -0.25,
        1.0,
        "",
        "héllo 😀",
        None,
        b"",
        b"\x00\xff",
    ],
)
def test_scalars_round_trip_with_their_type(value: Any) -> None:
    """A string comes back as ``Text`` (a ``str``): it is stored as JavaScript stores one."""
    back = _round_trip(value)
    assert back == value
    assert type(back) is (Text if isinstance(value, str) else type(value))


def test_bool_stays_bool_and_int_stays_int() -> None:
    data = {"t": True, "f": False, "one": 1, "zero": 0}
    back = AutomergeDoc.load(_doc(**data).save(), B).to_python()
    assert back == data
    assert back["t"] is True and back["f"] is False
    assert type(back["one"]) is int and type(back["zero"]) is int


def test_bytes_like_values_come_back_as_bytes() -> None:
    assert _round_trip(bytearray(b"ab")) == b"ab"
    assert _round_trip(memoryview(b"cd")) == b"cd"


def test_timestamps_are_aware_utc_with_millisecond_precision() -> None:
    aware = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert _round_trip(aware) == aware.replace(microsecond=123000)
    assert _round_trip(aware).tzinfo is UTC
    naive = dt.datetime(1969, 12, 31, 23, 59, 59, 999999)
    assert _round_trip(naive) == naive.replace(microsecond=999000, tzinfo=UTC)


def test_timestamps_do_not_depend_on_the_local_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The binding reads timestamps as naive local time; an ambiguous DST hour must survive."""
    second_130 = dt.datetime(2023, 11, 5, 6, 30, tzinfo=UTC)  # 01:30 EST, after the fall-back
    first_130 = dt.datetime(2023, 11, 5, 5, 30, tzinfo=UTC)  # 01:30 EDT
    try:
        monkeypatch.setenv("TZ", "America/New_York")
        time.tzset()
        assert _round_trip([first_130, second_130, dt.datetime(2024, 1, 1)]) == [
            first_130,
            second_130,
            dt.datetime(2024, 1, 1, tzinfo=UTC),
        ]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_nested_maps_and_lists_round_trip() -> None:
    value = {
        "a": {"b": {"c": [1, [2, [3, {"d": None}]], "x"]}},
        "empty_map": {},
        "empty_list": [],
        "tuple": (1, 2),
    }
    back = _round_trip(value)
    assert back == {**value, "tuple": [1, 2]}


@pytest.mark.parametrize("bad", [{1, 2}, object(), 2**63, -(2**63) - 1, dt.date(2024, 1, 1)])
def test_unsupported_values_are_typed_errors(bad: Any) -> None:
    doc = _doc()
    with pytest.raises(UnsupportedValueError):
        doc.change(lambda m: m.__setitem__("x", bad))
    with pytest.raises(TypeError):  # UnsupportedValueError is also a TypeError
        doc.change(lambda m: m.__setitem__("x", [bad]))
    assert doc.heads() == []


def test_bad_keys_and_self_containing_values_are_rejected() -> None:
    doc = _doc()
    loop: list[Any] = []
    loop.append(loop)
    bads: list[Any] = [{1: "x"}, {"": 1}, loop]
    for bad in bads:

        def store(m: MapProxy, bad: Any = bad) -> None:
            m["x"] = bad

        with pytest.raises(UnsupportedValueError):
            doc.change(store)
    with pytest.raises(UnsupportedValueError):
        doc.change(lambda m: m.__setitem__("", 1))


def test_a_caught_write_error_leaves_nothing_half_written() -> None:
    doc = _doc()

    def fn(m: MapProxy) -> None:
        with contextlib.suppress(UnsupportedValueError):
            m["x"] = {"a": 1, "b": [1, object()]}
        m["y"] = 1

    doc.change(fn)
    assert doc.to_python() == {"y": 1}


# ----- MapProxy ----------------------------------------------------------------------------------


def test_map_proxy_is_a_mutable_mapping() -> None:
    doc = _doc(a=1, b={"c": 2}, z=None)
    seen: dict[str, Any] = {}

    def fn(m: MapProxy) -> None:
        assert isinstance(m, MutableMapping)
        assert len(m) == 3 and sorted(m) == ["a", "b", "z"]
        assert "a" in m and "q" not in m and 5 not in m  # type: ignore[comparison-overlap]
        assert m["a"] == 1 and m.get("q", "dflt") == "dflt" and m["z"] is None
        assert isinstance(m["b"], MapProxy) and m["b"] == {"c": 2}
        assert dict(m.items())["a"] == 1 and list(m.keys()) == ["a", "b", "z"]
        with pytest.raises(KeyError):
            _ = m["q"]
        with pytest.raises(KeyError):
            del m["q"]
        seen["popped"] = m.pop("b")
        seen["default"] = m.pop("q", 7)
        assert m.setdefault("s", [1]) == [1]
        assert m.setdefault("a", 99) == 1
        m.update({"u": 1}, v=2)
        m["b2"] = {"deep": {}}
        m["b2"]["deep"]["er"] = [1]
        m["b2"]["deep"]["er"].append(2)
        del m["z"]
        assert m == {"a": 1, "s": [1], "u": 1, "v": 2, "b2": {"deep": {"er": [1, 2]}}}

    doc.change(fn)
    assert seen == {"popped": {"c": 2}, "default": 7}
    assert type(seen["popped"]) is dict
    assert doc.to_python() == {"a": 1, "s": [1], "u": 1, "v": 2, "b2": {"deep": {"er": [1, 2]}}}


def test_popitem_and_clear() -> None:
    doc = _doc(a=1, b=2)
    doc.change(lambda m: m.popitem())
    assert len(doc.to_python()) == 1
    doc.change(lambda m: m.clear())
    assert doc.to_python() == {}


def test_assigning_a_proxy_copies_it_and_reassigning_in_place_is_a_no_op() -> None:
    doc = _doc(orig={"x": [1, 2]}, t=Text("abc"), c=Counter(3))

    def copy(m: MapProxy) -> None:
        m["copy"] = m["orig"]
        m["copy"]["x"].append(3)
        m["t2"] = m["t"]
        m["c2"] = m["c"]

    doc.change(copy)
    data = doc.to_python()
    assert data["orig"] == {"x": [1, 2]} and data["copy"] == {"x": [1, 2, 3]}
    assert isinstance(data["t2"], Text) and data["t2"] == "abc"
    assert isinstance(data["c2"], Counter) and data["c2"] == 3

    def same_place(m: MapProxy) -> None:
        m["orig"] = m["orig"]
        m["orig"]["x"] = m["orig"]["x"]
        m["t"] = m["t"]

    assert doc.change(same_place) is None


# ----- ListProxy ---------------------------------------------------------------------------------


def test_list_proxy_is_a_mutable_sequence() -> None:
    doc = _doc(l=[0, 1, 2, 3, 4])

    def fn(m: MapProxy) -> None:
        items = m["l"]
        assert isinstance(items, ListProxy) and isinstance(items, MutableSequence)
        assert len(items) == 5 and items[0] == 0 and items[-1] == 4 and items[-5] == 0
        assert items[1:3] == [1, 2] and items[::-2] == [4, 2, 0] and items[10:] == []
        assert list(items) == [0, 1, 2, 3, 4] and 3 in items and items.index(3) == 3
        for bad in (5, -6):
            with pytest.raises(IndexError):
                _ = items[bad]
        with pytest.raises(TypeError):
            _ = items["0"]  # type: ignore[call-overload]
        items[0] = "zero"
        items[-1] = {"four": 4}
        items.insert(1, "ins")
        items.insert(-100, "first")
        items.insert(100, "last")
        items.append([9])
        items.extend([10, 11])
        del items[2]
        assert items.pop() == 11
        assert items.pop(0) == "first"
        items.remove(2)
        assert items.count(10) == 1
        assert items == ["zero", 1, 3, {"four": 4}, "last", [9], 10]

    doc.change(fn)
    assert doc.to_python()["l"] == ["zero", 1, 3, {"four": 4}, "last", [9], 10]


def test_list_slice_assignment_and_deletion() -> None:
    doc = _doc(l=list(range(8)))

    def fn(m: MapProxy) -> None:
        items = m["l"]
        items[1:3] = ["a", "b", "c"]
        del items[::3]
        items[::2] = [True, False, None]
        with pytest.raises(ValueError):
            items[::2] = [1]
        items.reverse()

    doc.change(fn)
    expected: list[Any] = list(range(8))
    expected[1:3] = ["a", "b", "c"]
    del expected[::3]
    expected[::2] = [True, False, None]
    expected.reverse()
    assert doc.to_python()["l"] == expected


def test_popping_a_nested_object_returns_a_plain_copy() -> None:
    doc = _doc(l=[{"a": [1]}, Text("t"), Counter(2)])
    got: list[Any] = []
    doc.change(lambda m: got.extend([m["l"].pop(0), m["l"].pop(0), m["l"].pop(0)]))
    assert got == [{"a": [1]}, "t", 2]
    assert [type(v) for v in got] == [dict, Text, Counter]
    assert doc.to_python() == {"l": []}


# ----- Text --------------------------------------------------------------------------------------


def test_text_is_created_read_and_spliced() -> None:
    doc = _doc(t=Text("hello world"), plain="not text")
    assert isinstance(doc.to_python()["t"], Text)
    assert doc.to_python()["t"] == "hello world"

    def fn(m: MapProxy) -> None:
        t = m.text("t")
        assert isinstance(t, TextProxy) and isinstance(m["t"], str)
        assert isinstance(m.text("plain"), TextProxy)  # every string is a text, as in JavaScript
        assert str(t) == "hello world" and len(t) == 11 and t == "hello world" and t[0:5] == "hello"
        t.splice(0, 5, "HELLO")
        t.insert(5, ",")
        t.delete(6)
        t.append("!")
        with pytest.raises(IndexError):
            t.splice(20, 0, "x")
        with pytest.raises(IndexError):
            t.delete(10, 5)
        assert t == "HELLO,world!"
        m["t"] += "?"  # a plain string write: a new text with the whole value
        assert m["t"] == "HELLO,world!?"

    doc.change(fn)
    assert doc.to_python()["t"] == "HELLO,world!?"


def test_text_indexes_are_code_points() -> None:
    doc = _doc(t=Text("a😀b"))
    doc.change(lambda m: m.text("t").delete(1))
    assert doc.to_python()["t"] == "ab"
    doc.change(lambda m: m.text("t").insert(1, "é😀"))
    assert doc.to_python()["t"] == "aé😀b"


def test_concurrent_text_edits_keep_both_sides() -> None:
    one = _doc(t=Text("The fox"))
    two = AutomergeDoc.from_changes([c.bytes for c in one.changes_since()], B)
    one.change(lambda m: m.text("t").insert(4, "quick "))
    two.change(lambda m: m.text("t").append(" jumps"))
    _exchange(one, two)
    assert one.to_python()["t"] == two.to_python()["t"] == "The quick fox jumps"


# ----- Counter -----------------------------------------------------------------------------------


def test_counter_reads_as_an_int_like_value() -> None:
    doc = _doc(c=Counter(5), l=[Counter(-1)])
    data = doc.to_python()
    assert data == {"c": 5, "l": [-1]}
    assert (
        isinstance(data["c"], Counter) and data["c"].value == 5 and repr(data["c"]) == "Counter(5)"
    )

    def fn(m: MapProxy) -> None:
        c = m["c"]
        assert isinstance(c, CounterProxy) and c.value == 5 and c == 5 and int(c) == 5
        c.increment(3)
        c.increment(-10)
        m["c"] += 4
        m["c"] -= 1
        m["l"][0].increment()
        with pytest.raises(UnsupportedValueError):
            c.increment(1.5)  # type: ignore[arg-type]
        with pytest.raises(UnsupportedValueError):
            c.increment(True)

    doc.change(fn)
    assert doc.to_python() == {"c": 1, "l": [0]}


def test_concurrent_increments_from_two_actors_merge_to_the_sum() -> None:
    one = _doc(c=Counter(10))
    two = one.fork(actor=B)
    one.change(lambda m: m["c"].increment(5))
    one.change(lambda m: m["c"].increment(1))
    two.change(lambda m: m["c"].increment(-3))
    two.change(lambda m: m["c"].increment(100))
    _exchange(one, two)
    assert one.to_python()["c"] == two.to_python()["c"] == 10 + 5 + 1 - 3 + 100
    one.change(lambda m: m["c"].increment(1))
    two.apply_changes([c.bytes for c in one.changes_since(two.heads())])
    assert two.to_python()["c"] == 114


def test_a_user_map_with_a_counter_like_key_stays_a_map() -> None:
    odd = {"$counter": 1, "note": "text"}
    assert _round_trip(odd) == odd
    assert _round_trip({"$counter": 2, "aa": 1}) == {"$counter": 2, "aa": 1}
    assert _round_trip({"$counter": 1, "x": 5}) == {"$counter": 1, "x": 5}


# ----- convergence property ----------------------------------------------------------------------


def _exchange(one: AutomergeDoc, two: AutomergeDoc) -> None:
    two.apply_changes([c.bytes for c in one.changes_since()])
    one.apply_changes([c.bytes for c in two.changes_since()])


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=4),
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.sampled_from("xyz"), st.integers(0, 9), max_size=2),
)
_ops = st.one_of(
    st.tuples(st.just("set"), st.sampled_from("pqr"), _values),
    st.tuples(st.just("del"), st.sampled_from("pqr"), st.none()),
    st.tuples(st.just("lins"), st.integers(0, 20), _values),
    st.tuples(st.just("ldel"), st.integers(0, 20), st.none()),
    st.tuples(st.just("lset"), st.integers(0, 20), _values),
    st.tuples(st.just("tins"), st.integers(0, 20), st.text(min_size=1, max_size=3)),
    st.tuples(st.just("tdel"), st.integers(0, 20), st.integers(1, 3)),
    st.tuples(st.just("inc"), st.just(""), st.integers(-5, 5)),
    st.tuples(st.just("sync"), st.just(""), st.none()),
)


def _apply(m: MapProxy, op: str, where: Any, arg: Any) -> None:
    items, text = m["l"], m.text("t")
    if op == "set":
        m[where] = arg
    elif op == "del" and where in m:
        del m[where]
    elif op == "lins":
        items.insert(where % (len(items) + 1), arg)
    elif op in ("ldel", "lset") and len(items):
        if op == "ldel":
            del items[where % len(items)]
        else:
            items[where % len(items)] = arg
    elif op == "tins":
        text.insert(where % (len(text) + 1), arg)
    elif op == "tdel" and len(text):
        start = where % len(text)
        text.delete(start, min(arg, len(text) - start))
    elif op == "inc":
        m["c"].increment(arg)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 1), _ops), max_size=25))
def test_replicas_converge_whatever_the_operations(script: list[tuple[int, Any]]) -> None:
    first = _doc(l=[], t=Text(""), c=Counter(0))
    replicas = [first, AutomergeDoc.from_changes([c.bytes for c in first.changes_since()], B)]
    for who, (op, where, arg) in script:
        if op == "sync":
            _exchange(*replicas)
        else:
            replicas[who].change(partial(_apply, op=op, where=where, arg=arg))
    _exchange(*replicas)
    one, two = replicas
    assert one.heads() == two.heads()
    assert one.to_python() == two.to_python()
    assert AutomergeDoc.load(one.save(), A).to_python() == one.to_python()


def test_iterating_a_list_proxy_yields_live_items() -> None:
    doc = _doc(l=[{"n": 1}, {"n": 2}])

    def fn(m: MapProxy) -> None:
        it: Iterator[Any] = iter(m["l"])
        for item in it:
            item["n"] += 10

    doc.change(fn)
    assert doc.to_python()["l"] == [{"n": 11}, {"n": 12}]


def test_a_string_past_the_text_bound_is_stored_as_a_scalar_and_reads_back_equal() -> None:
    """Per-character Text inserts would make a huge string cost minutes (values.TEXT_MAX_CHARS)."""
    long = "x" * (TEXT_MAX_CHARS + 1)
    doc = _doc(long=long, short="y" * TEXT_MAX_CHARS)
    kinds = {key: walk.get(doc._core(), ROOT, key, None, None) for key in ("long", "short")}
    assert kinds["short"] is not None and kinds["short"][0] == ObjType.Text
    assert kinds["long"] is not None and not isinstance(kinds["long"][0], ObjType)
    assert doc.to_python() == {"long": long, "short": "y" * TEXT_MAX_CHARS}


def _touched(fields: dict[str, Any], edit: Any) -> set[str]:
    """The root fields of ``fields`` a change running ``edit`` says may have changed."""
    doc = _doc(**fields)
    pending = doc.begin_change()
    edit(pending.root)
    pending.commit()
    return {key for key in fields if pending.may_have_changed(key)}


_FIELDS = {"n": 1, "title": "t", "meta": {"a": [1]}, "tags": ["x"], "count": Counter(1)}


@pytest.mark.parametrize(
    ("edit", "touched"),
    [
        (lambda r: r.__setitem__("n", 2), {"n"}),
        (lambda r: r.update(n=2, title="u"), {"n", "title"}),
        (lambda r: r.__setitem__("fresh", {"deep": ["a", {"b": "c"}]}), set()),
        (lambda r: r.__delitem__("title"), {"title"}),
        (lambda r: r["count"].increment(2), {"count"}),
        # Below the root, in an object that existed before: anything may have changed.
        (lambda r: r["tags"].append("y"), set(_FIELDS)),
        (lambda r: r["meta"]["a"].__setitem__(0, 5), set(_FIELDS)),
        (lambda r: r.text("title").insert(0, "x"), set(_FIELDS)),
        (lambda r: r["meta"].pop("a"), set(_FIELDS)),
    ],
)
def test_a_change_knows_which_root_fields_it_left_alone(edit: Any, touched: set[str]) -> None:
    assert _touched(_FIELDS, edit) == touched


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ops.filter(lambda op: op[0] != "sync"), min_size=1, max_size=6))
def test_fields_a_change_left_alone_read_as_before(script: list[Any]) -> None:
    doc = _doc(l=[], t=Text("ab"), c=Counter(0), m={"k": [1]}, p=1)
    before = doc.to_python()
    pending = doc.begin_change()
    for op, where, arg in script:
        _apply(pending.root, op, where, arg)
    pending.commit()
    after = doc.to_python()
    for key in before:
        if not pending.may_have_changed(key):
            assert after.get(key) == before[key]
