"""MindooDB over real stores, keys and signatures: writes, reads, trust, snapshots, sync."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from automerge.core import Document, extract

from mindood.crypto import decrypt_with_any
from mindood.db import DBOptions, KeyBagKeys, MindooDB, MindooDoc, OpenTrust, signer_for
from mindood.db.doc import _UserView, user_data
from mindood.db.plan import plan_document
from mindood.db.trust import TrustPolicy
from mindood.document import Counter, Text
from mindood.errors import DocumentDeletedError, DocumentNotFoundError, KeyNotFoundError
from mindood.identity import UnlockedUserId, create_user_id, unlock
from mindood.keybag import KeyBag
from store.entry import EntryType, StoreEntry
from store.memory import InMemoryStore
from tests.db_helpers import Allow
from tests.entries import tampered

TENANT = "acme"


@pytest.fixture(scope="module")
def users() -> tuple[UnlockedUserId, UnlockedUserId]:
    alice = unlock(create_user_id("cn=alice/o=acme", "pw"), "pw")
    bob = unlock(create_user_id("cn=bob/o=acme", "pw"), "pw")
    return alice, bob


@pytest.fixture(scope="module")
def key_bag(users: tuple[UnlockedUserId, UnlockedUserId]) -> KeyBag:
    bag = KeyBag.for_user(users[0].private, "pw")
    bag.create_and_store_symmetric_key(TENANT, "default")
    bag.create_and_store_symmetric_key(TENANT, "secret")
    return bag


def _db(
    user: UnlockedUserId,
    bag: KeyBag,
    store: InMemoryStore | None = None,
    *,
    trust: TrustPolicy | None = None,
    options: DBOptions | None = None,
) -> MindooDB:
    return MindooDB(
        tenant_id=TENANT,
        db_id="todos",
        store=store or InMemoryStore(),
        signer=signer_for(user),
        keys=KeyBagKeys(bag, TENANT),
        trust=trust or OpenTrust(),
        options=options,
    )


async def test_quick_start_round_trip(users: Any, key_bag: KeyBag) -> None:
    db = _db(users[0], key_bag)
    doc = await db.create_document()
    await db.change_doc(doc, lambda d: d.get_data().update(title="Buy milk", done=False))
    loaded = await db.get_document(doc.get_id())
    assert loaded.get_data() == {"title": "Buy milk", "done": False}
    # A second handle on the same store materialises it from the entries alone.
    other = _db(users[0], key_bag, db.get_store())  # type: ignore[arg-type]
    assert (await other.get_document(doc.get_id())).get_data() == {
        "title": "Buy milk",
        "done": False,
    }


async def test_every_change_is_one_signed_encrypted_entry(users: Any, key_bag: KeyBag) -> None:
    store = InMemoryStore()
    db = _db(users[0], key_bag, store)
    doc = await db.create_document({"n": 1})
    await db.change_doc(doc, lambda d: d.get_data().update(n=2))
    await db.change_doc(doc, lambda d: None)  # no-op: no entry
    metas = await store.find_new_entries_for_doc([], doc.get_id())
    assert [m.entry_type for m in metas] == [EntryType.DOC_CREATE, EntryType.DOC_CHANGE]
    assert metas[1].dependency_ids == (metas[0].id,)
    entries = await store.get_entries([m.id for m in metas])
    assert all(b"Buy" not in e.encrypted_data for e in entries)
    assert all(m.created_by_public_key == users[0].private.signing_public_key for m in metas)


async def test_every_change_stamps_last_modified_as_the_reference(
    users: Any, key_bag: KeyBag
) -> None:
    """Reference apps show ``_lastModified`` from the document itself: each edit writes it."""
    store = InMemoryStore()
    db = _db(users[0], key_bag, store)
    doc = await db.create_document({"n": 1})
    await db.change_doc(doc, lambda d: d.get_data().update(n=2))
    metas = await store.find_new_entries_for_doc([], doc.get_id())
    entries = {e.metadata.entry_type: e for e in await store.get_entries([m.id for m in metas])}
    keys = key_bag.get_all(TENANT, "default")

    def values(*kinds: EntryType) -> dict[str, Any]:
        chunks = [decrypt_with_any(keys, entries[k].encrypted_data) for k in kinds]
        data: dict[str, Any] = extract(Document.load(b"".join(chunks)))
        return data

    assert "_lastModified" not in values(EntryType.DOC_CREATE)  # as the reference's create
    stamped = values(EntryType.DOC_CREATE, EntryType.DOC_CHANGE)["_lastModified"]
    change = entries[EntryType.DOC_CHANGE].metadata
    assert entries[EntryType.DOC_CREATE].metadata.created_at <= stamped <= change.created_at
    assert (await db.get_document(doc.get_id())).get_data() == {"n": 2}


async def test_last_modified_stamp_is_the_entry_created_at_when_the_clock_moves(
    users: Any, key_bag: KeyBag, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stamp is taken before the change is committed and the entry built; a millisecond
    passing in between gave the entry a createdAt one after its ``_lastModified``."""
    import time

    ticks = iter(range(1_800_000_000_000, 1_900_000_000_000))
    monkeypatch.setattr(time, "time_ns", lambda: next(ticks) * 1_000_000)  # 1 ms per read
    store = InMemoryStore()
    db = _db(users[0], key_bag, store)
    doc = await db.create_document({"n": 1})
    for n in (2, 3):

        def put(d: MindooDoc, n: int = n) -> None:
            d.get_data()["n"] = n

        await db.change_doc(doc, put)
    await db.change_doc(doc, lambda d: None)  # no entry: takes no time either
    await db.change_doc(doc, lambda d: d.get_data().update(n=4))
    metas = await store.find_new_entries_for_doc([], doc.get_id())
    keys = key_bag.get_all(TENANT, "default")
    chunks: list[bytes] = []
    stored = await store.get_entries([m.id for m in metas])
    for entry in sorted(stored, key=lambda e: e.metadata.created_at):
        chunks.append(decrypt_with_any(keys, entry.encrypted_data))
        if entry.metadata.entry_type is EntryType.DOC_CHANGE:
            data = extract(Document.load(b"".join(chunks)))
            assert isinstance(data, dict) and data["_lastModified"] == entry.metadata.created_at
    times = sorted(m.created_at for m in metas)
    assert len(set(times)) == len(times) == 4
    loaded = await db.get_document(doc.get_id())
    assert loaded.get_system_field("_lastModified") == loaded.get_last_modified() == times[-1]


