"""The on-disk store's document queries: what they return, and that they look documents up.

A query by document that SQLite answers by scanning the whole entries table costs every slice
of a batch read time in proportion to the store's size, not to the documents asked for; the
query plans are checked here instead of timings.
"""

from __future__ import annotations

import os
from pathlib import Path

from store.entry import EntryType, StoreEntry
from store.ondisk import OnDiskStore, OnDiskStoreOptions, reads
from store.ondisk.reads import Damage
from store.ondisk.schema import DB_NAME, connect
from tests.entries import Author

AUTHOR = Author()
FAST = OnDiskStoreOptions(fsync=False)


async def _interleaved(path: Path) -> tuple[list[str], list[StoreEntry]]:
    """Three documents whose entries arrive interleaved, one of them with a snapshot."""
    docs = ["docb", "doca", "docc"]
    written: list[StoreEntry] = []
    store = await OnDiskStore.open(path, FAST)
    for round_ in range(3):
        batch = [AUTHOR.entry(d, payload=os.urandom(50)) for d in docs]
        if round_ == 1:
            batch.append(AUTHOR.entry("docc", entry_type=EntryType.DOC_SNAPSHOT))
        await store.put_entries(batch)
        written += batch
    await store.close()
    return docs, written


async def test_read_docs_lists_each_document_in_receipt_order(tmp_path: Path) -> None:
    docs, written = await _interleaved(tmp_path)
    store = await OnDiskStore.open(tmp_path, FAST)
    found = await store.read_docs([*docs, "nodoc"])
    assert found.metadata == await store.find_entries_for_docs([*docs, "nodoc"])
    for doc in docs:
        assert [m.id for m in found.metadata[doc]] == [e.id for e in written if e.doc_id == doc]
    assert found.metadata["nodoc"] == []
    plain = [e for e in written if e.doc_id != "docc"]
    assert found.payloads == {e.id: e.encrypted_data for e in plain}  # none of the snapshotted
    await store.close()


async def test_document_queries_look_documents_up_instead_of_scanning(tmp_path: Path) -> None:
    docs, _ = await _interleaved(tmp_path)
    conn = connect(tmp_path / DB_NAME, FAST)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        reads.read_docs(conn, Damage(), docs)
        reads.find_for_docs(conn, Damage(), docs)
        conn.set_trace_callback(None)
        assert statements
        for sql in statements:
            plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            assert not [step for step in plan if step.startswith("SCAN")], (sql, plan)
            assert any("entries_by_doc" in step for step in plan), (sql, plan)
    finally:
        conn.close()
