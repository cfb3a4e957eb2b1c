"""Planning a document from metadata: trust, snapshots, ordering, blocked ancestry, lifecycle."""

from __future__ import annotations

import random

from mindood.db.plan import _complete_entries, _topological, plan_document
from store.entry import EntryMetadata, EntryType
from store.ids import doc_entry_id

DOC = "thedoc"


def _meta(
    name: str,
    deps: tuple[str, ...] = (),
    *,
    kind: EntryType = EntryType.DOC_CHANGE,
    at: int = 0,
    author: str = "alice",
    heads: tuple[str, ...] = (),
) -> EntryMetadata:
    return EntryMetadata(
        entry_type=kind,
        id=doc_entry_id(DOC, [], name),
        content_hash="0" * 64,
        doc_id=DOC,
        dependency_ids=tuple(doc_entry_id(DOC, [], d) for d in deps),
        created_at=at,
        created_by_public_key=author,
        decryption_key_id="default",
        original_size=0,
        encrypted_size=0,
        snapshot_head_entry_ids=tuple(doc_entry_id(DOC, [], h) for h in heads),
    )


def _name(entry_id: str) -> str:
    return entry_id.rsplit("_", 1)[-1]


def test_changes_come_parents_first_with_deterministic_tie_breaks() -> None:
    metas = [
        _meta("d", ("b", "c"), at=5),
        _meta("c", ("a",), at=3),
        _meta("b", ("a",), at=3),
        _meta("a", kind=EntryType.DOC_CREATE, at=1),
    ]
    plan = plan_document(DOC, metas, lambda m: True)
    assert [_name(m.id) for m in plan.changes] == ["a", "b", "c", "d"]
    assert plan.create is not None and _name(plan.create.id) == "a"
    assert not plan.deleted and plan.last_modified == 5


def test_untrusted_entries_and_their_descendants_are_left_out() -> None:
    metas = [
        _meta("a", kind=EntryType.DOC_CREATE),
        _meta("b", ("a",), author="mallory"),
        _meta("c", ("b",)),
        _meta("x", ("a",)),
    ]
    plan = plan_document(DOC, metas, lambda m: m.created_by_public_key != "mallory")
    assert {_name(m.id) for m in plan.changes} == {"a", "x"}
    assert {_name(i) for i in plan.blocked} == {"c"}


def test_missing_parents_and_forged_cycles_block_entries() -> None:
    metas = [
        _meta("a", kind=EntryType.DOC_CREATE),
        _meta("orphan", ("never-seen",)),
        _meta("loop1", ("loop2",)),
        _meta("loop2", ("loop1",)),
    ]
    plan = plan_document(DOC, metas, lambda m: True)
    assert [_name(m.id) for m in plan.changes] == ["a"]
    assert {_name(i) for i in plan.blocked} == {"orphan", "loop1", "loop2"}


def test_the_best_trusted_snapshot_is_used_and_only_later_changes_replayed() -> None:
    metas = [
        _meta("a", kind=EntryType.DOC_CREATE, at=1),
        _meta("b", ("a",), at=2),
        _meta("c", ("b",), at=3),
        _meta("d", ("c",), at=4),
        _meta("s1", ("b",), kind=EntryType.DOC_SNAPSHOT, heads=("b",), at=5),
        _meta("s2", ("c",), kind=EntryType.DOC_SNAPSHOT, heads=("c",), at=6),
        _meta("evil", ("d",), kind=EntryType.DOC_SNAPSHOT, heads=("d",), author="mallory"),
    ]
    plan = plan_document(DOC, metas, lambda m: m.created_by_public_key != "mallory")
    assert plan.snapshot is not None and _name(plan.snapshot.id) == "s2"
    assert [_name(m.id) for m in plan.changes] == ["d"]
    assert {_name(i) for i in plan.included} == {"a", "b", "c", "d"}


def test_a_snapshot_claiming_an_untrusted_head_is_ignored() -> None:
    metas = [
        _meta("a", kind=EntryType.DOC_CREATE),
        _meta("m", ("a",), author="mallory"),
        _meta("s", ("m",), kind=EntryType.DOC_SNAPSHOT, heads=("m",)),
    ]
    plan = plan_document(DOC, metas, lambda m: m.created_by_public_key != "mallory")
    assert plan.snapshot is None
    assert [_name(m.id) for m in plan.changes] == ["a"]