async def test_read_only_documents_answer_get_system_field(users: Any, key_bag: KeyBag) -> None:
    """``get_data()`` leaves system fields out; ``get_system_field`` must still read them."""
    db = _db(users[0], key_bag)
    doc = await db.create_document({"n": 1})
    seen: dict[str, Any] = {}

    def edit(d: MindooDoc) -> None:
        d.get_data()["n"] = 2
        seen["live"] = d.get_system_field("_attachments") == []  # the live list

    await db.change_doc(doc, edit)
    loaded = await db.get_document(doc.get_id())
    stamp = loaded.get_system_field("_lastModified")
    assert isinstance(stamp, int) and stamp == loaded.get_last_modified()
    assert loaded.get_system_field("_attachments") == [] and seen["live"] is True
    assert loaded.get_system_field("_nope") is None and "_lastModified" not in loaded.get_data()
    loaded.get_system_field("_attachments").append("x")  # a copy: the document is unchanged
    assert loaded.get_system_field("_attachments") == []


async def test_batch_reads_set_system_fields_aside_like_single_reads(
    users: Any, key_bag: KeyBag
) -> None:
    """``get_documents`` hands each fresh read over uncopied (``user_data(owned=True)``): the
    user's fields keep their order, the system fields stay readable, and the cached state
    still reads in full afterwards."""
    store = InMemoryStore()
    db = _db(users[0], key_bag, store)
    doc = await db.create_document({"b": 0, "a": [1, 2], "_attachments_not": "user"})
    await db.change_doc(doc, lambda d: d.get_data().update(b=1))  # stamps _lastModified
    fresh = _db(users[0], key_bag, store)
    (batch,) = await fresh.get_documents([doc.get_id()])
    single = await fresh.get_document(doc.get_id())
    assert list(batch.get_data()) == list(single.get_data()) == ["_attachments_not", "a", "b"]
    assert (
        batch.get_data() == single.get_data() == {"b": 1, "a": [1, 2], "_attachments_not": "user"}
    )
    for name in ("_attachments", "_lastModified"):
        assert batch.get_system_field(name) == single.get_system_field(name) is not None
    assert batch.get_system_field("_nope") is None
    full = user_data({"x": 1, "_lastModified": 5, "y": 2}, owned=True)
    assert full == {"x": 1, "y": 2} and list(full) == ["x", "y"]
    assert isinstance(full, _UserView) and full.system == {"_lastModified": 5}
    plain = user_data({"x": 1}, owned=True)
    assert isinstance(plain, _UserView) and plain.system == {}


