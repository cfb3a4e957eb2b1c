"""The ``bloom_blocks`` table: the Bloom base hashes of every stored id, written with the id.

A summary needs two 32-bit hashes per id (``store.bloom``); computing them from the ids costs
about a microsecond an id vectorised, reading the ids back out of SQLite as much again, so a
store that hashed on demand paid about a second for its first summary of 100,000 ids. Here a
put hashes the ids it stores inside its own write transaction and keeps them packed
(``id_hash_bytes``: 8 bytes an id), so a summary reads a few blobs and only sets bits.

A block ``(first_order, last_order, hashes)`` holds the hashes of exactly the entries whose
receipt order lies in ``[first_order, last_order]``, in receipt order; blocks do not overlap.
The entries past the last block (the *tail*, fewer than ``TAIL_IDS`` of them) have no block
yet: a summary hashes their ids when it is built. Every write keeps that true in the
transaction that changes ``entries``:

- a put (``append``) writes nothing while the tail stays short, and turns the whole tail into
  blocks of at most ``BLOCK_IDS`` once it reaches ``TAIL_IDS``: a lone put used to rewrite the
  growing last block, one WAL page and a blob copy per commit (a single durable put ran
  ~25 % slower for it);
- a removal (purge, quarantine) rebuilds the blocks that covered the removed orders from the
  ids that remain (``forget``); receipt orders are never reused, so a block's range stays its;
- a clear deletes every block; ``backfill`` builds them all (the migration from format 2).

``mismatches`` (the full check) recomputes every block from the ids.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable

from store.bloom import id_hash_bytes

CREATE = """
CREATE TABLE bloom_blocks (
    first_order INTEGER PRIMARY KEY,
    last_order INTEGER NOT NULL,
    hashes BLOB NOT NULL
) STRICT
"""
#: Ids in one block at most: a removal rehashes a whole block (about 4 ms at 4,096 ids).
BLOCK_IDS = 4096
#: The tail is turned into blocks once it may hold this many ids; a summary hashes at most
#: this many ids itself (about 0.3 ms).
TAIL_IDS = 256
#: Blocks do not overlap, so the last block by rowid covers the highest order (no table scan).
_COVERED = "SELECT last_order FROM bloom_blocks ORDER BY first_order DESC LIMIT 1"
_IDS_IN = "SELECT id FROM entries WHERE receipt_order BETWEEN ? AND ? ORDER BY receipt_order"
_TAIL_IDS = "SELECT receipt_order, id FROM entries WHERE receipt_order > ? ORDER BY receipt_order"


def covered_through(conn: sqlite3.Connection) -> int:
    """The highest receipt order any block covers (0 when there are none)."""
    row = conn.execute(_COVERED).fetchone()
    return 0 if row is None else int(row[0])


def append(conn: sqlite3.Connection, max_order: int) -> None:
    """Inside a put's transaction, after its rows: block the tail if it may have grown long.

    ``max_order`` is the highest receipt order stored so far. Orders past the last block are
    at least as many as the tail's ids (purges leave holes), so a short span needs no read.
    """
    covered = covered_through(conn)
    if max_order - covered < TAIL_IDS:
        return
    tail = conn.execute(_TAIL_IDS, (covered,)).fetchall()
    if len(tail) < TAIL_IDS:
        return
    for start in range(0, len(tail), BLOCK_IDS):
        part = tail[start : start + BLOCK_IDS]
        hashes = id_hash_bytes([entry_id for _order, entry_id in part])
        conn.execute("INSERT INTO bloom_blocks VALUES (?, ?, ?)", (part[0][0], part[-1][0], hashes))


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
    """Every stored id's hashes: the blocks', then the tail's (read inside the transaction
    that also reads the state)."""
    blocks = [row[0] for row in conn.execute("SELECT hashes FROM bloom_blocks")]
    tail = [row[1] for row in conn.execute(_TAIL_IDS, (covered_through(conn),))]
    return b"".join(blocks) + (id_hash_bytes(tail) if tail else b"")


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
    (count,) = conn.execute(
        "SELECT count(*) FROM entries WHERE receipt_order <= ?", (previous_last,)
    ).fetchone()
    if count != covered:
        problems.append(f"{count - covered} entries have no Bloom hashes")
    (tail,) = conn.execute(
        "SELECT count(*) FROM entries WHERE receipt_order > ?", (previous_last,)
    ).fetchone()
    if tail >= TAIL_IDS:
        problems.append(f"{tail} entries past the last Bloom block (at most {TAIL_IDS - 1} wait)")
    return problems
