"""The tenant-wide maximum entry size: refused at write time, skipped for snapshots, refused on
admission, so no node stores an entry that could never sync.

Big values are plain ``str`` (an Automerge scalar, cheap to write) made of random base64: a value
of N characters makes a change of about N bytes (changes are not compressed), and a snapshot of
about 3/4 N (a save deflates, base64 keeps 6 bits of 8).
"""

from __future__ import annotations

import base64
import logging
import os

import pytest

from mindood.crypto import decrypt_payload, encrypt_payload
from mindood.db import DBOptions, MindooDB, MindooDoc
from mindood.errors import DatabaseError, EntryTooLargeError
from mindood.rpc.errors import TOO_LARGE, EntryTooLargeRpcError, code_for, error_from_wire
from mindood.rpc.errors import error_to_wire as rpc_error_to_wire
from protocol.messages import DEFAULT_LIMITS, Response, decode, encode
from protocol.store_ops import entry_from_parts, sealed_entries_from_wire, sealed_entry_to_wire
from store.entry import EntryType
from store.limits import ENTRY_ENVELOPE_BYTES, MAX_ENTRY_BYTES
from store.memory import InMemoryStore
from tests.db_helpers import KeySigner, default_keys, make_db
from tests.entries import Author

MIB = 1024 * 1024


