"""The write path's shortcuts give what the general path gives: results, attachments, entries.

A write returns its document without reading it back (``DocReader.result``); its data is read
when asked, and always shows the state that write made. Each write reads only the attachment
list of the document, not the whole document.
"""

from __future__ import annotations

from typing import Any

import pytest

from mindood.db import DBOptions, MindooDB, MindooDoc
from mindood.db.entries import UnsignedEntry, seal_doc_entry
from mindood.document import AutomergeDoc, Counter, Text
from store.entry import AttachmentRef, EntryType, StoreEntry
from store.memory import InMemoryStore
from store.signing import check_entry
from tests.db_helpers import KeySigner, default_keys, make_db

KEYS = default_keys()


def _db(**options: Any) -> MindooDB:
    return make_db(KeySigner(), KEYS, options=DBOptions(**options))


async def _fresh(db: MindooDB, doc_id: str) -> dict[str, Any]:
    """The document as a handle with nothing cached reads it from the entries."""
    other = make_db(KeySigner(), KEYS, db.get_store(), db.get_attachment_store())
    return dict((await other.get_document(doc_id)).get_data())


def _set(**fields: Any) -> Any:
    def change(d: MindooDoc) -> None:
        d.get_data().update(fields)

    return change


async def test_a_write_result_shows_that_write_even_read_after_later_changes() -> None:
    db = _db()
    created = await db.create_document({"title": "one", "n": 1, "tags": ["a"]})
    first = await db.change_doc(created.get_id(), _set(n=2))
    second = await db.change_doc(created.get_id(), _set(n=3, title="three"))
    # Read only now: each shows its own write, not the document as it is now.
    assert created.get_data() == {"title": "one", "n": 1, "tags": ["a"]}
    assert first.get_data() == {"title": "one", "n": 2, "tags": ["a"]}
    assert second.get_data() == {"title": "three", "n": 3, "tags": ["a"]}
    assert isinstance(second.get_data()["title"], Text)
    assert first.get_system_field("_lastModified") == first.get_last_modified()
    assert second.get_data() == await _fresh(db, created.get_id())


async def test_write_results_are_private_copies() -> None:
    db = _db()
    doc = await db.create_document({"tags": ["a"]})
    doc.get_data()["tags"].append("mutated")
    again = await db.change_doc(doc.get_id(), _set(n=1))
    assert again.get_data() == {"tags": ["a"], "n": 1}
    again.get_data()["n"] = 99
    assert (await db.get_document(doc.get_id())).get_data() == {"tags": ["a"], "n": 1}


async def test_write_results_keep_their_data_when_the_state_leaves_the_cache() -> None:
    db = _db(cache_size=1)
    first = await db.create_document({"n": 1})
    changed = await db.change_doc(first.get_id(), _set(n=2))
    for i in range(3):  # each evicts the one before
        await db.create_document({"other": i})
    await db.change_doc(first.get_id(), _set(n=3))  # read back from the store, then changed
    assert first.get_data() == {"n": 1}
    assert changed.get_data() == {"n": 2}


async def test_write_results_read_inside_a_later_change_show_their_own_write() -> None:
    db = _db()
    created = await db.create_document({"title": "one", "n": 1})
    changed = await db.change_doc(created, _set(n=2))
    seen: list[dict[str, Any]] = []

    async def peek(d: MindooDoc) -> None:
        d.get_data()["n"] = 3  # the change is open while the earlier results are read
        seen.extend([dict(created.get_data()), dict(changed.get_data())])

    await db.change_doc(created, peek)
    assert seen == [{"title": "one", "n": 1}, {"title": "one", "n": 2}]


async def test_write_results_of_a_batch_show_the_batch_after_the_next_one() -> None:
    db = _db()
    docs = await db.create_documents([{"title": f"doc {i}", "n": 0} for i in range(20)])
    changed = await db.change_docs([(d, _set(n=1, tags=["x"])) for d in docs])
    await db.change_docs([(d, _set(n=2, title="new")) for d in docs])
    assert [d.get_data() for d in docs] == [{"title": f"doc {i}", "n": 0} for i in range(20)]
    assert [d.get_data() for d in changed] == [
        {"title": f"doc {i}", "n": 1, "tags": ["x"]} for i in range(20)
    ]
    assert isinstance(changed[3].get_data()["title"], Text)


async def test_write_results_keep_their_data_when_a_later_change_makes_a_counter() -> None:
    db = _db()
    created = await db.create_document({"n": 1})
    plain = await db.change_doc(created, _set(n=2))
    counted = await db.change_doc(created, _set(hits=Counter(5)))

    def bump(d: MindooDoc) -> None:
        d.get_data()["hits"].increment(2)
        assert created.get_data() == {"n": 1} and plain.get_data() == {"n": 2}

    last = await db.change_doc(created, bump)
    await db.change_doc(created, _set(n=9))
    assert created.get_data() == {"n": 1}
    assert plain.get_data() == {"n": 2}
    assert counted.get_data() == {"n": 2, "hits": Counter(5)}
    assert last.get_data() == {"n": 2, "hits": Counter(7)}


