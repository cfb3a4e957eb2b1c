"""AutomergeDoc: one change per ``change()``, verified ``apply_changes``, history, convergence."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from automerge.core import ROOT, Document, ScalarType

from mindood.document import (
    CUSTOM_ID_INITIAL_CHANGE_HASH,
    AutomergeDoc,
    ChangeApplyError,
    ChangeFormatError,
    Counter,
    DocumentError,
    DocumentLoadError,
    MapProxy,
    ProxyClosedError,
    Text,
    UnknownHeadsError,
    UnsupportedValueError,
    change_hash,
    custom_id_initial_change,
)
from mindood.document.columns import mark_counters

A = bytes.fromhex("aa" * 8)
B = bytes.fromhex("bb" * 8)


def _set(**fields: Any) -> Any:
    def fn(m: MapProxy) -> None:
        m.update(fields)

    return fn


def _doc_with_history() -> tuple[AutomergeDoc, list[bytes]]:
    """A doc with three changes; returns it and the chunks in causal order."""
    doc = AutomergeDoc.new(A)
    doc.change(_set(n=1))
    doc.change(_set(n=2, s="two"))
    doc.change(_set(n=3))
    return doc, [c.bytes for c in doc.changes_since()]


def _exchange(a: AutomergeDoc, b: AutomergeDoc) -> None:
    b.apply_changes([c.bytes for c in a.changes_since()])
    a.apply_changes([c.bytes for c in b.changes_since()])


# ----- the convergent custom-id first change ------------------------------------------------------


def test_custom_id_initial_change_matches_reference_hash() -> None:
    chunk = custom_id_initial_change()
    assert len(chunk) == 57
    assert hashlib.sha256(chunk[8:]).hexdigest() == CUSTOM_ID_INITIAL_CHANGE_HASH
    assert change_hash(chunk) == CUSTOM_ID_INITIAL_CHANGE_HASH
    doc = AutomergeDoc.from_changes([chunk], A)
    assert doc.to_python() == {"_attachments": []}
    assert doc.heads_hex() == [CUSTOM_ID_INITIAL_CHANGE_HASH]


def test_two_replicas_of_a_custom_id_doc_share_the_root() -> None:
    one = AutomergeDoc.from_changes([custom_id_initial_change()], A)
    two = AutomergeDoc.from_changes([custom_id_initial_change()], B)
    one.change(_set(title="from one"))
    two.change(_set(body="from two"))
    _exchange(one, two)
    assert one.to_python() == two.to_python()
    assert one.to_python()["_attachments"] == []


# ----- change() ----------------------------------------------------------------------------------


def test_quick_start_data_round_trips_exactly() -> None:
    doc = AutomergeDoc.new(A)
    doc.change(_set(title="Buy milk", done=False))
    loaded = AutomergeDoc.load(doc.save(), B)
    assert loaded.to_python() == {"title": "Buy milk", "done": False}
    assert loaded.to_python()["done"] is False


def test_each_change_call_yields_one_change_with_the_previous_heads_as_deps() -> None:
    doc = AutomergeDoc.new(A)
    first = doc.change(_set(a=1))
    assert first is not None
    assert first.deps == []
    assert first.seq == 1
    assert first.actor == A.hex()
    assert first.hash == hashlib.sha256(first.bytes[8:]).hexdigest() == change_hash(first.bytes)
    assert doc.heads_hex() == [first.hash]
    second = doc.change(_set(b=[1, 2, {"c": Text("x")}], d=Counter(2)))
    assert second is not None
    assert second.deps == [first.hash]
    assert second.seq == 2
    assert [c.hash for c in doc.changes_since()] == [first.hash, second.hash]
    assert [c.hash for c in doc.changes_since([first.hash])] == [second.hash]


def test_a_no_op_change_produces_nothing() -> None:
    doc = AutomergeDoc.new(A)
    doc.change(_set(a=1, b="x"))
    heads = doc.heads()
    assert doc.change(lambda m: None) is None
    assert doc.change(lambda m: m.get("a")) is None
    assert doc.change(_set(a=1, b="x")) is None  # same values: Automerge writes no op
    assert doc.heads() == heads


class _Boom(BaseException):
    """Not an ``Exception``: rollback must not depend on the exception type."""


@pytest.mark.parametrize("error", [ValueError("boom"), _Boom()])
def test_an_exception_in_the_callback_leaves_the_doc_unchanged_and_usable(
    error: BaseException,
) -> None:
    doc = AutomergeDoc.new(A)
    doc.change(_set(keep=1, items=[1, 2], text=Text("abc"), c=Counter(1)))
    heads, data = doc.heads(), doc.to_python()

    def fails(m: MapProxy) -> None:
        m["keep"] = 2
        m["new"] = {"deep": [1, 2, 3]}
        m["items"].insert(0, "x")
        del m["items"][1]
        m.text("text").splice(1, 1, "ZZ")
        m["c"].increment(5)
        raise error

    with pytest.raises(type(error)):
        doc.change(fails)
    assert doc.heads() == heads
    assert doc.to_python() == data
    after = doc.change(_set(keep=3))
    assert after is not None
    assert after.deps == [h.hex() for h in heads]
    assert after.seq == 2
    reloaded = AutomergeDoc.load(doc.save(), B)
    assert reloaded.to_python() == {**data, "keep": 3}


def test_rebuild_fallback_drops_a_committed_change_and_keeps_the_actor() -> None:
    """The path taken should a binding ever commit a failed transaction."""
    doc = AutomergeDoc.new(A)
    doc.change(_set(a=1))
    before = doc.heads()
    doc.change(_set(b=2))
    doc._rebuild_at(before)
    assert doc.heads() == before
    assert doc.to_python() == {"a": 1}
    assert doc.actor == A
    again = doc.change(_set(c=3))
    assert again is not None and again.seq == 2


def test_proxies_die_with_their_change() -> None:
    doc = AutomergeDoc.new(A)
    kept: list[MapProxy] = []

    def keep(m: MapProxy) -> None:
        kept.append(m)
        m["x"] = {"y": 1}

    doc.change(keep)
    with pytest.raises(ProxyClosedError):
        kept[0]["x"] = 2
    with pytest.raises(ProxyClosedError):
        _ = kept[0]["x"]
    assert doc.to_python() == {"x": {"y": 1}}


def test_the_doc_refuses_other_calls_while_a_change_runs() -> None:
    doc = AutomergeDoc.new(A)
    doc.change(_set(a=1))

    def nested(m: MapProxy) -> None:
        m["b"] = 2
        doc.change(_set(c=3))

    with pytest.raises(DocumentError):
        doc.change(nested)
    with pytest.raises(DocumentError):
        doc.change(lambda m: doc.to_python())
    assert doc.to_python() == {"a": 1}
    assert doc.change(_set(d=4)) is not None


def test_a_value_the_binding_cannot_read_raises_a_typed_error_without_poisoning() -> None:
    """A value of a type unknown to Automerge (code 10) makes the binding panic on read."""
    doc = AutomergeDoc.from_changes([_int_change_with_value_type(10)], A)
    with pytest.raises(UnsupportedValueError):
        doc.to_python()
    with pytest.raises(UnsupportedValueError):
        doc.change(lambda m: m["n"])
    assert doc.change(_set(other=1)) is not None
    assert AutomergeDoc.load(doc.save(), B).has_change(doc.heads()[0])


def test_a_native_counter_made_by_hand_reads_and_increments() -> None:
    """The value-type patch ``columns.mark_counters`` makes, by hand: Int (4) -> Counter (8)."""
    crafted = _int_change_with_value_type(8)
    doc = AutomergeDoc.from_changes([crafted], A)
    assert doc.to_python() == {"n": 5} and isinstance(doc.to_python()["n"], Counter)
    doc.change(lambda m: m["n"].increment(2))
    assert doc.to_python()["n"] == 7
    src = Document(bytes.fromhex("01" * 8))
    with src.transaction() as tx:
        tx.put(ROOT, "n", ScalarType.Int, 5)
    plain = bytes(src.get_changes([])[0].raw_bytes)
    assert mark_counters(plain, [1]) == crafted


def _int_change_with_value_type(code: int) -> bytes:
    """A change putting ``n = Int 5`` with the value type of that op patched to ``code``."""
    src = Document(bytes.fromhex("01" * 8))
    with src.transaction() as tx:
        tx.put(ROOT, "n", ScalarType.Int, 5)
    raw = bytearray(src.get_changes([])[0].raw_bytes)
    at = raw.index(bytes([0x7F, 0x14]))  # RLE literal run of one value-meta: 1-byte Int
    raw[at + 1] = 0x10 | code
    raw[4:8] = hashlib.sha256(raw[8:]).digest()[:4]
    return bytes(raw)


# ----- save / load / fork / merge ----------------------------------------------------------------


def test_load_sets_the_actor_and_rejects_garbage() -> None:
    doc, _ = _doc_with_history()
    loaded = AutomergeDoc.load(doc.save(), B)
    assert loaded.actor == B
    assert loaded.heads() == doc.heads()
    assert loaded.to_python() == doc.to_python()
    change = loaded.change(_set(n=4))
    assert change is not None and change.actor == B.hex()
    with pytest.raises(DocumentLoadError):
        AutomergeDoc.load(b"definitely not automerge", A)
    with pytest.raises(DocumentError):
        AutomergeDoc.new(b"")


def test_fork_at_past_heads_and_merge_back() -> None:
    doc, chunks = _doc_with_history()
    first = change_hash(chunks[0])
    old = doc.fork([first], actor=B)
    assert old.to_python() == {"n": 1}
    assert old.actor == B
    old.change(_set(branch=True))
    new_hashes = doc.merge(old)
    assert len(new_hashes) == 1
    assert doc.to_python() == {"n": 3, "s": "two", "branch": True}
    assert len(doc.heads()) == 2
    assert doc.has_change(new_hashes[0])
    with pytest.raises(UnknownHeadsError):
        doc.fork(["00" * 32])


def test_to_python_at_past_heads() -> None:
    doc = AutomergeDoc.new(A)
    steps: list[tuple[str, dict[str, Any]]] = []

    def record(fn: Any) -> None:
        result = doc.change(fn)
        assert result is not None
        steps.append((result.hash, doc.to_python()))

    record(_set(title=Text("draft"), tags=["a"], count=Counter(1)))
    record(lambda m: (m.text("title").splice(0, 5, "final"), m["tags"].append("b")))
    record(lambda m: (m["count"].increment(4), m.pop("tags"), m.update(meta={"x": 1.5})))
    record(lambda m: m["meta"].__setitem__("x", None))
    for head, state in steps:
        assert doc.to_python([head]) == state
        assert doc.to_python([bytes.fromhex(head)]) == state
    assert steps[0][1] == {"title": "draft", "tags": ["a"], "count": 1}
    assert isinstance(steps[2][1]["count"], Counter)
    with pytest.raises(UnknownHeadsError):
        doc.to_python(["ab" * 32])
    with pytest.raises(DocumentError):
        doc.to_python(["not hex"])


# ----- apply_changes -----------------------------------------------------------------------------


def test_apply_changes_in_any_order() -> None:
    doc, chunks = _doc_with_history()
    replica = AutomergeDoc.new(B)
    applied = replica.apply_changes(list(reversed(chunks)))
    assert applied == [change_hash(c) for c in chunks]
    assert replica.heads() == doc.heads()
    assert replica.to_python() == doc.to_python()
    assert replica.apply_changes(chunks) == []  # duplicates are fine
    built = AutomergeDoc.from_changes([chunks[2], chunks[0], chunks[1]], B)
    assert built.to_python() == {"n": 3, "s": "two"}


def test_a_missing_dependency_is_a_typed_error_and_the_doc_stays_usable() -> None:
    _, chunks = _doc_with_history()
    replica = AutomergeDoc.from_changes(chunks[:1], B)
    with pytest.raises(ChangeApplyError) as caught:
        replica.apply_changes([chunks[2]])
    assert caught.value.missing == [change_hash(chunks[2])]
    assert replica.to_python() == {"n": 1}
    assert not replica.has_change(change_hash(chunks[2]))
    mine = replica.change(_set(mine=True))
    assert mine is not None
    # Automerge queued the held-back change: it lands once its dependency arrives.
    landed = replica.apply_changes([chunks[1]])
    assert set(landed) == {change_hash(chunks[1]), change_hash(chunks[2])}
    assert replica.to_python() == {"n": 3, "s": "two", "mine": True}


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: b"garbage",
        lambda c: c[:-3],
        lambda c: c[:-1] + bytes([c[-1] ^ 1]),
        lambda c: b"\x00" + c[1:],
        lambda c: c + b"\x00",
    ],
    ids=["garbage", "truncated", "bit-flip", "bad-magic", "trailing"],
)
def test_a_malformed_chunk_is_rejected_before_anything_applies(mangle: Any) -> None:
    _, chunks = _doc_with_history()
    replica = AutomergeDoc.new(B)
    with pytest.raises(ChangeFormatError):
        replica.apply_changes([chunks[0], mangle(chunks[1])])
    assert replica.heads() == []
    assert replica.apply_changes(chunks[:1]) == [change_hash(chunks[0])]


def test_apply_changes_checks_explicit_expected_hashes() -> None:
    _, chunks = _doc_with_history()
    replica = AutomergeDoc.new(B)
    bogus = "cd" * 32
    assert replica.apply_changes([], []) == []
    with pytest.raises(ChangeApplyError):
        replica.apply_changes([], [change_hash(chunks[0])])
    with pytest.raises(ChangeApplyError) as caught:
        replica.apply_changes(chunks[:1], [change_hash(chunks[0]), bogus])
    assert caught.value.missing == [bogus]
    assert replica.has_change(change_hash(chunks[0]))


def test_apply_changes_refuses_a_whole_document() -> None:
    doc, _ = _doc_with_history()
    with pytest.raises(ChangeFormatError):
        AutomergeDoc.new(B).apply_changes([doc.save()])


def test_has_change_tracks_every_way_changes_arrive() -> None:
    doc, chunks = _doc_with_history()
    assert all(doc.has_change(change_hash(c)) for c in chunks)
    other = AutomergeDoc.new(B)
    assert not other.has_change(change_hash(chunks[0]))  # builds the known set
    other.apply_changes(chunks[:2])
    assert other.has_change(change_hash(chunks[1]))
    made = other.change(_set(x=1))
    assert made is not None and other.has_change(made.hash)
    other.merge(doc)
    assert other.has_change(change_hash(chunks[2]))


def test_a_cold_load_knows_its_changes_without_asking_the_binding_again() -> None:
    """``from_ordered_changes`` keeps the change set its proof built; later writes and
    lookups use it (and keep it current) instead of rebuilding it from the binding."""
    _, chunks = _doc_with_history()
    hashes = [change_hash(c) for c in chunks]
    loaded = AutomergeDoc.from_ordered_changes(chunks, B, hashes)
    assert loaded._known == {bytes.fromhex(h) for h in hashes}
    assert loaded._known == {bytes(c.hash) for c in loaded._doc.get_changes([])}
    made = loaded.change(_set(n=4))
    assert made is not None and loaded.has_change(made.hash)
    assert loaded._known == {bytes(c.hash) for c in loaded._doc.get_changes([])}
    assert loaded.to_python() == {"n": 4, "s": "two"} and loaded.actor == B


def test_a_cold_load_of_a_damaged_history_still_says_what_is_missing() -> None:
    """Whatever the one-load path cannot prove goes the slow way, which names the change."""
    _, chunks = _doc_with_history()
    hashes = [change_hash(c) for c in chunks]
    with pytest.raises(ChangeApplyError) as caught:
        AutomergeDoc.from_ordered_changes([chunks[0], chunks[2]], B, [hashes[0], hashes[2]])
    assert caught.value.missing == [hashes[2]]
    with pytest.raises(ChangeApplyError):  # a chunk that is not the change its hash names
        AutomergeDoc.from_ordered_changes(chunks[:2], B, [hashes[0], hashes[2]])


def test_concurrent_edits_converge_after_exchanging_changes() -> None:
    one = AutomergeDoc.new(A)
    one.change(_set(title=Text("hello"), items=[1, 2, 3], hits=Counter(0), meta={"v": 1}))
    two = AutomergeDoc.from_changes([c.bytes for c in one.changes_since()], B)

    def edit_one(m: MapProxy) -> None:
        m.text("title").insert(0, ">> ")
        m["items"].append(4)
        m["hits"].increment(2)
        m["meta"]["by"] = "one"

    def edit_two(m: MapProxy) -> None:
        m.text("title").insert(5, " world")
        del m["items"][0]
        m["hits"].increment(3)
        m["meta"]["v"] = 2

    one.change(edit_one)
    two.change(edit_two)
    _exchange(one, two)
    assert one.heads() == two.heads()
    assert one.to_python() == two.to_python()
    assert one.to_python() == {
        "title": ">> hello world",
        "items": [2, 3, 4],
        "hits": 5,
        "meta": {"v": 2, "by": "one"},
    }


def test_a_stamp_joins_a_change_and_never_makes_one() -> None:
    doc = AutomergeDoc.new(A)
    doc.change(lambda root: root.update(title="plan", _lastModified=5))
    heads = doc.heads()

    idle = doc.begin_change()
    assert idle.commit(stamp=("_lastModified", 6)) is None  # the stamp alone is no change
    assert doc.heads() == heads and doc.to_python()["_lastModified"] == 5

    # Automerge drops a put of the value a key holds: a stamp equal to the current one (two
    # writers in one millisecond) must not make the edit look empty.
    edit = doc.begin_change()
    edit.root["done"] = True
    change = edit.commit(stamp=("_lastModified", 5))
    assert change is not None
    assert doc.to_python() == {"title": "plan", "_lastModified": 5, "done": True}

    edit = doc.begin_change()
    edit.root["done"] = False
    assert edit.commit(stamp=("_lastModified", 7)) is not None
    assert doc.to_python()["_lastModified"] == 7


@pytest.mark.parametrize("held", [5.0, True, Counter(5), "5", Text("5"), None])
def test_a_stamp_alone_is_no_change_whatever_the_key_held(held: Any) -> None:
    # Only an Int of the stamp's value makes Automerge drop the stamp's put; over anything
    # else the put is an op, and a change of that op alone is still no change.
    stamp = 1 if held is True else 5
    doc = AutomergeDoc.new(A)
    doc.change(lambda root: root.update(_lastModified=held, other=1))
    heads, before = doc.heads(), doc.to_python()
    idle = doc.begin_change()
    assert idle.commit(stamp=("_lastModified", stamp)) is None
    assert doc.heads() == heads and doc.to_python() == before
    edit = doc.begin_change()
    edit.root["other"] = 2
    assert edit.commit(stamp=("_lastModified", stamp)) is not None
    assert doc.to_python()["_lastModified"] == stamp


def test_read_later_answers_the_state_it_was_made_at() -> None:
    doc = AutomergeDoc.new(A)
    doc.change(
        lambda root: root.update(
            title="one", tags=["a"], when=datetime(2024, 1, 2, tzinfo=UTC), raw=b"x"
        )
    )
    before = doc.to_python()
    read = doc.read_later()
    assert read is not None and read() == before  # still current
    doc.change(lambda root: root.update(title="two", extra={"deep": [1, 2.5, None, True]}))
    assert read() == before
    pending = doc.begin_change()
    pending.root["title"] = "three"
    assert read() == before  # through the open change, as of the heads it was made at
    pending.commit()
    assert read() == before and isinstance(read()["title"], Text)


def test_read_later_is_none_for_a_history_with_counters() -> None:
    doc = AutomergeDoc.new(A)
    doc.change(lambda root: root.update(hits=Counter(1)))
    assert doc.read_later() is None
