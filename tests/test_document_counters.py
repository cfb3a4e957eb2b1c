"""Native counters: the change re-encoding (columns), the patch reader (counters), and the
in-change bookkeeping of counters the binding cannot read."""

from __future__ import annotations

from typing import Any

import pytest
from automerge.core import ROOT, Document, ObjType, ScalarType

from mindood.document import AutomergeDoc, Counter, CounterProxy, DocumentError, MapProxy, Text
from mindood.document.columns import (
    COLUMN_ACTION,
    COLUMN_VALUE_META,
    ChangeLayout,
    changes_hold_counters,
    holds_counters,
    iter_chunks,
    mark_counters,
    rle_decode,
    rle_encode,
)
from mindood.document.counters import read_counters
from mindood.errors import ChangeFormatError

A = bytes.fromhex("c1" * 8)
B = bytes.fromhex("d2" * 8)


def _doc(**fields: Any) -> AutomergeDoc:
    doc = AutomergeDoc.new(A)
    doc.change(lambda m: m.update(fields))
    return doc


# ----- columns ------------------------------------------------------------------------------------


def test_rle_encoding_is_canonical_on_real_columns() -> None:
    """Re-encoding must give Automerge's own bytes, or hashes change after save/load."""
    doc = _doc(
        a=1, b=[1, 2, 2, 2, "x", None, 1.5, b"x", True], t=Text("abc"), m={"n": None, "o": 3}
    )
    doc.change(lambda m: (m.pop("a"), m["b"].insert(2, 9), m.update(c=2)))
    for change in doc.changes_since():
        ((_, body),) = list(iter_chunks(change.bytes))
        layout = ChangeLayout(body)
        assert layout.chunk() == change.bytes
        for spec in (COLUMN_ACTION, COLUMN_VALUE_META):
            column = layout.column(spec)
            assert rle_encode(rle_decode(column)) == column
    assert rle_encode([None, None, 3, 3, 4, 5, 5, None]) == bytes([0, 2, 2, 3, 0x7F, 4, 2, 5, 0, 1])


def test_mark_counters_refuses_ops_that_do_not_put_an_int() -> None:
    src = Document(A)
    with src.transaction() as tx:
        tx.put(ROOT, "s", ScalarType.Str, "x")
        tx.put_object(ROOT, "l", ObjType.List)
    (change,) = src.get_changes([])
    for op in (1, 2, 3):  # a Str put, a make-list, no op at all
        with pytest.raises(ChangeFormatError):
            mark_counters(bytes(change.raw_bytes), [op])


def test_holds_counters_sees_deflated_document_columns() -> None:
    """Saves deflate columns past 256 bytes (spec 0x5e for the value metadata then)."""
    doc = _doc(**{f"k{i}": (i * 1.5 if i % 3 else f"s{i}") for i in range(400)})
    assert not holds_counters(doc.save())
    doc.change(lambda m: m.update(c=Counter(1)))
    saved = doc.save()
    assert holds_counters(saved)
    assert AutomergeDoc.load(saved, B).to_python()["c"] == Counter(1)


@pytest.mark.parametrize(
    "fields",
    [
        {"title": "doc 1234"},  # eight characters: a run of 8 (0x08) in the column
        {"l": [7] * 8, "m": list(range(8)), "t": "x" * 24},  # repeat and literal runs of 8
        {"l": list(range(40)), "s": "long text " * 30, "f": 2.5, "b": b"12345678"},
        {"c": Counter(8)},
        {"l": [1, 2, Counter(3)] * 3, "t": "doc 1234"},
        # columns past 127 bytes: sizes of two bytes, read by the general column loop
        {"l": list(range(300)), "m": {"k": "x" * 200}},
        {"l": [i * 1000 for i in range(200)], "c": Counter(-3)},
    ],
)
def test_holds_counters_agrees_with_decoding_the_column(fields: dict[str, Any]) -> None:
    """The quick byte test may only rule columns out; any doubt is decided by the runs."""
    (change,) = _doc(**fields).changes_since()
    ((_, body),) = list(iter_chunks(change.bytes))
    values = rle_decode(ChangeLayout(body).column(COLUMN_VALUE_META))
    expected = any(v is not None and v & 0x0F == 8 for v in values)
    assert holds_counters(change.bytes) is expected
    assert changes_hold_counters([change.bytes]) is expected
    assert expected is any(isinstance(v, Counter) for v in _flatten(fields))


