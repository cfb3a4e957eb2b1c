"""The cold-read walk (``read_current``) against the general one (``read_object``).

``read_current`` reads a map's values in one ``values`` call and tells values apart by their
enum codes; ``read_object`` asks ``get`` key by key and compares enum members. Both must give
the same values of the same types, conflicts (the winner), nesting and deletions included.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from automerge.core import ROOT, Document, ObjType, ScalarType

from mindood.document import AutomergeDoc, MapProxy, Text
from mindood.document.walk import read_current, read_object

A = bytes.fromhex("a1" * 8)
B = bytes.fromhex("b2" * 8)
C = bytes.fromhex("03" * 8)


def _typed(value: Any) -> Any:
    """The value with the type of every part beside it, so ``==`` also compares types."""
    if isinstance(value, dict):
        return ("dict", {k: _typed(v) for k, v in value.items()})
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    return (type(value).__name__, value)


def _both(doc: Document) -> tuple[Any, Any]:
    general = read_object(doc, ObjType.Map, ROOT, None, None)
    return _typed(read_current(doc)), _typed(general)


def _fill(m: MapProxy) -> None:
    m.update(
        {
            "_attachments": [],
            "title": "doc 1",
            "n": 0,
            "big": 2**62,
            "neg": -5,
            "f": 1.5,
            "yes": True,
            "no": False,
            "none": None,
            "raw": b"\x00\x01",
            "when": dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.UTC),
            "nested": {"deep": {"list": [1, "two", {"three": [3.0, None]}], "t": Text("x")}},
            "rows": [{"a": 1}, {"b": [True, b"z"]}],
        }
    )


def test_the_cold_walk_reads_every_kind_of_value_as_the_general_walk() -> None:
    doc = AutomergeDoc.new(A)
    doc.change(_fill)
    doc.change(lambda m: (m.pop("neg"), m["nested"]["deep"].pop("t"), m.update(n=1)))
    fast, general = _both(doc._doc)
    assert fast == general
    assert fast[1]["title"] == ("Text", "doc 1") and fast[1]["yes"] == ("bool", True)
    assert "neg" not in fast[1]


def test_the_cold_walk_reads_the_winner_of_conflicting_writes() -> None:
    base = Document(A)
    with base.transaction() as tx:
        tx.put(ROOT, "x", ScalarType.Int, 1)
        tx.put(ROOT, "y", ScalarType.Int, 5)
        tx.put(ROOT, "z", ScalarType.Int, 7)
    b, c = base.fork(), base.fork()
    b.set_actor(B)
    c.set_actor(C)
    with base.transaction() as tx:
        tx.put(ROOT, "x", ScalarType.Str, "from a")
        tx.delete(ROOT, "z")
    with b.transaction() as tx:
        tx.put(ROOT, "x", ScalarType.Uint, 9)
        tx.put(ROOT, "y", ScalarType.F64, 6.5)
        tx.put_object(ROOT, "z", ObjType.Map)
    with c.transaction() as tx:
        made = tx.put_object(ROOT, "x", ObjType.List)
        tx.insert(made, 0, ScalarType.Null, None)
    base.merge(b)
    base.merge(c)
    fast, general = _both(base)
    assert fast == general
    assert set(fast[1]) == {"x", "y", "z"}