async def test_async_callbacks_nested_values_text_and_counters(users: Any, key_bag: KeyBag) -> None:
    db = _db(users[0], key_bag)
    doc = await db.create_document()

    async def edit(d: MindooDoc) -> None:
        data = d.get_data()
        data["tags"] = ["a", "b"]
        await asyncio.sleep(0)
        data["address"] = {"city": "Bonn", "zip": "53111"}
        data["notes"] = Text("hello")
        data["visits"] = Counter(3)

    await db.change_doc(doc, edit)

    def more(d: MindooDoc) -> None:
        data = d.get_data()
        data["tags"].append("c")
        data.text("notes").splice(5, 0, " world")
        data["visits"].increment(2)

    await db.change_doc(doc, more)
    data = (await db.get_document(doc.get_id())).get_data()
    assert data == {
        "tags": ["a", "b", "c"],
        "address": {"city": "Bonn", "zip": "53111"},
        "notes": "hello world",
        "visits": 5,
    }


async def test_a_failing_callback_writes_nothing(users: Any, key_bag: KeyBag) -> None:
    store = InMemoryStore()
    db = _db(users[0], key_bag, store)
    doc = await db.create_document({"n": 1})
    before = await store.get_all_ids()

    def boom(d: MindooDoc) -> None:
        d.get_data()["n"] = 99
        raise RuntimeError("app bug")

    with pytest.raises(RuntimeError):
        await db.change_doc(doc, boom)
    assert await store.get_all_ids() == before
    assert (await db.get_document(doc.get_id())).get_data() == {"n": 1}
    await db.change_doc(doc, lambda d: d.get_data().update(n=2))  # still usable
    assert (await db.get_document(doc.get_id())).get_data() == {"n": 2}


async def test_concurrent_edits_through_a_shared_store_converge(
    users: Any, key_bag: KeyBag
) -> None:
    store = InMemoryStore()
    alice, bob = _db(users[0], key_bag, store), _db(users[1], key_bag, store)
    doc = await alice.create_document({"items": []})
    await bob.sync_store_changes()
    await alice.change_doc(doc.get_id(), lambda d: d.get_data().update(owner="alice"))
    await bob.change_doc(doc.get_id(), lambda d: d.get_data().update(status="open"))
    await alice.change_doc(doc.get_id(), lambda d: d.get_data()["items"].append("milk"))
    await bob.change_doc(doc.get_id(), lambda d: d.get_data()["items"].append("eggs"))
    await alice.sync_store_changes()
    await bob.sync_store_changes()
    a = (await alice.get_document(doc.get_id())).get_data()
    b = (await bob.get_document(doc.get_id())).get_data()
    assert a == b
    assert a["owner"] == "alice" and a["status"] == "open"
    assert sorted(a["items"]) == ["eggs", "milk"]


async def test_snapshots_are_written_and_used(users: Any, key_bag: KeyBag) -> None:
    store = InMemoryStore()
    db = _db(users[0], key_bag, store, options=DBOptions(snapshot_every=5))
    doc = await db.create_document({"n": 0})
    for i in range(1, 13):
        await db.change_doc(doc, lambda d, i=i: d.get_data().update(n=i))
    snaps = await store.find_entries(EntryType.DOC_SNAPSHOT, None, None)
    assert len(snaps) == 2
    fresh = _db(users[0], key_bag, store)
    assert (await fresh.get_document(doc.get_id())).get_data() == {"n": 12}
    # Loading starts from the newest snapshot and replays only what came after it.
    plan = plan_document(doc.get_id(), await store.find_new_entries_for_doc([], doc.get_id()), bool)
    assert (
        plan.snapshot is not None and plan.snapshot.id == max(snaps, key=lambda m: m.created_at).id
    )
    assert len(plan.changes) == 3  # 13 replay entries, the second snapshot covers 10


