"""The ``bloom_blocks`` table: the Bloom base hashes of every stored id, written with the id.

A summary needs two 32-bit hashes per id (``store.bloom``); computing them from the ids costs
about a microsecond an id vectorised, reading the ids back out of SQLite as much again, so a
store that hashed on demand paid about a second for its first summary of 100,000 ids. Here a
put hashes the ids it stores inside its own write transaction and keeps them packed
(``id_hash_bytes``: 8 bytes an id), so a summary reads a few blobs and only sets bits.

A block ``(first_order, last_order, hashes)`` holds the hashes of exactly the entries whose
receipt order lies in ``[first_order, last_order]``, in receipt order; blocks do not overlap.
Every write keeps that true in the transaction that changes ``entries``:

- a put appends (``append``): small commits grow the last block while it is small, so single
  puts do not leave a row each; larger ones add blocks of at most ``BLOCK_IDS``;
- a removal (purge, quarantine) rebuilds the blocks that covered the removed orders from the
  ids that remain (``forget``); receipt orders are never reused, so a block's range stays its;
- a clear deletes every block; ``backfill`` builds them all (the migration from format 2).

``mismatches`` (the full check) recomputes every block from the ids.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence

from store.bloom import HASH_PAIR_BYTES, id_hash_bytes

CREATE = """
CREATE TABLE bloom_blocks (
    first_order INTEGER PRIMARY KEY,
    last_order INTEGER NOT NULL,
    hashes BLOB NOT NULL
) STRICT
"""
#: Ids in one block at most: a removal rehashes a whole block (about 4 ms at 4,096 ids).
BLOCK_IDS = 4096
#: The last block takes in further small commits while it holds fewer ids than this (its row
#: stays within one 4 KiB page, so a single put rewrites about one page).
GROW_BELOW_IDS = 256
_TAIL = "SELECT first_order, last_order, hashes FROM bloom_blocks ORDER BY first_order DESC LIMIT 1"
_IDS_IN = "SELECT id FROM entries WHERE receipt_order BETWEEN ? AND ? ORDER BY receipt_order"


def append(conn: sqlite3.Connection, stored: Sequence[tuple[int, str]]) -> None:
    """Inside the put's transaction: add ``(receipt_order, id)`` of new entries, ascending.

    New receipt orders are above every order ever used, so they follow the last block.
    """
    if not stored:
        return
    packed = id_hash_bytes([entry_id for _order, entry_id in stored])
    tail = conn.execute(_TAIL).fetchone()
    if tail is not None:
        first, _last, hashes = tail
        held = len(hashes) // HASH_PAIR_BYTES
        if held < GROW_BELOW_IDS and held + len(stored) <= BLOCK_IDS:
            conn.execute(
                "UPDATE bloom_blocks SET last_order = ?, hashes = ? WHERE first_order = ?",
                (stored[-1][0], hashes + packed, first),
            )
            return
    for start in range(0, len(stored), BLOCK_IDS):
        part = stored[start : start + BLOCK_IDS]
        conn.execute(
            "INSERT INTO bloom_blocks VALUES (?, ?, ?)",
            (
                part[0][0],
                part[-1][0],
                packed[start * HASH_PAIR_BYTES : (start + len(part)) * HASH_PAIR_BYTES],
            ),
        )


def forget(conn: sqlite3.Connection, orders: Iterable[int]) -> None:
    """Inside a removal's transaction, after the entries went: rebuild the blocks they were in."""
    blocks: set[tuple[int, int]] = set()
    for order in sorted(set(orders)):
        if any(first <= order <= last for first, last in blocks):
            continue
        found = conn.execute(
            "SELECT first_order, last_order FROM bloom_blocks WHERE first_order <= ? "
            "ORDER BY first_order DESC LIMIT 1",
            (order,),
        ).fetchone()
        if found is not None and found[1] >= order:
            blocks.add((found[0], found[1]))
    for first, last in blocks:
        ids = [row[0] for row in conn.execute(_IDS_IN, (first, last))]
        if ids:
            conn.execute(
                "UPDATE bloom_blocks SET hashes = ? WHERE first_order = ?",
                (id_hash_bytes(ids), first),
            )
        else:
            conn.execute("DELETE FROM bloom_blocks WHERE first_order = ?", (first,))


def read_all(conn: sqlite3.Connection) -> bytes:
    """Every stored id's hashes (read inside the transaction that also reads the state)."""
    return b"".join(row[0] for row in conn.execute("SELECT hashes FROM bloom_blocks"))


def backfill(conn: sqlite3.Connection, progress: Callable[[int], None] | None = None) -> int:
    """Inside a write transaction: build every block from the stored ids; return how many.

    ``progress`` is told the running count after each block.
    """
    conn.execute("DELETE FROM bloom_blocks")
    after, done = 0, 0
    while True:
        batch = conn.execute(
            "SELECT receipt_order, id FROM entries WHERE receipt_order > ? "
            "ORDER BY receipt_order LIMIT ?",
            (after, BLOCK_IDS),
        ).fetchall()
        if not batch:
            return done
        row = (batch[0][0], batch[-1][0], id_hash_bytes([i for _o, i in batch]))
        conn.execute("INSERT INTO bloom_blocks VALUES (?, ?, ?)", row)
        after, done = batch[-1][0], done + len(batch)
        if progress is not None:
            progress(done)


def mismatches(conn: sqlite3.Connection) -> list[str]:
    """What the full check finds wrong with the blocks (empty when they match the ids)."""
    problems: list[str] = []
    covered, bad, previous_last = 0, 0, 0
    blocks = conn.execute("SELECT first_order, last_order, hashes FROM bloom_blocks").fetchall()
    for first, last, hashes in blocks:
        if first <= previous_last or last < first:
            problems.append(f"Bloom block {first}..{last} overlaps another or is reversed")
        previous_last = max(previous_last, last)
        ids = [row[0] for row in conn.execute(_IDS_IN, (first, last))]
        covered += len(ids)
        if id_hash_bytes(ids) != hashes:
            bad += 1
    if bad:
        problems.append(f"{bad} Bloom blocks disagree with the ids they cover")
    (count,) = conn.execute("SELECT count(*) FROM entries").fetchone()
    if count != covered:
        problems.append(f"{count - covered} entries have no Bloom hashes")
    return problems