async def test_a_batch_result_repeating_a_document_shows_the_batch_end() -> None:
    db = _db()
    doc = await db.create_document({"n": 0})
    results = await db.change_docs([(doc, _set(n=1)), (doc, _set(n=2))])
    assert [r.get_data() for r in results] == [{"n": 2}, {"n": 2}]
    results[0].get_data()["n"] = 7
    assert results[1].get_data() == {"n": 2}


async def test_each_write_carries_the_attachment_list_it_leaves() -> None:
    store, files = InMemoryStore(), InMemoryStore("att")
    db = make_db(KeySigner(), KEYS, store, files)
    doc = await db.create_document({"n": 0})

    async def attach(d: MindooDoc) -> None:
        await d.add_attachment(b"hello", "a.txt", "text/plain")

    async def detach(d: MindooDoc) -> None:
        await d.remove_attachment(file_id)

    with_file = await db.change_doc(doc, attach)
    file_id = with_file.get_attachments()[0].attachment_id
    plain = await db.change_doc(doc, _set(n=1))  # touches no attachment: kept from before
    without = await db.change_doc(doc, detach)
    after = await db.change_doc(doc, _set(n=2))
    assert [a.file_name for a in with_file.get_attachments()] == ["a.txt"]
    assert [a.file_name for a in plain.get_attachments()] == ["a.txt"]
    assert without.get_attachments() == after.get_attachments() == []
    metas = await store.find_new_entries_for_doc([], doc.get_id())
    refs = [[r.attachment_id for r in m.attachment_refs] for m in metas]
    assert refs == [[], [file_id], [file_id], [], []]
    fresh = make_db(KeySigner(), KEYS, store, files)
    assert (await fresh.get_document(doc.get_id())).get_attachments() == []


async def test_a_create_bringing_its_own_attachment_list_is_read_back() -> None:
    store = InMemoryStore()
    db = make_db(KeySigner(), KEYS, store)
    listed = {"attachmentId": "f1", "lastChunkId": "c1", "decryptionKeyId": "default", "size": 3}
    doc = await db.create_document({"_attachments": [listed]})
    (meta,) = await store.find_new_entries_for_doc([], doc.get_id())
    assert [a.attachment_id for a in doc.get_attachments()] == ["f1"]
    assert [(r.attachment_id, r.last_chunk_id) for r in meta.attachment_refs] == [("f1", "c1")]


def test_root_value_reads_a_field_as_to_python_does() -> None:
    doc = AutomergeDoc.new(b"\x01" * 16)
    doc.change(
        lambda r: r.update(
            {
                "_attachments": [{"id": "x", "size": 3}],
                "text": "hello",
                "nested": {"list": [1, "two", {"three": 3.0}], "none": None},
                "count": Counter(4),
                "flag": True,
                "raw": b"\x00\x01",
            }
        )
    )

    def bump(r: Any) -> None:
        r["count"].increment(2)

    doc.change(bump)
    whole = doc.to_python()
    for key in [*whole, "absent"]:
        assert doc.root_value(key) == whole.get(key)
        assert type(doc.root_value(key)) is type(whole.get(key))


@pytest.mark.parametrize(
    "refs", [(), (AttachmentRef("fb", "c2", 3), AttachmentRef("fa", "c1", 2**40))]
)
def test_sealing_signed_gives_the_entry_signing_later_gives(
    refs: tuple[AttachmentRef, ...],
) -> None:
    signer = KeySigner()
    fields: dict[str, Any] = {
        "encrypt": lambda plain: b"\x07" * 12 + plain[::-1],  # deterministic: both seal alike
        "author": signer.public_pem,
        "entry_type": EntryType.DOC_CHANGE,
        "doc_id": "0123456789abcdef01234567",
        "key_id": "default",
        "plaintext": b"change bytes",
        "automerge_hash": "ab" * 32,
        "automerge_deps": ["cd" * 32, "ef" * 32],
        "dependency_ids": ["e1", "e2"],
        "created_at": 1_700_000_000_123,
        "attachment_refs": refs,
    }
    later = seal_doc_entry(**fields)
    assert isinstance(later, UnsignedEntry)
    now = seal_doc_entry(**fields, sign=signer.sign)
    assert isinstance(now, StoreEntry)
    assert now == later.signed(signer.sign)
    assert now.metadata.metadata_signature and now.metadata.signature
    check_entry(now)


async def test_lone_writes_store_entries_that_verify() -> None:
    store = InMemoryStore()
    db = make_db(KeySigner(), KEYS, store)
    doc = await db.create_document({"n": 1})
    await db.change_doc(doc, _set(n=2))
    await db.create_document({"n": 3}, doc_id="custom_one")
    entries = await store.get_entries(await store.get_all_ids())
    assert len(entries) == 4
    for entry in entries:
        check_entry(entry)