def test_latest_lifecycle_event_decides_deletion() -> None:
    base = [_meta("a", kind=EntryType.DOC_CREATE, at=1)]
    deleted = [*base, _meta("del", ("a",), kind=EntryType.DOC_DELETE, at=5)]
    assert plan_document(DOC, deleted, lambda m: True).deleted
    revived = [*deleted, _meta("und", ("del",), kind=EntryType.DOC_UNDELETE, at=9)]
    assert not plan_document(DOC, revived, lambda m: True).deleted


def test_no_trusted_create_means_no_document() -> None:
    metas = [_meta("a", kind=EntryType.DOC_CREATE, author="mallory")]
    assert plan_document(DOC, metas, lambda m: m.created_by_public_key != "mallory").create is None


def test_a_forged_cycle_among_present_entries_blocks_it() -> None:
    """Nothing is missing, so only the sort can tell the cycle apart from a history."""
    metas = [
        _meta("a", kind=EntryType.DOC_CREATE),
        _meta("loop1", ("a", "loop2")),
        _meta("loop2", ("loop1",)),
        _meta("b", ("a",)),
    ]
    plan = plan_document(DOC, metas, lambda m: True)
    assert [_name(m.id) for m in plan.changes] == ["a", "b"]
    assert {_name(i) for i in plan.blocked} == {"loop1", "loop2"}


def test_plans_of_complete_histories_match_the_general_walk() -> None:
    """The shortcut for histories without snapshots or gaps plans exactly as the full walk."""
    rng = random.Random(17)
    for _ in range(200):
        names = [f"e{i}" for i in range(rng.randint(1, 12))]
        metas = [_meta(names[0], kind=EntryType.DOC_CREATE, at=rng.randint(0, 3))]
        for index, name in enumerate(names[1:], 1):
            deps = tuple(rng.sample(names[:index], rng.randint(1, min(3, index))))
            kind = rng.choice([EntryType.DOC_CHANGE, EntryType.DOC_CHANGE, EntryType.DOC_DELETE])
            metas.append(_meta(name, deps, kind=kind, at=rng.randint(0, 3)))
        rng.shuffle(metas)
        trusted = rng.random() < 0.5
        applies = (lambda m: True) if trusted else (lambda m: not m.id.endswith("e3"))
        plan = plan_document(DOC, metas, applies)
        replay = {m.id: m for m in metas if applies(m)}
        complete = _complete_entries(replay)
        assert plan.changes == tuple(_topological([replay[i] for i in complete]))
        assert plan.included == frozenset(complete)
        assert plan.blocked == tuple(sorted(set(replay) - complete))


def test_plans_of_histories_in_receipt_order_match_the_general_walk() -> None:
    """Chains in the order received (the shortcut's case) and near-chains (a fork, a merge, a
    missing or later parent), with clocks that go backwards, plan exactly as the full walk."""
    rng = random.Random(23)
    for _ in range(300):
        names = [f"e{i}" for i in range(rng.randint(1, 10))]
        metas = [_meta(names[0], kind=EntryType.DOC_CREATE, at=rng.randint(0, 3))]
        for index, name in enumerate(names[1:], 1):
            deps: tuple[str, ...] = (names[index - 1],)
            twist = rng.random()
            if twist < 0.1:
                deps = (rng.choice(names[:index]),)  # a fork
            elif twist < 0.2:
                deps = (*deps, rng.choice(names[:index]))  # a merge, maybe a repeated parent
            elif twist < 0.25:
                deps = ("gone",)  # a parent this store does not have
            elif twist < 0.3 and index + 1 < len(names):
                deps = (*deps, names[index + 1])  # a parent received later
            metas.append(_meta(name, deps, at=rng.randint(0, 3)))
        plan = plan_document(DOC, metas, lambda m: True)
        replay = {m.id: m for m in metas}
        complete = _complete_entries(replay)
        assert plan.changes == tuple(_topological([replay[i] for i in complete]))
        assert plan.included == frozenset(complete)
        assert plan.blocked == tuple(sorted(set(replay) - complete))
