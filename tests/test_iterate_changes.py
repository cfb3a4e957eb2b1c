"""The change feed: modification order, resuming, tombstones, restarts, cost, re-emission."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from mindood.db import ChangeCursor, DBOptions, InvalidCursorError, MindooDB, MindooDoc
from mindood.tenant.trust import DirectoryTrust, KeyStates
from store.base import DocEntries, ScanCursor, ScanFilters, ScanPage
from store.entry import StoreEntry
from store.memory import InMemoryStore
from store.ondisk.options import OnDiskStoreOptions
from store.ondisk.store import OnDiskStore
from tests.db_helpers import Allow, KeySigner, StaticKeys, default_keys, make_db

DOCS = 1_200


class CountingStore(OnDiskStore):
    """An on-disk store that counts what the feed scans and which payloads it reads."""

    scanned = 0
    fetched: list[str]

    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        page = await super().scan_entries_since(cursor, limit, filters)
        self.scanned += len(page.entries)
        return page

    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        self.fetched.extend(ids)
        return await super().get_entries(ids)

    async def get_payloads(self, ids: Sequence[str]) -> dict[str, bytes]:
        self.fetched.extend(ids)
        return await super().get_payloads(ids)

    async def read_docs(self, doc_ids: Sequence[str]) -> DocEntries:
        found = await super().read_docs(doc_ids)
        self.fetched.extend(found.payloads)
        return found


async def _open(path: Path) -> CountingStore:
    store = await CountingStore.open(path, OnDiskStoreOptions(fsync=False))
    assert isinstance(store, CountingStore)
    store.fetched = []
    return store


async def _drain(
    db: MindooDB, cursor: ChangeCursor | None, limit: int | None = None
) -> tuple[list[MindooDoc], ChangeCursor | None]:
    docs: list[MindooDoc] = []
    async for doc, position in db.iterate_changes_since(cursor):
        docs.append(doc)
        cursor = position
        if limit is not None and len(docs) == limit:
            break
    return docs, cursor


async def test_feed_order_resume_tombstones_and_restart(tmp_path: Path) -> None:
    signer, keys = KeySigner(), default_keys()
    options = DBOptions(snapshot_every=0)
    store = await _open(tmp_path / "docs")
    db = make_db(signer, keys, store, options=options)
    created = [(await db.create_document({"i": i})).get_id() for i in range(DOCS)]

    # Everything, in modification (here: creation) order; the count needs no payload.
    store.fetched.clear()
    assert await db.count_changes_since(None) == DOCS
    assert store.fetched == []
    first, cursor = await _drain(db, None, limit=500)
    assert [d.get_id() for d in first] == created[:500]
    assert [d.get_data()["i"] for d in first[:3]] == [0, 1, 2]
    # Breaking out early read the payloads of what was handed out, nothing of the tail.
    assert {i.split("_d_")[0] for i in store.fetched} == set(created[:500])

    # Resume mid-way: exactly the rest, nothing twice.
    assert await db.count_changes_since(cursor) == DOCS - 500
    rest, cursor = await _drain(db, cursor)
    assert [d.get_id() for d in rest] == created[500:]
    assert cursor is not None and (await _drain(db, cursor))[0] == []

    # Edits and deletions: the touched documents once each, newest change last, deletions as
    # tombstones. Resuming costs the few new entries, not a walk over the database.
    await db.change_doc(created[7], lambda d: d.get_data().update(i="seven"))
    await db.delete_document(created[3])
    await db.change_doc(created[900], lambda d: d.get_data().update(i="nine hundred"))
    await db.change_doc(created[7], lambda d: d.get_data().update(again=True))
    await db.delete_document(created[1100])
    store.scanned = 0
    changed, cursor = await _drain(db, cursor)
    assert store.scanned <= 10
    assert [d.get_id() for d in changed] == [created[i] for i in (3, 900, 7, 1100)]
    assert [d.is_deleted() for d in changed] == [True, False, False, True]
    assert changed[2].get_data() == {"i": "seven", "again": True}
    saved = cursor.encode() if cursor else ""
    await store.close()

    # A restart: new store object and database handle, the cursor read back from text.
    store = await _open(tmp_path / "docs")
    db = make_db(signer, keys, store, options=options)
    resumed = ChangeCursor.decode(saved)
    assert await db.count_changes_since(resumed) == 0
    await db.change_doc(created[42], lambda d: d.get_data().update(after_restart=True))
    store.scanned = 0
    after, _ = await _drain(db, resumed)
    assert [d.get_id() for d in after] == [created[42]] and store.scanned <= 3
    assert after[0].get_data() == {"i": 42, "after_restart": True}
    await store.close()


async def test_documents_written_by_others_and_the_latest_cursor() -> None:
    keys, shared = default_keys(), InMemoryStore()
    alice = make_db(KeySigner(), keys, shared)
    bob = make_db(KeySigner(), keys, shared)
    doc = await alice.create_document({"n": 1})
    assert (await bob.get_document(doc.get_id())).get_data() == {"n": 1}  # now cached
    start = await bob.get_latest_change_cursor()
    assert (await _drain(bob, start))[0] == []
    await alice.change_doc(doc, lambda d: d.get_data().update(n=2))
    # Bob's handle has the document cached; the feed still hands out the new state.
    seen, _ = await _drain(bob, start)
    assert [d.get_data() for d in seen] == [{"n": 2}]


async def test_a_trust_change_or_a_new_epoch_emits_everything_again() -> None:
    alice, bob = KeySigner(), KeySigner()
    keys, store = default_keys(), InMemoryStore()
    trust = Allow({alice.public_pem})
    db = make_db(alice, keys, store, trust=trust)
    bob_db = make_db(bob, keys, store)
    mine = await db.create_document({"by": "alice"})
    theirs = await bob_db.create_document({"by": "bob"})
    seen, cursor = await _drain(db, None)
    assert [d.get_id() for d in seen] == [mine.get_id()]  # bob is not trusted (yet)

    trust.authors.add(bob.public_pem)
    trust.bump()
    # Bob's document became visible without any new entry: the old cursor is not resumed.
    assert await db.count_changes_since(cursor) == 2
    seen, cursor = await _drain(db, cursor)
    assert {d.get_id() for d in seen} == {mine.get_id(), theirs.get_id()}

    await store.clear_all_local_data()
    assert await db.count_changes_since(cursor) == 0  # a new, empty epoch
    await db.create_document({"fresh": True})
    assert await db.count_changes_since(cursor) == 1


async def test_unreadable_documents_come_as_tombstones() -> None:
    store = InMemoryStore()
    writer = make_db(KeySigner(), StaticKeys(default=b"k" * 32, secret=b"s" * 32), store)
    secret = await writer.create_encrypted_document("secret", {"pin": 1})
    reader = make_db(KeySigner(), StaticKeys(default=b"k" * 32), store)
    seen, _ = await _drain(reader, None)
    assert [(d.get_id(), d.is_deleted(), dict(d.get_data())) for d in seen] == [
        (secret.get_id(), True, {})
    ]


def test_cursor_text_round_trips_and_garbage_is_refused() -> None:
    cursor = ChangeCursor("epoch", 12, "doc", "open")
    assert ChangeCursor.decode(cursor.encode()) == cursor
    for bad in ("", "[]", '[2,"e",1,"d","t"]', '[1,"e",-1,"d","t"]', "{"):
        with pytest.raises(InvalidCursorError):
            ChangeCursor.decode(bad)


async def test_changes_made_while_iterating_come_in_the_next_round() -> None:
    db = make_db(KeySigner(), default_keys())
    first = [(await db.create_document({"i": i})).get_id() for i in range(3)]
    seen: list[str] = []
    cursor: ChangeCursor | None = None
    async for doc, position in db.iterate_changes_since(None):
        seen.append(doc.get_id())
        cursor = position
        if len(seen) == 1:
            await db.change_doc(first[0], lambda d: d.get_data().update(edited=True))
            late = await db.create_document({"late": True})
    assert seen == first  # this round ends where the store stood when it began
    again = [d async for d, _ in db.iterate_changes_since(cursor)]
    assert [d.get_id() for d in again] == [first[0], late.get_id()]
    assert again[0].get_data() == {"i": 0, "edited": True}


def test_directory_trust_fingerprints_are_stable_names_of_the_key_states() -> None:
    first, second = DirectoryTrust("admin-pem"), DirectoryTrust("admin-pem")
    assert first.fingerprint == second.fingerprint  # same answers in another process
    states = KeyStates(active=frozenset({"alice-key"}))
    first.update(states)
    assert first.fingerprint != second.fingerprint
    second.update(states)
    assert first.fingerprint == second.fingerprint and first.generation == second.generation