def test_changes_hold_counters_agrees_with_the_joined_chunks() -> None:
    """Change by change (the cold read's path), compressed changes and bad framing included."""
    doc = _doc(t="x" * 400, n=1)  # a change long enough for Automerge to compress
    doc.change(lambda m: m.update(n=2))
    plain = [c.bytes for c in doc.changes_since()]
    compressed = [bytes(c.bytes) for c in doc._doc.get_changes([])]
    assert compressed[0][8] == 2 and plain[0][8] == 1
    for chunks in (plain, compressed, plain[1:]):
        assert changes_hold_counters(chunks) is holds_counters(b"".join(chunks)) is False
    doc.change(lambda m: m.update(c=Counter(2)))
    plain = [c.bytes for c in doc.changes_since()]
    assert changes_hold_counters(plain) is holds_counters(b"".join(plain)) is True
    assert changes_hold_counters(plain[2:]) is True and changes_hold_counters(plain[:2]) is False
    for bad in (plain[0] + b"\x00", plain[0][:-1], b"\x85o"):
        with pytest.raises(ChangeFormatError):
            holds_counters(bad)
        with pytest.raises(ChangeFormatError):
            changes_hold_counters([bad])


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    if isinstance(value, list):
        return [x for v in value for x in _flatten(v)]
    return [value]


# ----- reading from patches -----------------------------------------------------------------------


def test_counters_are_found_behind_escaped_keys_and_deep_in_long_lists() -> None:
    """Keys come back Debug-escaped; long lists as B-trees (child, element, child, ...)."""
    key = 'k\n"\\é\x01😀 \t'
    values = [Counter(i) if i % 37 == 0 else i for i in range(300)]
    doc = _doc(**{key: Counter(-4), "l": values, "f": float("inf")})
    data = doc.to_python()
    assert data[key] == -4 and isinstance(data[key], Counter)
    assert data["l"] == values
    assert [i for i, v in enumerate(data["l"]) if isinstance(v, Counter)] == list(range(0, 300, 37))
    index = read_counters(doc._doc, doc.heads())
    assert index.get(ROOT, key) == (-4, False)


def test_a_document_without_counters_skips_the_patch_reader() -> None:
    doc = _doc(a=1)
    assert doc._counter_index() is None
    assert AutomergeDoc.load(doc.save(), B)._counter_index() is None
    doc.change(lambda m: m.update(c=Counter(0)))
    assert doc._counter_index() is not None
    other = AutomergeDoc.new(B)
    other.apply_changes([c.bytes for c in doc.changes_since()])
    assert other._counter_index() is not None


# ----- inside a change ----------------------------------------------------------------------------


def test_a_counter_created_and_incremented_in_one_change_is_one_counter() -> None:
    doc = AutomergeDoc.new(A)

    def fn(m: MapProxy) -> None:
        m["c"] = Counter(1)
        m["c"].increment(4)
        m["c"] += 2
        assert isinstance(m["c"], CounterProxy) and m["c"] == 7
        m["l"] = [Counter(0)]
        m["l"][0].increment(3)

    change = doc.change(fn)
    assert change is not None and doc.heads_hex() == [change.hash]
    assert doc.to_python() == {"c": 7, "l": [3]}
    doc.change(lambda m: m["c"].increment(1))
    loaded = AutomergeDoc.load(doc.save(), B)
    assert loaded.to_python() == {"c": 8, "l": [3]}
    assert isinstance(loaded.to_python()["c"], Counter)


def test_list_edits_move_counters_with_their_elements() -> None:
    doc = _doc(l=[Counter(1), "a", Counter(2), "b", Counter(3)])

    def fn(m: MapProxy) -> None:
        items = m["l"]
        del items[0]
        items.insert(0, "new")
        items.insert(1, Counter(9))
        del items[2:4]  # "a", Counter(2)
        assert items.to_python() == ["new", 9, "b", 3]
        items[3].increment(10)
        items[0] = Counter(5)
        assert [type(v) for v in items] == [CounterProxy, CounterProxy, Text, CounterProxy]
        assert items.pop(1) == Counter(9)

    doc.change(fn)
    data = doc.to_python()["l"]
    assert data == [5, "b", 13] and [type(v) for v in data] == [Counter, Text, Counter]


