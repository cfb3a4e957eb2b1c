"""Time travel: past states, history with authors, causal order, read-only views."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import mindood.db.entries
from mindood import InMemoryStoreFactory
from mindood.db import DBOptions, DocumentVersion, ReadOnlyDatabaseError, TimeTravelDB
from mindood.db.history import to_ms
from mindood.db.plan import history_order, plan_document
from store.entry import EntryMetadata, EntryType
from store.ids import doc_entry_id
from store.memory import InMemoryStore
from tests.db_helpers import KeySigner, default_keys, make_db
from tests.tenant_helpers import fast_kdf, new_tenant

_fast = pytest.fixture(autouse=True, scope="module")(fast_kdf)


async def test_a_document_at_five_points_in_time_across_snapshots_and_a_delete() -> None:
    store = InMemoryStore()
    db = make_db(KeySigner(), default_keys(), store, options=DBOptions(snapshot_every=3))
    doc = await db.create_document({"v": 0})
    doc_id, created = doc.get_id(), doc.get_created_at()
    after: dict[int, int] = {}
    for v in range(1, 6):
        after[v] = (
            await db.change_doc(doc, lambda d, v=v: d.get_data().update(v=v))
        ).get_last_modified()
    await db.delete_document(doc)
    deleted_at = max(m.created_at for m in await store.find_new_entries_for_doc([], doc_id))
    snapshots = await store.find_entries(EntryType.DOC_SNAPSHOT, None, None)
    assert len(snapshots) == 2  # after the 3rd and the 6th entry

    # "As of T" sees the entries created before T.
    points = [created, created + 1, after[2] + 1, after[5] + 1, deleted_at + 1]
    states = [await db.get_document_at_timestamp(doc_id, t) for t in points]
    assert states[0] is None
    assert [s.get_data() if s else None for s in states[1:]] == [
        {"v": 0},
        {"v": 2},
        {"v": 5},
        {"v": 5},
    ]
    assert [s.is_deleted() for s in states[1:] if s] == [False, False, False, True]
    ids = [await db.get_all_document_ids_at_timestamp(t) for t in points]
    assert ids == [[], [doc_id], [doc_id], [doc_id], []]

    # The reads after v=2 and v=5 start from the snapshot taken right after them.
    metas = await store.find_new_entries_for_doc([], doc_id)
    plans = [plan_document(doc_id, metas, bool, t) for t in (after[2] + 1, after[5] + 1)]
    assert [p.snapshot.id if p.snapshot else None for p in plans] == [
        s.id for s in sorted(snapshots, key=lambda m: m.created_at)
    ]
    assert [len(p.changes) for p in plans] == [0, 0]
    assert (await db.get_document(doc_id)).is_deleted()


async def test_history_of_a_document_edited_by_two_users() -> None:
    keys, store = default_keys(), InMemoryStore()
    alice_key, bob_key = KeySigner(), KeySigner()
    alice, bob = make_db(alice_key, keys, store), make_db(bob_key, keys, store)
    doc = await alice.create_document({"title": "Plan"})
    edits = [(bob, {"owner": "bob"}), (alice, {"done": False}), (bob, {"done": True})]
    for db, fields in edits:
        await db.sync_store_changes()  # each edit builds on the one before
        await db.change_doc(doc.get_id(), lambda d, f=fields: d.get_data().update(f))

    versions: list[DocumentVersion] = [
        v async for v in alice.iterate_document_history(doc.get_id())
    ]
    authors = [v.change_created_by_public_key for v in versions]
    assert authors == [
        alice_key.public_pem,
        bob_key.public_pem,
        alice_key.public_pem,
        bob_key.public_pem,
    ]
    assert [v.doc.get_data() for v in versions] == [
        {"title": "Plan"},
        {"title": "Plan", "owner": "bob"},
        {"title": "Plan", "owner": "bob", "done": False},
        {"title": "Plan", "owner": "bob", "done": True},
    ]
    stored = {m.id: m for m in await store.find_new_entries_for_doc([], doc.get_id())}
    seen: set[str] = set()
    for version in versions:
        meta = stored[version.change_entry_id]
        assert version.change_created_at == meta.created_at
        assert set(version.change_dependency_ids) <= seen  # parents came first
        seen.add(version.change_entry_id)
    # Breaking out of the history early is fine and reads no further.
    async for version in alice.iterate_document_history(doc.get_id()):
        assert version.change_type is EntryType.DOC_CREATE
        break


async def test_entries_in_the_same_millisecond_are_ordered_causally(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen = 1_700_000_000_000 * 1_000_000
    monkeypatch.setattr(mindood.db.entries.time, "time_ns", lambda: frozen)
    keys, store = default_keys(), InMemoryStore()
    alice, bob = make_db(KeySigner(), keys, store), make_db(KeySigner(), keys, store)
    doc = await alice.create_document({"step": ["alice"]})  # at T
    await bob.change_doc(doc.get_id(), lambda d: d.get_data()["step"].append("bob"))  # at T too
    await alice.sync_store_changes()
    await alice.change_doc(doc.get_id(), lambda d: d.get_data()["step"].append("alice2"))  # T+1
    await bob.sync_store_changes()
    await bob.change_doc(doc.get_id(), lambda d: d.get_data()["step"].append("bob2"))  # T+1

    metas = await store.find_new_entries_for_doc([], doc.get_id())
    assert sorted(m.created_at for m in metas) == [frozen // 10**6] * 2 + [frozen // 10**6 + 1] * 2
    versions = [
        v.doc.get_data()["step"] async for v in alice.iterate_document_history(doc.get_id())
    ]
    assert versions == [
        ["alice"],
        ["alice", "bob"],
        ["alice", "bob", "alice2"],
        ["alice", "bob", "alice2", "bob2"],
    ]
    at = await alice.get_document_at_timestamp(doc.get_id(), frozen // 10**6 + 1)
    assert at is not None and at.get_data() == {"step": ["alice", "bob"]}


def _meta(name: str, deps: tuple[str, ...], at: int) -> EntryMetadata:
    return EntryMetadata(
        entry_type=EntryType.DOC_CHANGE if deps else EntryType.DOC_CREATE,
        id=doc_entry_id("d", [], name),
        content_hash="0" * 64,
        doc_id="d",
        dependency_ids=tuple(doc_entry_id("d", [], x) for x in deps),
        created_at=at,
        created_by_public_key="k",
        decryption_key_id="default",
        original_size=0,
        encrypted_size=0,
    )


def test_history_order_puts_parents_first_even_when_ids_and_clocks_say_otherwise() -> None:
    # "zz" is the root; its children sort before it by id and one even claims an earlier time.
    metas = [
        _meta("aa", ("zz",), 5),
        _meta("zz", (), 5),
        _meta("bb", ("aa",), 4),
        _meta("ab", ("zz",), 5),
    ]
    order = [m.id.rsplit("_", 1)[-1] for m in history_order("d", metas, bool)]
    assert order == ["zz", "aa", "bb", "ab"]  # among ready entries, earlier time first
    # A cutoff keeps only complete ancestry: "bb" (at 4) lost its parent "aa" (at 5).
    assert [m.id.rsplit("_", 1)[-1] for m in history_order("d", metas, bool, until=5)] == []
    assert len(history_order("d", metas, bool, until=6)) == 4


async def test_read_only_views_refuse_writes() -> None:
    db = make_db(KeySigner(), default_keys())
    old = await db.create_document({"v": 1})
    cut = old.get_last_modified() + 1
    await db.change_doc(old, lambda d: d.get_data().update(v=2))
    await db.create_document({"later": True})
    view = db.at_timestamp(cut)
    assert isinstance(view, TimeTravelDB) and view.timestamp == cut
    assert (await view.get_document(old.get_id())).get_data() == {"v": 1}
    assert await view.get_all_document_ids() == [old.get_id()]
    assert [v.doc.get_data() async for v in view.iterate_document_history(old.get_id())] == [
        {"v": 1}
    ]
    for write in (
        view.create_document({"x": 1}),
        view.change_doc(old.get_id(), lambda d: None),
        view.delete_document(old.get_id()),
        view.pull_changes_from(InMemoryStore()),
    ):
        with pytest.raises(ReadOnlyDatabaseError):
            await write
    assert (await db.get_document(old.get_id())).get_data() == {"v": 2}


async def test_tenant_opens_a_database_at_a_timestamp() -> None:
    created = await new_tenant(InMemoryStoreFactory())
    db = await created.tenant.open_db("notes")
    doc = await db.create_document({"text": "draft"})
    cut = datetime.fromtimestamp((doc.get_last_modified() + 1) / 1000, UTC)
    await db.change_doc(doc, lambda d: d.get_data().update(text="final"))
    view = await created.tenant.open_db("notes", time_travel=cut.isoformat())
    assert (await view.get_document(doc.get_id())).get_data() == {"text": "draft"}
    with pytest.raises(ReadOnlyDatabaseError):
        await view.change_doc(doc.get_id(), lambda d: None)


def test_timestamps_in_every_accepted_form() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    ms = 1_714_564_800_250
    assert to_ms(ms) == to_ms(float(ms)) == to_ms(moment) == ms
    assert to_ms("2024-05-01T12:00:00.250+00:00") == to_ms(moment.replace(tzinfo=None)) == ms
    with pytest.raises(ValueError):
        to_ms("yesterday")
    with pytest.raises(TypeError):
        to_ms(True)
