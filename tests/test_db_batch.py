"""Batch calls of MindooDB: one durable write per batch, each document still its own change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mindood.db import DBOptions, MindooDB, MindooDoc, NewDocument
from mindood.db.batch import FIRST_READ_SLICE, READ_SLICE, read_slices
from mindood.document import Counter, Text
from mindood.errors import (
    DatabaseError,
    DocumentDeletedError,
    DocumentNotFoundError,
    KeyNotFoundError,
    QuarantinedEntryError,
)
from store.base import ContentAddressedStore
from store.entry import EntryType, StoreEntry
from store.errors import EntryFormatError
from store.memory import InMemoryStore
from store.ondisk import OnDiskStore, OnDiskStoreOptions
from store.verify import verify_entries
from tests.db_helpers import CountingStore, KeySigner, StaticKeys, default_keys, make_db


@pytest.fixture
def keys() -> StaticKeys:
    return default_keys()


@pytest.fixture
def signer() -> KeySigner:
    return KeySigner()


async def _all_entries(store: ContentAddressedStore) -> list[StoreEntry]:
    return await store.get_entries(await store.get_all_ids())


async def test_create_documents_is_one_put_of_separately_signed_creates(
    signer: KeySigner, keys: StaticKeys
) -> None:
    store = CountingStore()
    db = make_db(signer, keys, store)
    heard: list[set[str]] = []
    db.on_change(heard.append)
    docs = await db.create_documents([{"n": i} for i in range(50)])
    assert [d.get_data()["n"] for d in docs] == list(range(50))
    assert len(store.puts) == 1 and len(store.puts[0]) == 50
    entries = await _all_entries(store)
    assert {e.doc_id for e in entries} == {d.get_id() for d in docs}
    assert all(e.entry_type is EntryType.DOC_CREATE for e in entries)
    verified = await verify_entries(entries)
    assert len(verified.accepted) == 50 and not verified.rejected
    assert len({e.metadata.signature for e in entries}) == 50
    assert heard == [{d.get_id() for d in docs}]


async def test_create_documents_takes_custom_ids_and_keys(signer: KeySigner) -> None:
    keys = StaticKeys(default=b"d" * 32, secret=b"s" * 32)
    db = make_db(signer, keys)
    docs = await db.create_documents(
        [
            NewDocument({"a": 1}, doc_id="settings"),
            NewDocument({"b": 2}, key_id="secret"),
            None,
        ]
    )
    assert docs[0].get_id() == "settings" and docs[0].get_data() == {"a": 1}
    assert docs[1].get_decryption_key_id() == "secret"
    assert docs[2].get_data() == {}
    again = make_db(signer, keys, db.get_store())
    assert (await again.get_document("settings")).get_data() == {"a": 1}


async def test_a_bad_create_in_a_batch_stores_nothing_and_names_the_document(
    signer: KeySigner, keys: StaticKeys
) -> None:
    store = CountingStore()
    db = make_db(signer, keys, store)
    await db.create_document({"x": 1}, doc_id="taken")
    before = await store.get_all_ids()
    with pytest.raises(DatabaseError, match=r"documents\[2\] 'taken': .*already exists"):
        await db.create_documents(
            [NewDocument({"a": 1}), NewDocument({"b": 1}, doc_id="fresh"), NewDocument({}, "taken")]
        )
    with pytest.raises(KeyNotFoundError, match=r"documents\[1\]"):
        await db.create_documents([NewDocument({"a": 1}), NewDocument({"a": 2}, key_id="nokey")])
    with pytest.raises(DatabaseError, match=r"documents\[0\] 'BadId'"):
        await db.create_documents([NewDocument({}, doc_id="BadId")])
    with pytest.raises(EntryFormatError, match=r"documents\[1\] 'bad id'"):
        await db.create_documents([NewDocument({}), NewDocument({}, doc_id="bad id")])
    with pytest.raises(DatabaseError, match="appears twice"):
        await db.create_documents([NewDocument({}, "twin"), NewDocument({}, "twin")])
    assert await store.get_all_ids() == before
    with pytest.raises(DocumentNotFoundError):
        await db.get_document("fresh")


async def test_change_docs_is_one_put_and_one_change_per_document(
    signer: KeySigner, keys: StaticKeys
) -> None:
    store = CountingStore()
    db = make_db(signer, keys, store)
    docs = await db.create_documents([{"n": 0} for _ in range(20)])
    store.puts.clear()
    heard: list[set[str]] = []
    db.on_change(heard.append)

    def bump(d: MindooDoc) -> None:
        d.get_data()["n"] += 1

    changed = await db.change_docs([(d, bump) for d in docs] + [(docs[0].get_id(), bump)])
    assert len(store.puts) == 1 and len(store.puts[0]) == 21
    assert all(e.entry_type is EntryType.DOC_CHANGE for e in store.puts[0])
    assert [d.get_data()["n"] for d in changed] == [2] + [1] * 19 + [2]
    fresh = make_db(signer, keys, store)
    assert [(await fresh.get_document(d.get_id())).get_data()["n"] for d in docs[:2]] == [2, 1]
    assert heard == [{d.get_id() for d in docs}]


async def test_a_failing_change_in_a_batch_stores_nothing(
    signer: KeySigner, keys: StaticKeys
) -> None:
    store = CountingStore()
    db = make_db(signer, keys, store)
    docs = await db.create_documents([{"n": 0} for _ in range(3)])
    before = await store.get_all_ids()

    def bump(d: MindooDoc) -> None:
        d.get_data()["n"] = 1

    def boom(d: MindooDoc) -> None:
        raise DatabaseError("refused by the application")

    with pytest.raises(DatabaseError, match=rf"documents\[2\] '{docs[2].get_id()}': refused"):
        await db.change_docs([(docs[0], bump), (docs[1], bump), (docs[2], boom)])
    assert await store.get_all_ids() == before
    # The first two changes committed in memory but were not stored: they must not show.
    assert [d.get_data()["n"] for d in await db.get_documents([d.get_id() for d in docs])] == [
        0,
        0,
        0,
    ]
    await db.delete_document(docs[1])
    with pytest.raises(DocumentDeletedError, match=r"documents\[1\]"):
        await db.change_docs([(docs[0], bump), (docs[1], bump)])
    with pytest.raises(DocumentNotFoundError, match=r"documents\[1\] 'nosuchdoc'"):
        await db.change_docs([(docs[0], bump), ("nosuchdoc", bump)])
    assert (await db.get_document(docs[0].get_id())).get_data()["n"] == 0


async def test_batch_changes_take_snapshots_in_the_same_write(
    signer: KeySigner, keys: StaticKeys
) -> None:
    store = CountingStore()
    db = make_db(signer, keys, store, options=DBOptions(snapshot_every=2))
    docs = await db.create_documents([{"n": 0} for _ in range(5)])
    store.puts.clear()

    def bump(d: MindooDoc) -> None:
        d.get_data()["n"] += 1

    await db.change_docs([(d, bump) for d in docs])
    assert len(store.puts) == 1
    kinds = [e.entry_type for e in store.puts[0]]
    assert kinds.count(EntryType.DOC_CHANGE) == 5 and kinds.count(EntryType.DOC_SNAPSHOT) == 5
    fresh = make_db(signer, keys, store)
    assert all(
        d.get_data()["n"] == 1 for d in await fresh.get_documents([d.get_id() for d in docs])
    )


@pytest.fixture
async def ondisk(tmp_path: Path) -> AsyncIterator[Path]:
    yield tmp_path / "store"


async def test_get_documents_reads_a_reopened_store_in_order(
    ondisk: Path, signer: KeySigner, keys: StaticKeys
) -> None:
    store = await OnDiskStore.open(ondisk)
    try:
        db = make_db(signer, keys, store, options=DBOptions(snapshot_every=3))
        docs = await db.create_documents([{"i": i, "tags": ["a"]} for i in range(30)])

        def edit(d: MindooDoc) -> None:
            d.get_data()["tags"].append("b")

        for _ in range(4):  # past a snapshot for every document
            await db.change_docs([(d, edit) for d in docs])
        deleted = docs[5].get_id()
        await db.delete_document(deleted)
    finally:
        await store.close()
    store = await OnDiskStore.open(ondisk)
    try:
        db = make_db(signer, keys, store)
        ids = [d.get_id() for d in reversed(docs)] + [docs[0].get_id()]
        got = await db.get_documents(ids)
        assert [d.get_id() for d in got] == ids
        assert [d.get_data()["i"] for d in got] == [*range(29, -1, -1), 0]
        assert all(d.get_data()["tags"] == ["a", "b", "b", "b", "b"] for d in got)
        assert [d.get_id() for d in got if d.is_deleted()] == [deleted]
        single = await make_db(signer, keys, store).get_document(docs[7].get_id())
        assert single.get_data() == got[22].get_data()
        with pytest.raises(DocumentNotFoundError, match=r"documents\[1\] 'nosuch'"):
            await make_db(signer, keys, store).get_documents([docs[0].get_id(), "nosuch"])
        assert await db.get_documents([]) == []
    finally:
        await store.close()


async def test_batches_over_many_documents_in_slices(
    ondisk: Path, signer: KeySigner, keys: StaticKeys
) -> None:
    """More documents than the cache and than one read slice still come back whole."""
    store = await OnDiskStore.open(ondisk)
    try:
        db: MindooDB = make_db(signer, keys, store, options=DBOptions(cache_size=100))
        docs = await db.create_documents([{"i": i} for i in range(1200)])
        fresh = make_db(signer, keys, store, options=DBOptions(cache_size=100))
        got = await fresh.get_documents([d.get_id() for d in docs])
        assert [d.get_data()["i"] for d in got] == list(range(1200))

        def bump(d: MindooDoc) -> None:
            d.get_data()["i"] += 1

        await fresh.change_docs([(d, bump) for d in docs])
        again = make_db(signer, keys, store)
        got = await again.get_documents([d.get_id() for d in docs])
        assert [d.get_data()["i"] for d in got] == list(range(1, 1201))
    finally:
        await store.close()


async def test_a_failure_in_a_later_slice_names_its_document_and_leaves_nothing_running(
    ondisk: Path, signer: KeySigner, keys: StaticKeys
) -> None:
    """Slices after the first are read ahead; an error stops the batch with the read-ahead
    awaited (the test harness fails a leaked task) and names the document of its own slice."""
    store = await OnDiskStore.open(ondisk)
    try:
        db = make_db(signer, keys, store)
        ids = [d.get_id() for d in await db.create_documents([{"i": i} for i in range(1100)])]
        asked = [*ids[:1050], "nosuch", *ids[1050:]]  # in the last slice
        with pytest.raises(DocumentNotFoundError, match=r"documents\[1050\] 'nosuch'"):
            await make_db(signer, keys, store).get_documents(asked)
        early = [*ids[:10], "nosuch", *ids[10:]]  # in the first: the second is being read
        with pytest.raises(DocumentNotFoundError, match=r"documents\[10\] 'nosuch'"):
            await make_db(signer, keys, store).get_documents(early)
        got = await make_db(signer, keys, store).get_documents(ids)
        assert [d.get_data()["i"] for d in got] == list(range(1100))
    finally:
        await store.close()


def _flip(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    where = data.find(needle)
    assert where >= 0 and data.count(needle) == 1
    data[where + 5] ^= 0x55
    path.write_bytes(bytes(data))


async def test_a_batch_read_reads_around_a_damaged_payload(
    ondisk: Path, signer: KeySigner, keys: StaticKeys
) -> None:
    """A payload found bad in the batch's first query costs that entry only: the document is
    read without it, as a single read does; a document left without its create says so."""
    store = await OnDiskStore.open(ondisk, OnDiskStoreOptions(fsync=False))
    try:
        db = make_db(signer, keys, store)
        docs = await db.create_documents([{"n": 0}, {"n": 0}, {"n": 0}])

        def bump(d: MindooDoc) -> None:
            d.get_data()["n"] = 1

        await db.change_docs([(d, bump) for d in docs])
        metas = {d.get_id(): await store.find_new_entries_for_doc([], d.get_id()) for d in docs}
        change = next(m for m in metas[docs[0].get_id()] if m.entry_type is EntryType.DOC_CHANGE)
        create = next(m for m in metas[docs[2].get_id()] if m.entry_type is EntryType.DOC_CREATE)
        victims = await store.get_entries([change.id, create.id])
    finally:
        await store.close()
    for victim in victims:
        _flip(ondisk / "store.sqlite", victim.encrypted_data[40:80])
    store = await OnDiskStore.open(ondisk, OnDiskStoreOptions(fsync=False))
    try:
        ids = [d.get_id() for d in docs]
        got = await make_db(signer, keys, store).get_documents(ids[:2])
        assert [d.get_data()["n"] for d in got] == [0, 1]  # the change was lost, not the doc
        with pytest.raises(QuarantinedEntryError, match=rf"documents\[2\] '{ids[2]}'"):
            await make_db(signer, keys, store).get_documents(ids)
        assert set(store.health().quarantined_ids) == {change.id, create.id}
    finally:
        await store.close()


async def test_cold_batch_reads_keep_counters_texts_and_nesting(
    signer: KeySigner, keys: StaticKeys
) -> None:
    """The cold path (one load of the changes, a walk without counter lookups) must still
    find the documents that hold counters and read them through the counter index."""
    store = InMemoryStore()
    db = make_db(signer, keys, store)
    plain = {"t": Text("doc 1234"), "l": [1, [2.5, None], {"b": b"x"}], "ok": True}
    docs = await db.create_documents([plain, {"visits": Counter(3), "l": [Counter(1)]}])

    def more(d: MindooDoc) -> None:
        if "visits" in d.get_data():
            d.get_data()["visits"].increment(2)

    await db.change_docs([(d, more) for d in docs])
    got = await make_db(signer, keys, store).get_documents([d.get_id() for d in docs])
    assert got[0].get_data() == plain
    assert got[1].get_data() == {"visits": 5, "l": [1]}
    assert isinstance(got[1].get_data()["visits"], Counter)
    fresh = make_db(signer, keys, store)
    (again,) = await fresh.get_documents([docs[1].get_id()])
    await fresh.change_doc(again, more)  # a cold-loaded counter still increments
    assert (await make_db(signer, keys, store).get_document(docs[1].get_id())).get_data()[
        "visits"
    ] == 7


def _typed(value: object) -> object:
    """``value`` with the type of every part, so equal values of other types differ."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