async def test_delete_and_listing(users: Any, key_bag: KeyBag) -> None:
    db = _db(users[0], key_bag)
    keep = await db.create_document({"k": 1})
    gone = await db.create_document({"k": 2})
    await db.delete_document(gone)
    assert await db.get_all_document_ids() == [keep.get_id()]
    deleted = await db.get_document(gone.get_id())
    assert deleted.is_deleted() and deleted.get_data() == {"k": 2}
    with pytest.raises(DocumentDeletedError):
        await db.change_doc(gone, lambda d: d.get_data().update(k=3))
    with pytest.raises(DocumentNotFoundError):
        await db.get_document("nosuchdoc")


async def test_custom_ids_converge_across_offline_devices(users: Any, key_bag: KeyBag) -> None:
    a, b = _db(users[0], key_bag), _db(users[1], key_bag)
    await a.create_document({"from_a": True}, doc_id="settings")
    await b.create_document({"from_b": True}, doc_id="settings")
    await a.pull_changes_from(b)
    await b.pull_changes_from(a)
    doc_a = await a.get_document("settings")
    doc_b = await b.get_document("settings")
    assert doc_a.get_data() == doc_b.get_data() == {"from_a": True, "from_b": True}
    assert await a.get_all_document_ids() == ["settings"]


async def test_reading_without_the_key_says_no_key(users: Any, key_bag: KeyBag) -> None:
    store = InMemoryStore()
    db = _db(users[0], key_bag, store)
    doc = await db.create_encrypted_document("secret", {"pin": "1234"})
    keyless_bag = KeyBag.for_user(users[1].private, "pw")
    keyless_bag.set(TENANT, "default", key_bag.get(TENANT, "default"))
    reader = _db(users[1], keyless_bag, store)
    with pytest.raises(KeyNotFoundError, match="no key"):
        await reader.get_document(doc.get_id())
    assert await reader.get_all_document_ids() == [doc.get_id()]  # metadata needs no key


async def test_untrusted_entries_are_kept_and_applied_once_granted(
    users: Any, key_bag: KeyBag
) -> None:
    alice_pem = users[0].private.signing_public_key
    bob_pem = users[1].private.signing_public_key
    store = InMemoryStore()
    trust = Allow({alice_pem})
    alice = _db(users[0], key_bag, store, trust=trust)
    bob = _db(users[1], key_bag, store)
    doc = await alice.create_document({"v": "alice"})
    await bob.sync_store_changes()
    await bob.change_doc(doc.get_id(), lambda d: d.get_data().update(v="bob"))
    await alice.sync_store_changes()
    assert (await alice.get_document(doc.get_id())).get_data() == {"v": "alice"}
    trust.authors.add(bob_pem)
    trust.bump()
    assert (await alice.get_document(doc.get_id())).get_data() == {"v": "bob"}


class ForgingStore(InMemoryStore):
    def __init__(self, forged: dict[str, StoreEntry]) -> None:
        super().__init__("forging")
        self.forged = forged

    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        return [self.forged.get(e.id, e) for e in await super().get_entries(ids)]


async def test_pull_rejects_forged_entries_and_keeps_the_rest(users: Any, key_bag: KeyBag) -> None:
    source_store = ForgingStore({})
    writer = _db(users[0], key_bag, source_store)
    docs = [await writer.create_document({"i": i}) for i in range(5)]
    victim = (await source_store.find_new_entries_for_doc([], docs[2].get_id()))[0]
    [entry] = await InMemoryStore.get_entries(source_store, [victim.id])
    source_store.forged[victim.id] = tampered(entry, created_at=entry.metadata.created_at - 1)
    reader = _db(users[0], key_bag)
    changed: list[set[str]] = []
    reader.on_change(changed.append)
    result = await reader.pull_changes_from(source_store)
    assert [i for i, _ in result.rejected] == [victim.id]
    assert sorted(await reader.get_all_document_ids()) == sorted(
        d.get_id() for d in docs if d is not docs[2]
    )
    assert changed and changed[-1] == {d.get_id() for d in docs if d is not docs[2]}


async def test_pull_and_push_between_databases(users: Any, key_bag: KeyBag) -> None:
    a, b = _db(users[0], key_bag), _db(users[1], key_bag)
    doc = await a.create_document({"contacts": 1})
    await b.pull_changes_from(a)
    await b.change_doc(doc.get_id(), lambda d: d.get_data().update(contacts=2))
    pushed = await b.push_changes_to(a)
    assert pushed.transferred == 1
    assert (await a.get_document(doc.get_id())).get_data() == {"contacts": 2}
    idle = await b.push_changes_to(a)
    assert idle.transferred == 0 and idle.scanned == 0
