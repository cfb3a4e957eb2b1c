"""Every change to a store's database, each one transaction on the write connection.

These run in a worker thread with the store's write lock held; across processes SQLite's own
lock serialises them (``BEGIN IMMEDIATE`` waits up to the busy timeout). Nothing here awaits.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from store.admission import BatchAdmission
from store.base import PutResult
from store.entry import StoreEntry
from store.ids import uuid7
from store.ondisk import bloomrows, rows
from store.ondisk.rows import CHUNK_TYPE, DamagedRow
from store.ondisk.schema import before_removing, read_state

#: Ids per ``IN (...)`` list (far below SQLite's 32766 variables).
IN_LIST = 500
INSERT_ENTRY = "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_PAYLOAD = "INSERT INTO payloads VALUES (?, ?)"
UPSERT_CHUNK = (
    "INSERT INTO chunks (content_hash, refs, data) VALUES (?, 1, ?) "
    "ON CONFLICT (content_hash) DO UPDATE SET refs = refs + 1"
)


@dataclass(frozen=True, slots=True)
class Committed:
    """What a write left behind: the results, and the head to record in the witness."""

    results: tuple[PutResult, ...]
    epoch: str
    max_receipt_order: int
    #: Quarantined ids a good copy just replaced.
    healed: tuple[str, ...] = ()


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` (take the write lock now, not at the first write), commit or undo."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def id_slices(items: Sequence[str]) -> Iterator[Sequence[str]]:
    """``items`` in slices short enough for one ``IN (...)`` list."""
    for start in range(0, len(items), IN_LIST):
        yield items[start : start + IN_LIST]


def existing_ids(conn: sqlite3.Connection, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in id_slices(ids):
        marks = ",".join("?" * len(part))
        found.update(
            r[0] for r in conn.execute(f"SELECT id FROM entries WHERE id IN ({marks})", part)
        )
    return found


def commit_batches(conn: sqlite3.Connection, batches: Sequence[Sequence[StoreEntry]]) -> Committed:
    """One transaction for every batch queued in a group-commit round (one fsync for all)."""
    with transaction(conn):
        epoch, max_order, _generation = read_state(conn)
        known = existing_ids(conn, list({e.metadata.id for batch in batches for e in batch}))
        results: list[PutResult] = []
        built = rows.Built()
        for batch in batches:
            admission = BatchAdmission(known.__contains__)
            orders: list[int] = []
            for entry in admission.admit(batch):
                max_order += 1
                built.add(entry, max_order)
                orders.append(max_order)
            result = admission.result(orders)
            known.update(result.stored)
            results.append(result)
        insert(conn, built)
        if built.entries:
            bloomrows.append(conn, max_order)
        healed = _lift_quarantine(conn, [i for r in results for i in r.stored])
    return Committed(tuple(results), epoch, max_order, healed)


def _lift_quarantine(conn: sqlite3.Connection, stored: Sequence[str]) -> tuple[str, ...]:
    """Drop the quarantine records of ids just stored again (a peer's good copy healed them)."""
    if not stored or conn.execute("SELECT 1 FROM quarantine LIMIT 1").fetchone() is None:
        return ()
    lifted: list[str] = []
    for part in id_slices(stored):
        marks = ",".join("?" * len(part))
        found = [
            r[0] for r in conn.execute(f"SELECT id FROM quarantine WHERE id IN ({marks})", part)
        ]
        if found:
            conn.execute(f"DELETE FROM quarantine WHERE id IN ({marks})", part)
            lifted += found
    return tuple(lifted)


def insert(conn: sqlite3.Connection, built: rows.Built) -> None:
    """Store prepared rows (inside a write transaction)."""
    if built.chunks:
        conn.executemany(UPSERT_CHUNK, built.chunks)
    if built.payloads:
        conn.executemany(INSERT_PAYLOAD, built.payloads)
    if built.entries:
        conn.executemany(INSERT_ENTRY, built.entries)


def _forget(conn: sqlite3.Connection, found: Sequence[tuple[int, bytes, str]]) -> None:
    """Delete entries ``(receipt_order, content_hash, entry_type)`` and what only they used.

    An entry's own payload goes with it; a shared chunk loses one reference and goes when
    nobody uses it any more; the Bloom blocks that held them are rebuilt from the ids that
    remain. With ``secure_delete`` on, every deleted byte is zeroed.
    """
    orders = [(order,) for order, _digest, _type in found]
    digests = [(digest,) for _order, digest, entry_type in found if entry_type == CHUNK_TYPE]
    if digests:
        conn.executemany("UPDATE chunks SET refs = refs - 1 WHERE content_hash = ?", digests)
        conn.executemany("DELETE FROM chunks WHERE content_hash = ? AND refs <= 0", set(digests))
    conn.executemany("DELETE FROM payloads WHERE receipt_order = ?", orders)
    conn.executemany("DELETE FROM entries WHERE receipt_order = ?", orders)
    bloomrows.forget(conn, (order for order, _digest, _type in found))


def purge_doc(conn: sqlite3.Connection, doc_id: str) -> tuple[int, Committed]:
    """Delete a document's entries, their unshared payloads and quarantine rows (GDPR)."""
    with transaction(conn):
        epoch, max_order, _generation = read_state(conn)
        found = conn.execute(
            "SELECT receipt_order, content_hash, entry_type FROM entries WHERE doc_id = ?",
            (doc_id,),
        ).fetchall()
        conn.execute("DELETE FROM quarantine WHERE doc_id = ?", (doc_id,))
        if found:
            before_removing(conn)
            _forget(conn, found)
    return len(found), Committed((), epoch, max_order)


def clear(conn: sqlite3.Connection) -> Committed:
    """Forget every entry and start a new epoch (receipt orders restart from 1)."""
    epoch = uuid7()
    with transaction(conn):
        for table in ("entries", "payloads", "chunks", "bloom_blocks", "quarantine"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute(
            "UPDATE state SET epoch = ?, order_floor = 0, generation = generation + 1",
            (epoch,),
        )
    return Committed((), epoch, 0)


def new_epoch(conn: sqlite3.Connection) -> Committed:
    """Keep the entries but start a new epoch: peers rescan instead of trusting old cursors."""
    epoch = uuid7()
    with transaction(conn):
        conn.execute("UPDATE state SET epoch = ?", (epoch,))
        _epoch, max_order, _generation = read_state(conn)
    return Committed((), epoch, max_order)


def quarantine(
    conn: sqlite3.Connection,
    damaged: Sequence[DamagedRow],
    bad_payloads: Sequence[tuple[bytes, str]] = (),
) -> list[DamagedRow]:
    """Set damaged rows aside: out of every query, recorded with the reason; return them.

    A damaged shared chunk takes every entry that uses it along (their bytes are gone) and the
    chunk row itself, so a good copy fetched again replaces it instead of counting a ref.
    """
    now = time.time_ns() // 1_000_000
    moved: list[DamagedRow] = []
    with transaction(conn):
        before_removing(conn)
        victims = list(damaged)
        for digest, reason in bad_payloads:
            users = conn.execute(
                "SELECT receipt_order, id, doc_id FROM entries "
                "WHERE entry_type = ? AND content_hash = ?",
                (CHUNK_TYPE, digest),
            ).fetchall()
            victims += [DamagedRow(order, i, doc, reason) for order, i, doc in users]
            conn.execute("DELETE FROM chunks WHERE content_hash = ?", (digest,))
        seen: set[int] = set()
        gone: list[tuple[int, bytes, str]] = []
        for row in victims:
            found = conn.execute(
                "SELECT receipt_order, content_hash, entry_type FROM entries "
                "WHERE receipt_order = ?",
                (row.receipt_order,),
            ).fetchone()
            if found is None or row.receipt_order in seen:
                continue  # already gone (purged, or quarantined by another reader)
            seen.add(row.receipt_order)
            conn.execute(
                "INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?, ?)",
                (row.receipt_order, row.id, row.doc_id, row.reason, now),
            )
            gone.append(found)
            moved.append(row)
        if gone:
            _forget(conn, gone)  # once for all: each Bloom block they were in is rebuilt once
    return moved


def checkpoint_truncate(conn: sqlite3.Connection) -> bool:
    """Copy the WAL into the database and empty it; False if a reader kept it from finishing."""
    busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return not busy
