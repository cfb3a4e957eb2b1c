"""The on-disk store's Bloom hashes: written in blocks once the newest ids gather, kept exact by
every removal, and migrated from format 2 stores (which hashed when a summary was first asked)
and format 3 ones (whose last block grew with every put).

The property throughout: the store's summary is the in-memory summary of exactly its ids
(``BloomSummary.of_ids(get_all_ids())``, bit for bit), and the full check finds nothing.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from store.bloom import BloomSummary, id_hash_bytes
from store.entry import StoreEntry
from store.errors import StoreFormatError
from store.ondisk import OnDiskStore, OnDiskStoreOptions, bloomrows
from store.ondisk.schema import APPLICATION_ID, DB_NAME, FORMAT_VERSION
from tests.entries import Author

AUTHOR = Author()
FAST = OnDiskStoreOptions(fsync=False)


def make(count: int, doc: str | None = None) -> list[StoreEntry]:
    return [AUTHOR.entry(doc, payload=os.urandom(40)) for _ in range(count)]


def stored_hashes(root: Path) -> tuple[bytes, list[str], list[str]]:
    """What the file holds: the blocks' hashes in order, the ids they cover and the tail's ids
    (receipt order); the full check must find nothing."""
    conn = sqlite3.connect(root / DB_NAME)
    try:
        blocks = b"".join(
            r[0] for r in conn.execute("SELECT hashes FROM bloom_blocks ORDER BY first_order")
        )
        covered = bloomrows.covered_through(conn)
        rows = conn.execute("SELECT receipt_order, id FROM entries ORDER BY receipt_order")
        ordered = rows.fetchall()
        problems = bloomrows.mismatches(conn)
    finally:
        conn.close()
    assert problems == []
    return (
        blocks,
        [i for order, i in ordered if order <= covered],
        [i for order, i in ordered if order > covered],
    )


async def assert_exact(store: OnDiskStore) -> None:
    summary = await store.get_id_bloom_summary()
    assert summary == BloomSummary.of_ids(await store.get_all_ids())


async def test_puts_write_hashes_once_the_tail_is_long_and_a_summary_hashes_the_rest(
    tmp_path: Path,
) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.put_entries(make(3))
    await store.put_entries(make(40))
    blocks, covered, tail = stored_hashes(tmp_path)
    assert blocks == b"" and covered == [] and len(tail) == 43  # lone puts wrote no Bloom row
    await assert_exact(store)
    for _ in range(bloomrows.TAIL_IDS - 43 - 1):
        await store.put_entries(make(1))
    assert len(stored_hashes(tmp_path)[2]) == bloomrows.TAIL_IDS - 1
    await store.put_entries(make(1))  # the tail reaches its length: one block of all of it
    blocks, covered, tail = stored_hashes(tmp_path)
    assert len(covered) == bloomrows.TAIL_IDS and tail == [] and blocks == id_hash_bytes(covered)
    await store.put_entries(make(bloomrows.BLOCK_IDS + 10))  # a batch longer than a block
    blocks, covered, tail = stored_hashes(tmp_path)
    assert tail == [] and blocks == id_hash_bytes(covered)
    await assert_exact(store)
    await store.close()


async def test_every_write_keeps_the_summary_exact(tmp_path: Path) -> None:
    """Single puts past the growing tail, a batch past one block, repeats, purges, a clear."""
    store = await OnDiskStore.open(tmp_path, FAST)
    singles = make(bloomrows.TAIL_IDS + 20, doc="solo")
    for entry in singles:
        await store.put_entries([entry])
    await assert_exact(store)
    big = make(bloomrows.BLOCK_IDS + 300)  # a document each
    await store.put_entries(big)
    await store.put_entries(big[:50] + make(5))  # known ids are not hashed twice
    await assert_exact(store)
    for victim in (big[10], big[bloomrows.BLOCK_IDS + 100], singles[3]):
        await store.purge_doc_history(victim.doc_id)
        await assert_exact(store)
    assert not await store.has_entries([singles[0].id])  # "solo" went as a whole
    await store.put_entries(make(7))
    await assert_exact(store)
    await store.close()
    blocks, covered, tail = stored_hashes(tmp_path)
    assert blocks == id_hash_bytes(covered) and len(tail) < bloomrows.TAIL_IDS
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.clear_all_local_data()
    await assert_exact(store)
    assert (await store.get_id_bloom_summary()).total_ids == 0
    await store.put_entries(make(2))
    await assert_exact(store)
    await store.close()


async def test_a_purge_that_empties_a_block_drops_it(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.put_entries(make(bloomrows.TAIL_IDS, doc="first"))
    await store.put_entries(make(bloomrows.TAIL_IDS, doc="second"))  # a block of its own
    await store.put_entries(make(3, doc="third"))  # the tail
    await store.purge_doc_history("second")
    await store.purge_doc_history("third")
    await store.put_entries(make(2))
    await assert_exact(store)
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    counts = [len(r[0]) // 8 for r in conn.execute("SELECT hashes FROM bloom_blocks")]
    conn.close()
    assert counts == [bloomrows.TAIL_IDS]
    assert len(stored_hashes(tmp_path)[2]) == 2


async def test_a_quarantined_entry_leaves_the_summary(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    entries = make(8)
    await store.put_entries(entries)
    await store.close()
    db = tmp_path / DB_NAME
    data = bytearray(db.read_bytes())
    where = data.find(entries[3].metadata.signature)
    assert where >= 0
    data[where + 5] ^= 0x55  # the metadata row no longer matches its checksum
    db.write_bytes(bytes(data))
    store = await OnDiskStore.open(tmp_path, FAST)
    assert len(await store.get_entries([e.id for e in entries])) == 7
    assert store.health().quarantined == 1
    summary = await store.get_id_bloom_summary()
    assert summary.total_ids == 7 and summary == BloomSummary.of_ids(await store.get_all_ids())
    await store.close()


async def test_two_instances_writing_one_directory_both_stay_exact(tmp_path: Path) -> None:
    first = await OnDiskStore.open(tmp_path, FAST)
    second = await OnDiskStore.open(tmp_path, FAST)
    await first.put_entries(make(5, doc="a"))
    await assert_exact(second)
    await second.put_entries(make(6, doc="b"))
    await first.purge_doc_history("a")
    await assert_exact(second)
    await assert_exact(first)
    assert (await first.get_id_bloom_summary()).total_ids == 6
    await first.close()
    await second.close()


async def test_the_full_check_finds_bloom_hashes_that_disagree_with_the_ids(
    tmp_path: Path,
) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.put_entries(make(bloomrows.TAIL_IDS + 10))  # one block, no tail
    assert (await store.check(full=True)).ok
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE bloom_blocks SET hashes = zeroblob(length(hashes))")
    conn.commit()
    conn.close()
    store = await OnDiskStore.open(tmp_path, FAST)
    report = await store.check(full=True)
    assert not report.ok and any("Bloom blocks disagree" in p for p in report.problems)
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("DELETE FROM bloom_blocks")  # every id is "tail" now: more than may wait
    conn.commit()
    conn.close()
    store = await OnDiskStore.open(tmp_path, FAST)
    report = await store.check(full=True)
    assert any("past the last Bloom block" in p for p in report.problems), report.problems
    assert await store.get_id_bloom_summary() == BloomSummary.of_ids(await store.get_all_ids())
    await store.close()


# -- migration from format 2 -------------------------------------------------------------------

#: Format 2's tables as that release created them (entries, payloads, chunks, quarantine are
#: unchanged in format 3; ``bloom_hashes`` and ``state.bloom_through`` went).
_FORMAT_2 = """
CREATE TABLE state (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    epoch TEXT NOT NULL,
    order_floor INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    bloom_through INTEGER NOT NULL
) STRICT;
CREATE TABLE bloom_hashes (
    receipt_order INTEGER PRIMARY KEY,
    h1 INTEGER NOT NULL,
    h2 INTEGER NOT NULL
) STRICT;
"""
_KEPT_TABLES = ("entries", "payloads", "chunks", "quarantine")


def as_format_2(source: Path, target: Path, hashed_through: int) -> None:
    """A format 2 file with ``source``'s rows, its ids up to ``hashed_through`` hashed as a
    format 2 summary left them, the rest not yet. Those hashes are deliberately wrong
    (``h2`` 0), so a migration that kept them instead of hashing every id shows."""
    target.mkdir()
    src = sqlite3.connect(source / DB_NAME)
    conn = sqlite3.connect(target / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    for (sql,) in src.execute(
        "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND tbl_name IN (?, ?, ?, ?)",
        _KEPT_TABLES,
    ):
        conn.execute(sql)
    for statement in _FORMAT_2.split(";"):
        if statement.strip():
            conn.execute(statement)
    for table in _KEPT_TABLES:
        rows = src.execute(f"SELECT * FROM {table}").fetchall()
        if rows:
            marks = ",".join("?" * len(rows[0]))
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
    epoch, floor, generation = src.execute(
        "SELECT epoch, order_floor, generation FROM state"
    ).fetchone()
    conn.execute("INSERT INTO state VALUES (1, ?, ?, ?, ?)", (epoch, floor, generation, 0))
    early = src.execute(
        "SELECT receipt_order, id FROM entries WHERE receipt_order <= ? ORDER BY receipt_order",
        (hashed_through,),
    ).fetchall()
    packed = id_hash_bytes([i for _o, i in early])
    conn.executemany(
        "INSERT INTO bloom_hashes VALUES (?, ?, ?)",
        [
            (order, int.from_bytes(packed[n * 8 : n * 8 + 4], "little"), 0)
            for n, (order, _id) in enumerate(early)
        ],
    )
    conn.execute("UPDATE state SET bloom_through = ?", (hashed_through,))
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("PRAGMA user_version = 2")
    conn.execute("COMMIT")
    conn.close()
    src.close()


async def test_a_format_2_store_is_migrated_at_open_and_stays_exact(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await OnDiskStore.open(tmp_path / "new", FAST)
    entries = make(300) + make(4, doc="gone")
    await store.put_entries(entries)
    await store.purge_doc_history(entries[5].doc_id)  # a hole in the receipt orders
    await store.close()
    as_format_2(tmp_path / "new", tmp_path / "old", hashed_through=120)
    with caplog.at_level(logging.INFO, logger="store.ondisk"):
        store = await OnDiskStore.open(tmp_path / "old", FAST)
    messages = [r.getMessage() for r in caplog.records]
    assert "store migrated from format 2" in messages
    assert (await store.get_store_head()).max_receipt_order == len(entries)
    await assert_exact(store)  # format 2's partial (here: wrong) hashes were not reused
    await store.put_entries(make(3))
    await store.purge_doc_history("gone")
    await assert_exact(store)
    assert (await store.get_id_bloom_summary()).total_ids == len(entries) - 1 - 4 + 3
    await store.close()
    conn = sqlite3.connect(tmp_path / "old" / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION == 4
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    columns = [r[1] for r in conn.execute("PRAGMA table_info(state)")]
    conn.close()
    assert "bloom_hashes" not in tables and "bloom_through" not in columns
    stored_hashes(tmp_path / "old")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="store.ondisk"):
        store = await OnDiskStore.open(tmp_path / "old", FAST)  # once only
    assert not [r for r in caplog.records if "migrat" in r.getMessage()]
    await store.close()


async def test_a_format_3_store_with_a_growing_last_block_is_taken_as_it_is(
    tmp_path: Path,
) -> None:
    """Format 3 kept every id in a block, its last one growing with each put: a valid layout
    with an empty tail, so the open only records format 4; later puts start a tail after it."""
    store = await OnDiskStore.open(tmp_path, FAST)
    entries = make(20)
    await store.put_entries(entries)
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(
        "INSERT INTO bloom_blocks VALUES (1, 20, ?)", (id_hash_bytes([e.id for e in entries]),)
    )
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    store = await OnDiskStore.open(tmp_path, FAST)
    await assert_exact(store)
    for _ in range(bloomrows.TAIL_IDS + 5):
        await store.put_entries(make(1))
    await assert_exact(store)
    await store.close()
    _blocks, covered, tail = stored_hashes(tmp_path)
    assert len(covered) == 20 + bloomrows.TAIL_IDS and len(tail) == 5
    conn = sqlite3.connect(tmp_path / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == FORMAT_VERSION
    conn.close()


async def test_a_store_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    store = await OnDiskStore.open(tmp_path, FAST)
    await store.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreFormatError, match=f"store format {FORMAT_VERSION + 1}"):
        await OnDiskStore.open(tmp_path, FAST)