def random_text(size: int) -> str:
    """``size`` characters that no compressor shrinks much."""
    return base64.b64encode(os.urandom(size * 3 // 4 + 3)).decode("ascii")[:size]


class Node:
    """One user's signer and keys; every handle it opens on a store reads what the others wrote."""

    def __init__(self) -> None:
        self.signer = KeySigner()
        self.keys = default_keys()

    def open(self, store: InMemoryStore, options: DBOptions | None = None) -> MindooDB:
        return make_db(self.signer, self.keys, store, options=options)


def db_with(store: InMemoryStore, options: DBOptions | None = None) -> MindooDB:
    return Node().open(store, options)


# -- write time ------------------------------------------------------------------------------------
async def test_a_34_mib_document_is_refused_and_nothing_is_stored() -> None:
    store = InMemoryStore()
    db = db_with(store)
    with pytest.raises(EntryTooLargeError) as caught:
        await db.create_document({"blob": random_text(34 * MIB)})
    message = str(caught.value)
    assert "new document of 34.0 MiB" in message
    assert "tenant-wide limit of 16 MiB per entry" in message
    assert "store large content as an attachment" in message
    assert caught.value.size > 34 * MIB and caught.value.limit == MAX_ENTRY_BYTES
    assert isinstance(caught.value, DatabaseError)  # `except DatabaseError` still catches it
    assert await store.get_all_ids() == []
    assert await db.get_all_document_ids() == []


async def test_a_refused_change_leaves_the_document_as_it_was_and_usable() -> None:
    store, node = InMemoryStore(), Node()
    db = node.open(store)
    doc = await db.create_document({"title": "notes"})
    stored = set(await store.get_all_ids())

    def grow(d: MindooDoc) -> None:
        d.get_data()["blob"] = random_text(34 * MIB)

    with pytest.raises(EntryTooLargeError, match=r"document change of 34\.0 MiB"):
        await db.change_doc(doc, grow)
    assert set(await store.get_all_ids()) == stored
    current = await db.get_document(doc.get_id())
    assert dict(current.get_data()) == {"title": "notes"}

    changed = await db.change_doc(doc, lambda d: d.get_data().update(title="still works"))
    assert dict(changed.get_data()) == {"title": "still works"}
    assert len(await store.get_all_ids()) == len(stored) + 1
    reopened = await node.open(store).get_document(doc.get_id())
    assert dict(reopened.get_data()) == {"title": "still works"}


async def test_a_value_just_under_the_limit_is_written_and_one_at_the_limit_is_not() -> None:
    store, node = InMemoryStore(), Node()
    db = node.open(store)
    under = random_text(MAX_ENTRY_BYTES - 1024)  # room for the change header, IV and tag
    doc = await db.create_document({"blob": under})
    (entry,) = await store.get_entries(await store.get_all_ids())
    assert MAX_ENTRY_BYTES - 1024 < len(entry.encrypted_data) <= MAX_ENTRY_BYTES
    assert (await node.open(store).get_document(doc.get_id())).get_data()["blob"] == under

    with pytest.raises(EntryTooLargeError, match=r"16\.0 MiB \([\d,]+ bytes\) exceeds"):
        await db.create_document({"blob": random_text(MAX_ENTRY_BYTES)})
    assert len(await store.get_all_ids()) == 1


async def test_a_custom_id_document_with_oversized_data_leaves_no_empty_document() -> None:
    store = InMemoryStore()
    db = db_with(store)
    with pytest.raises(EntryTooLargeError):
        await db.create_document({"blob": random_text(17 * MIB)}, doc_id="settings")
    assert await store.get_all_ids() == []
    # The id is free: the refused create left nothing that says "already exists".
    doc = await db.create_document({"theme": "dark"}, doc_id="settings")
    assert dict(doc.get_data()) == {"theme": "dark"}


async def test_a_snapshot_over_the_limit_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, node = InMemoryStore(), Node()
    db = node.open(store, DBOptions(snapshot_every=2))
    doc = await db.create_document({"a": random_text(12 * MIB)})
    with caplog.at_level(logging.WARNING, logger="mindood.db"):
        # The second change makes a snapshot due; the document saves to 18 MiB: too large.
        await db.change_doc(doc, lambda d: d.get_data().update(b=random_text(12 * MIB)))
    skipped = [r for r in caplog.records if "snapshot skipped" in r.getMessage()]
    assert skipped and skipped[0].levelno == logging.WARNING
    stored = await store.get_entries(await store.get_all_ids())
    assert sorted(e.metadata.entry_type for e in stored) == [
        EntryType.DOC_CHANGE,
        EntryType.DOC_CREATE,
    ]
    # Writing goes on, and the document reads back from its changes alone.
    await db.change_doc(doc, lambda d: d.get_data().update(c=1))
    again = await node.open(store).get_document(doc.get_id())
    assert again.get_data()["c"] == 1 and len(again.get_data()["b"]) == 12 * MIB


def test_an_attachment_chunk_size_that_could_not_sync_is_refused() -> None:
    with pytest.raises(ValueError, match="entry size limit"):
        db_with(InMemoryStore(), DBOptions(attachment_chunk_size=MAX_ENTRY_BYTES))


# -- admission -------------------------------------------------------------------------------------
async def test_admission_refuses_an_oversized_entry_from_a_peer_with_a_reason() -> None:
    store = InMemoryStore()
    db = db_with(store)
    peer = Author()
    big = peer.entry(payload=os.urandom(MAX_ENTRY_BYTES + 1))
    fits = peer.entry(payload=os.urandom(MAX_ENTRY_BYTES))
    verdict = await db.admit_entries([big, fits])
    assert [e.id for e in verdict.accepted] == [fits.id]
    ((entry_id, reason),) = verdict.rejected
    assert entry_id == big.id
    assert "doc_change entry of 16.0 MiB (16,777,217 bytes)" in reason
    assert "exceeds the tenant-wide limit of 16 MiB per entry" in reason


async def test_a_store_refuses_an_oversized_entry_put_past_admission() -> None:
    store = InMemoryStore()
    big = Author().chunk("doc1", "att1", os.urandom(MAX_ENTRY_BYTES + 1))
    result = await store.put_entries([big])
    assert result.stored == ()
    ((_, reason),) = result.rejected
    assert "attachment_chunk entry" in reason and "tenant-wide limit" in reason
    assert await store.get_all_ids() == []


# -- the limit across layers ----------------------------------------------------------------------
def test_one_entry_at_the_limit_crosses_the_wire_in_one_get_response() -> None:
    entry = Author().entry(payload=os.urandom(MAX_ENTRY_BYTES))
    session_key = os.urandom(32)  # the session's payload layer seals with AES-GCM, as here
    sealed = encrypt_payload(session_key, entry.encrypted_data)
    frame = encode(Response(7, [sealed_entry_to_wire(entry, sealed)]))
    assert len(frame) < DEFAULT_LIMITS.max_message_bytes - ENTRY_ENVELOPE_BYTES
    message = decode(frame, DEFAULT_LIMITS)
    assert isinstance(message, Response)
    ((meta, payload),) = sealed_entries_from_wire(message.result, DEFAULT_LIMITS)
    assert entry_from_parts(meta, decrypt_payload(session_key, payload)) == entry


def test_the_rpc_carries_the_refusal_as_its_own_code() -> None:
    error = EntryTooLargeError("document change of 34.0 MiB exceeds", size=1, limit=2)
    assert code_for(error) == TOO_LARGE
    back = error_from_wire(rpc_error_to_wire(error))
    assert isinstance(back, EntryTooLargeRpcError)
    assert back.kind == "EntryTooLargeError" and "34.0 MiB" in str(back)