async def test_cold_batch_reads_match_single_reads_value_for_value(
    ondisk: Path, signer: KeySigner, keys: StaticKeys
) -> None:
    """The batch path (chain plans, one load, the walk by codes, the store's doc query) gives
    what one-by-one reads give: counters, texts, lists, nesting, deletions, damage."""
    store = await OnDiskStore.open(ondisk, OnDiskStoreOptions(fsync=False))
    try:
        db = make_db(signer, keys, store)
        fields = [
            {"t": Text("doc 1234"), "l": [1, [2.5, None], {"b": b"x"}], "ok": True, "n": -3},
            {"visits": Counter(3), "l": [Counter(1), "x"], "m": {"deep": {"c": Counter(-2)}}},
            {"title": "gone", "n": 2**40},
            {"title": "damaged", "n": 0},
        ]
        docs = await db.create_documents(fields)

        def more(d: MindooDoc) -> None:
            data = d.get_data()
            if "visits" in data:
                data["visits"].increment(2)
            data["n"] = 7
            data.setdefault("l", []).append({"k": Text("v")})

        await db.change_docs([(d, more) for d in docs])
        await db.delete_document(docs[2].get_id())
        (damaged,) = [
            m
            for m in await store.find_new_entries_for_doc([], docs[3].get_id())
            if m.entry_type is EntryType.DOC_CHANGE
        ]
        (victim,) = await store.get_entries([damaged.id])
    finally:
        await store.close()
    _flip(ondisk / "store.sqlite", victim.encrypted_data[40:80])
    store = await OnDiskStore.open(ondisk, OnDiskStoreOptions(fsync=False))
    try:
        ids = [d.get_id() for d in docs]
        batch = await make_db(signer, keys, store).get_documents(ids)
        single = [await make_db(signer, keys, store).get_document(i) for i in ids]
        for got, want in zip(batch, single, strict=True):
            assert _typed(dict(got.get_data())) == _typed(dict(want.get_data()))
            assert (got.is_deleted(), got.get_last_modified()) == (
                want.is_deleted(),
                want.get_last_modified(),
            )
        assert [d.is_deleted() for d in batch] == [False, False, True, False]
        assert batch[1].get_data()["visits"] == 5 and batch[3].get_data()["n"] == 0
        assert store.health().quarantined_ids == (damaged.id,)
    finally:
        await store.close()


def test_read_slices_start_small_grow_and_keep_every_id_in_order() -> None:
    for count in (0, 1, FIRST_READ_SLICE, FIRST_READ_SLICE + 1, 3_000):
        ids = [f"d{i}" for i in range(count)]
        slices = read_slices(ids)
        assert [i for part in slices for i in part] == ids
        assert all(0 < len(part) <= READ_SLICE for part in slices)
        assert [len(part) for part in slices[:3]] == [
            len(part) for part in [ids[:64], ids[64:320], ids[320:820]] if part
        ]