def test_overwriting_and_deleting_counters() -> None:
    doc = _doc(a=Counter(1), b=Counter(2), m={"c": Counter(3)})

    def fn(m: MapProxy) -> None:
        old = m["a"]
        m["a"] = 10  # a plain int now
        with pytest.raises(DocumentError):
            old.increment(1)
        del m["b"]
        assert m.pop("m") == {"c": Counter(3)}

    doc.change(fn)
    assert doc.to_python() == {"a": 10} and type(doc.to_python()["a"]) is int


def test_a_counter_and_a_concurrent_int_converge_on_one_winner() -> None:
    one = _doc(x=0)
    two = one.fork(actor=B)
    one.change(lambda m: m.update(x=Counter(5)))
    two.change(lambda m: m.update(x=7))
    one.merge(two)
    two.merge(one)
    assert one.to_python() == two.to_python()
    assert type(one.to_python()["x"]) is type(two.to_python()["x"])


def test_the_carried_forward_index_matches_a_fresh_read() -> None:
    """After local changes (session bookkeeping) and remote ones (patches of the new changes
    only), the document reads what a freshly loaded copy reads."""
    one = _doc(l=["a", Counter(1), "b"], c=Counter(0), m={"k": Counter(2)})
    two = one.fork(actor=B)
    one.change(lambda m: (m["l"].insert(0, "x"), m["l"][2].increment(5), m["c"].increment(1)))
    two.change(lambda m: (m["l"].insert(3, Counter(7)), m["m"].update(k=3), m.update(d=Counter(4))))
    two.change(lambda m: (m["l"].pop(0), m["c"].increment(10)))
    for _ in range(2):
        one.apply_changes([c.bytes for c in two.changes_since()])
        two.merge(one)
        one.change(lambda m: (m["l"][-1].increment(1), m["l"].insert(1, Counter(0))))
    for doc in (one, two):
        fresh = AutomergeDoc.load(doc.save(), A).to_python()
        assert doc.to_python() == fresh
        assert [type(v) for v in doc.to_python()["l"]] == [type(v) for v in fresh["l"]]
    assert one.heads() != two.heads()
    two.merge(one)
    assert one.to_python() == two.to_python()


def test_remote_overwrites_and_deletes_of_counters_under_odd_keys() -> None:
    """The patch head is matched exactly, escaped keys in the path included."""
    odd = 'we"ird\\ ], action: PutMap { key: "'
    one = _doc(**{odd: {odd: Counter(1), "c": Counter(2), "d": Counter(3)}})
    assert one.to_python()[odd] == {odd: 1, "c": 2, "d": 3}
    two = one.fork(actor=B)
    two.change(lambda m: (m[odd].update({odd: 5}), m[odd].pop("c"), m[odd]["d"].increment(1)))
    one.apply_changes([c.bytes for c in two.changes_since()])
    data = one.to_python()[odd]
    assert data == {odd: 5, "d": 4}
    assert type(data[odd]) is int and type(data["d"]) is Counter


def test_counters_are_found_after_long_histories() -> None:
    """Seq and start op past 127 take two LEB128 bytes in the header the scan skips."""
    doc = _doc(n=0)
    for i in range(150):
        doc.change(lambda m, i=i: m.update({f"k{i}": i}))
    doc.change(lambda m: m.update(c=Counter(1)))
    changes = [c.bytes for c in doc.changes_since()]
    assert changes_hold_counters(changes[-2:-1]) is False
    assert changes_hold_counters(changes[-1:]) is holds_counters(changes[-1]) is True
    hashes = [c.hash for c in doc.changes_since()]
    loaded = AutomergeDoc.from_ordered_changes(changes, B, hashes).to_python()
    assert loaded["c"] == Counter(1) and isinstance(loaded["c"], Counter)
