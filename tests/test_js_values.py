"""Values as JavaScript Automerge 3.4.0 writes them (tests/data/interop/js-values.json, made by
gen-js-values.mjs there): mindood reads every type exactly, increments JavaScript's counters, and
writes counters and the other types as JavaScript does, byte for byte."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from mindood.document import AutomergeDoc, Counter, MapProxy, Text
from mindood.document.columns import holds_counters

VECTORS = json.loads((Path(__file__).parent / "data/interop/js-values.json").read_text())
A = bytes.fromhex("a1" * 8)
B = bytes.fromhex("b2" * 8)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SCALARS: dict[str, Any] = {
    "counter": Counter,
    "text": Text,
    "bytes": base64.b64decode,
    "timestamp_ms": lambda ms: (
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    ),
    "int": int,
    "bigint": int,  # how JavaScript reads a Uint, and an Int of 2**53 - 1 (measured)
    "float": float,
}


def _expected(tagged: Any) -> Any:
    """The Python value a tagged JSON value of the generator stands for."""
    if tagged is None or isinstance(tagged, bool):
        return tagged
    if isinstance(tagged, list):
        return [_expected(item) for item in tagged]
    if len(tagged) == 1:
        ((tag, raw),) = tagged.items()
        if tag in _SCALARS:
            return _SCALARS[tag](raw)
    return {key: _expected(value) for key, value in tagged.items()}


def _assert_exactly(got: Any, want: Any, where: str = "") -> None:
    """Equal, and of the same type all the way down (``Counter(3) == 3`` would hide a bug)."""
    assert type(got) is type(want), f"{where}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), where
        for key in want:
            _assert_exactly(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for index, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_exactly(g, w, f"{where}[{index}]")
    else:
        assert got == want, where
        if isinstance(want, dt.datetime):
            assert got.utcoffset() == dt.timedelta(0), where


def _chunks(case: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(c) for c in case["changes"]]


@pytest.mark.parametrize("name", ["values", "concurrent"])
def test_a_javascript_save_and_its_changes_read_exactly(name: str) -> None:
    case = VECTORS[name]
    want = _expected(case["expected"])
    saved = AutomergeDoc.load(base64.b64decode(case["save"]), A)
    _assert_exactly(saved.to_python(), want)
    assert saved.heads_hex() == case["heads"]
    built = AutomergeDoc.from_changes(list(reversed(_chunks(case))), A, case["hashes"])
    _assert_exactly(built.to_python(), want)
    assert sorted(c.hash for c in built.changes_since()) == sorted(case["hashes"])
    assert sorted(c.bytes for c in built.changes_since()) == sorted(_chunks(case))


def test_concurrent_javascript_increments_add_up() -> None:
    """Two actors incremented one counter concurrently (10 + 5 + 1 - 2)."""
    doc = AutomergeDoc.load(base64.b64decode(VECTORS["concurrent"]["save"]), A)
    assert len(doc.heads()) == 2
    _assert_exactly(doc.to_python(), {"hits": Counter(14)})


def test_javascript_counters_at_past_heads_read_as_they_were() -> None:
    """The binding's own keys/length at past heads drop incremented counters; these do not."""
    case = VECTORS["values"]
    doc = AutomergeDoc.load(base64.b64decode(case["save"]), A)
    before = _expected(case["expected_before_increment"])
    _assert_exactly(doc.to_python(case["heads_before_increment"]), before)
    _assert_exactly(doc.to_python(case["heads"]), _expected(case["expected"]))


def test_javascript_counters_increment_here_and_merge_with_other_increments() -> None:
    case = VECTORS["values"]
    mine = AutomergeDoc.load(base64.b64decode(case["save"]), A)
    other = mine.fork(actor=B)

    def bump(m: MapProxy) -> None:
        m["counter"].increment(3)
        m["list"][1].increment(-7)
        m["map"]["nested"]["counter"] += 1

    mine.change(bump)
    other.change(lambda m: m["counter"].increment(10))
    mine.merge(other)
    data = mine.to_python()
    _assert_exactly(data["counter"], Counter(7 + 3 + 10))
    _assert_exactly(data["list"][1], Counter(0))
    _assert_exactly(data["map"]["nested"]["counter"], Counter(101))
    reloaded = AutomergeDoc.load(mine.save(), B)
    assert reloaded.heads() == mine.heads()
    _assert_exactly(reloaded.to_python(), data)


def test_a_counter_in_a_list_keeps_its_place_while_the_list_changes() -> None:
    doc = AutomergeDoc.load(base64.b64decode(VECTORS["values"]["save"]), A)

    def edit(m: MapProxy) -> None:
        items = m["list"]
        items.insert(0, "first")
        del items[1]  # the 1 before the counter
        assert items[1] == Counter(7)
        items[1].increment(1)
        items.append(Counter(2))
        items[-1].increment(5)
        assert items.to_python()[1:2] == [Counter(8)] and items[-1] == 7

    doc.change(edit)
    got = doc.to_python()["list"]
    _assert_exactly(got[:2], [Text("first"), Counter(8)])
    _assert_exactly(got[-1], Counter(7))


@pytest.mark.parametrize("case", VECTORS["same_change"], ids=lambda c: c["name"])
def test_mindood_writes_the_change_javascript_writes(case: dict[str, Any]) -> None:
    """Same actor, same values, time 0: the very same change bytes and hash, counters included."""
    values = {key: _expected(value) for key, value in case["expected"].items()}
    doc = AutomergeDoc.new(bytes.fromhex("0e" * 8))
    change = doc.change(lambda m: m.update(values))
    assert change is not None
    assert change.bytes == base64.b64decode(case["change"])
    assert change.hash == case["hash"]
    _assert_exactly(doc.to_python(), values)


def test_what_mindood_writes_reloads_with_the_same_types() -> None:
    """Every type of the JavaScript document, written here, saved and loaded again."""
    want = _expected(VECTORS["values"]["expected"])
    doc = AutomergeDoc.new(A)
    first = doc.change(lambda m: m.update(want))
    assert first is not None and holds_counters(first.bytes)
    _assert_exactly(doc.to_python(), want)
    for loaded in (
        AutomergeDoc.load(doc.save(), B),
        AutomergeDoc.from_changes([c.bytes for c in doc.changes_since()], B),
    ):
        assert loaded.heads() == doc.heads()
        _assert_exactly(loaded.to_python(), want)
    assert holds_counters(doc.save())
