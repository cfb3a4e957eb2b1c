"""A batch write signs its entries on the crypto threads; a single write signs inline."""

from __future__ import annotations

import threading

from mindood.db import MindooDoc
from mindood.db.entries import UnsignedEntry
from mindood.db.signpool import SIGN_INLINE, EntryBatch
from store.entry import EntryMetadata, EntryType
from store.signing import check_entry, sign_entry
from store.verify import VERIFY_THREAD_PREFIX
from tests.db_helpers import CountingStore, KeySigner, default_keys, make_db


class ThreadNotingSigner(KeySigner):
    """A ``KeySigner`` that records the name of the thread of every signature."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def sign(self, data: bytes) -> bytes:
        with self._lock:
            self.threads.append(threading.current_thread().name)
        return super().sign(data)


def _bump(doc: MindooDoc) -> None:
    doc.get_data()["n"] = -1  # differs from every created value: one change per document


async def test_a_batch_is_signed_on_the_crypto_threads_and_every_entry_verifies() -> None:
    signer = ThreadNotingSigner()
    store = CountingStore()
    db = make_db(signer, default_keys(), store)
    docs = await db.create_documents([{"n": i} for i in range(40)])
    await db.change_docs([(d, _bump) for d in docs])
    assert len(signer.threads) == 2 * 80  # two signatures per entry
    assert all(name.startswith(VERIFY_THREAD_PREFIX) for name in signer.threads)
    creates, changes = store.puts
    assert [e.doc_id for e in creates] == [d.get_id() for d in docs]  # order kept
    assert [e.doc_id for e in changes] == [d.get_id() for d in docs]
    for entry in creates + changes:
        check_entry(entry)  # metadata and payload signature by the author


async def test_a_single_write_signs_on_the_callers_thread() -> None:
    signer = ThreadNotingSigner()
    db = make_db(signer, default_keys(), CountingStore())
    doc = await db.create_document({"n": 0})
    await db.change_doc(doc, _bump)
    assert signer.threads == [threading.current_thread().name] * 4


def _unsigned(signer: KeySigner, n: int) -> UnsignedEntry:
    meta = EntryMetadata(
        entry_type=EntryType.DOC_CHANGE,
        id=f"doc{n}_d_0_{n:064x}",
        content_hash="00" * 32,
        doc_id=f"doc{n}",
        dependency_ids=(),
        created_at=n,
        created_by_public_key=signer.public_pem,
        decryption_key_id="default",
        original_size=0,
        encrypted_size=1,
    )
    return UnsignedEntry(meta, bytes([n % 256]))


async def test_signed_and_unsigned_entries_keep_their_order() -> None:
    signer = KeySigner()
    batch = EntryBatch(signer.sign)
    expected: list[str] = []
    for n in range(3 * SIGN_INLINE):
        item = _unsigned(signer, n)
        if n % 5 == 0:  # already signed, as a caller may add one
            batch.add(sign_entry(item.metadata, item.encrypted_data, signer.sign))
        else:
            batch.add(item)
        expected.append(item.metadata.id)
    entries = await batch.signed()
    assert [e.id for e in entries] == expected
    assert all(e.metadata.signature and e.metadata.metadata_signature for e in entries)
    # Ed25519 is deterministic: signed on the threads is byte for byte signed inline
    assert all(e == sign_entry(e.metadata, e.encrypted_data, signer.sign) for e in entries)
