"""Every query of the store contract as SQL on a read connection (run in a worker thread).

WAL readers never block the writer and see only committed transactions. Each query is one
``SELECT`` (or one per chunk of ids), read to its end, so no statement keeps a read snapshot
open between calls. Rows that fail their checks are skipped and reported in ``Damage``; the
store quarantines them afterwards, so a damaged row costs that entry, never the query.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from store.base import DocEntries, IdPage, ResolveOptions, ScanCursor, ScanFilters, ScanPage
from store.bloom import BloomSummary
from store.dag import DependencyWalk
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.ondisk import bloomrows
from store.ondisk.rows import CHUNK_TYPE, COLUMNS, DamagedRow, decode
from store.ondisk.schema import read_state
from store.ondisk.writes import existing_ids, id_slices

_SELECT = f"SELECT {COLUMNS} FROM entries"


@dataclass(slots=True)
class Damage:
    """Damaged rows, and damaged shared chunks (by content hash), one query ran into."""

    rows: list[DamagedRow] = field(default_factory=list)
    payloads: list[tuple[bytes, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rows or self.payloads)


def _decoded(rows: Iterable[tuple[Any, ...]], damage: Damage) -> list[EntryMetadata]:
    out: list[EntryMetadata] = []
    for row in rows:
        meta = decode(row)
        if isinstance(meta, DamagedRow):
            damage.rows.append(meta)
        else:
            out.append(meta)
    return out


def _by_ids(
    conn: sqlite3.Connection, ids: Sequence[str], damage: Damage
) -> dict[str, EntryMetadata]:
    found: dict[str, EntryMetadata] = {}
    for part in id_slices(ids):
        sql = f"{_SELECT} WHERE id IN ({','.join('?' * len(part))})"
        for meta in _decoded(conn.execute(sql, part), damage):
            found[meta.id] = meta
    return found


def get_metadata(
    conn: sqlite3.Connection, damage: Damage, ids: Sequence[str]
) -> list[EntryMetadata]:
    found = _by_ids(conn, ids, damage)
    return [found[i] for i in ids if i in found]


def get_entries(conn: sqlite3.Connection, damage: Damage, ids: Sequence[str]) -> list[StoreEntry]:
    """Entries with payloads whose SHA-256 is checked; a bad payload is reported, not returned."""
    found: dict[str, StoreEntry] = {}
    for part in id_slices(ids):
        sql = (
            f"SELECT e.{COLUMNS.replace(', ', ', e.')}, coalesce(p.data, c.data) FROM entries e "
            "LEFT JOIN payloads p ON p.receipt_order = e.receipt_order "
            "LEFT JOIN chunks c ON e.entry_type = ? AND c.content_hash = e.content_hash "
            f"WHERE e.id IN ({','.join('?' * len(part))})"
        )
        for row in conn.execute(sql, (CHUNK_TYPE, *part)):
            meta = decode(row)
            if isinstance(meta, DamagedRow):
                damage.rows.append(meta)
                continue
            data = row[8]
            if not isinstance(data, bytes):
                damage.rows.append(
                    DamagedRow(meta.receipt_order, meta.id, meta.doc_id, "payload missing")
                )
            elif hashlib.sha256(data).hexdigest() != meta.content_hash:
                reason = "payload does not match its content hash"
                if meta.entry_type is EntryType.ATTACHMENT_CHUNK:
                    damage.payloads.append((row[5], reason))  # shared: every user loses it
                else:
                    damage.rows.append(DamagedRow(meta.receipt_order, meta.id, meta.doc_id, reason))
            else:
                found[meta.id] = StoreEntry(meta, data)
    return [found[i] for i in ids if i in found]


def get_payloads(conn: sqlite3.Connection, damage: Damage, ids: Sequence[str]) -> dict[str, bytes]:
    """``get_entries`` without decoding the metadata: the caller read it moments ago.

    Each payload is checked against its row's content hash column (which the metadata read
    checked against the row's checksummed record), so a damaged payload is still reported,
    never returned.
    """
    found: dict[str, bytes] = {}
    for part in id_slices(ids):
        sql = (
            "SELECT e.receipt_order, e.id, e.doc_id, e.content_hash, coalesce(p.data, c.data), "
            "e.entry_type FROM entries e "
            "LEFT JOIN payloads p ON p.receipt_order = e.receipt_order "
            "LEFT JOIN chunks c ON e.entry_type = ? AND c.content_hash = e.content_hash "
            f"WHERE e.id IN ({','.join('?' * len(part))})"
        )
        for receipt_order, entry_id, doc_id, digest, data, entry_type in conn.execute(
            sql, (CHUNK_TYPE, *part)
        ):
            if not isinstance(data, bytes):
                damage.rows.append(DamagedRow(receipt_order, entry_id, doc_id, "payload missing"))
            elif hashlib.sha256(data).digest() != digest:
                reason = "payload does not match its content hash"
                if entry_type == CHUNK_TYPE:
                    damage.payloads.append((digest, reason))  # shared: every user loses it
                else:
                    damage.rows.append(DamagedRow(receipt_order, entry_id, doc_id, reason))
            else:
                found[entry_id] = data
    return found


def has_entries(conn: sqlite3.Connection, damage: Damage, ids: Sequence[str]) -> list[str]:
    present = existing_ids(conn, ids)
    return [i for i in ids if i in present]


def get_all_ids(conn: sqlite3.Connection, damage: Damage) -> list[str]:
    return [row[0] for row in conn.execute("SELECT id FROM entries ORDER BY receipt_order")]


def find_new(
    conn: sqlite3.Connection, damage: Damage, known_ids: Iterable[str], doc_id: str | None
) -> list[EntryMetadata]:
    """Metadata of entries not in ``known_ids``; known ids are dropped before decoding."""
    known = known_ids if isinstance(known_ids, set | frozenset) else set(known_ids)
    if doc_id is None:
        cursor = conn.execute(f"{_SELECT} ORDER BY receipt_order")
    else:
        cursor = conn.execute(f"{_SELECT} WHERE doc_id = ? ORDER BY receipt_order", (doc_id,))
    return _decoded((row for row in cursor if row[1] not in known), damage)


def find_for_docs(
    conn: sqlite3.Connection, damage: Damage, doc_ids: Sequence[str]
) -> dict[str, list[EntryMetadata]]:
    """Metadata of every entry of ``doc_ids``, by document, each in receipt order."""
    found: dict[str, list[EntryMetadata]] = {d: [] for d in doc_ids}
    for part in id_slices(list(found)):
        # by document, then receipt order: the index answers it (receipt order alone scanned
        # the whole table)
        marks = ",".join("?" * len(part))
        sql = f"{_SELECT} WHERE doc_id IN ({marks}) ORDER BY doc_id, receipt_order"
        for meta in _decoded(conn.execute(sql, tuple(part)), damage):
            found[meta.doc_id].append(meta)
    return found


def read_docs(conn: sqlite3.Connection, damage: Damage, doc_ids: Sequence[str]) -> DocEntries:
    """``find_for_docs`` plus the payloads of documents that have no snapshot entry.

    Per slice of ids, two queries through the ``(doc_id, receipt_order)`` index: the
    documents that have a snapshot, then each document's rows in receipt order, with the
    payload joined for the document entries (never attachment chunks) of the others, checked
    against its content hash. A bad payload is reported and left out; its row's metadata
    still comes back, as ``find_for_docs`` would return it. (Ordered by receipt order alone,
    SQLite scanned the whole table for every slice instead of looking the documents up.)
    """
    found: dict[str, list[EntryMetadata]] = {d: [] for d in doc_ids}
    payloads: dict[str, bytes] = {}
    snapshot = EntryType.DOC_SNAPSHOT.value
    for part in id_slices(list(found)):
        marks = ",".join("?" * len(part))
        # "+" keeps the planner on the document index instead of the type index
        snapshotted = [
            row[0]
            for row in conn.execute(
                f"SELECT DISTINCT doc_id FROM entries WHERE doc_id IN ({marks}) "
                "AND +entry_type = ?",
                (*part, snapshot),
            )
        ]
        sql = (
            f"SELECT e.{COLUMNS.replace(', ', ', e.')}, CASE WHEN e.entry_type <> ? "
            f"AND e.doc_id NOT IN ({','.join('?' * len(snapshotted))}) THEN p.data END "
            "FROM entries e LEFT JOIN payloads p ON p.receipt_order = e.receipt_order "
            f"WHERE e.doc_id IN ({marks}) ORDER BY e.doc_id, e.receipt_order"
        )
        for row in conn.execute(sql, (CHUNK_TYPE, *snapshotted, *part)):
            meta = decode(row)
            if isinstance(meta, DamagedRow):
                damage.rows.append(meta)
                continue
            found[meta.doc_id].append(meta)
            data = row[8]
            if data is None:
                continue
            if isinstance(data, bytes) and hashlib.sha256(data).digest() == row[5]:
                payloads[meta.id] = data
            else:
                reason = "payload does not match its content hash"
                damage.rows.append(DamagedRow(meta.receipt_order, meta.id, meta.doc_id, reason))
    return DocEntries(found, payloads)


def find_entries(
    conn: sqlite3.Connection,
    damage: Damage,
    entry_type: EntryType,
    created_from: int | None,
    created_until: int | None,
) -> list[EntryMetadata]:
    low = -(1 << 63) if created_from is None else created_from
    sql = f"{_SELECT} WHERE entry_type = ? AND created_at >= ?"
    args: list[object] = [entry_type.value, low]
    if created_until is not None:
        sql += " AND created_at < ?"
        args.append(created_until)
    return _decoded(conn.execute(sql + " ORDER BY receipt_order", args), damage)


#: Rows strictly after a cursor ``(r, id)``; its parameters come from ``_after``.
AFTER_CURSOR = "receipt_order >= ? AND NOT (receipt_order = ? AND id <= ?)"


def _after(cursor: ScanCursor) -> list[object]:
    return [cursor.receipt_order, cursor.receipt_order, cursor.id]


def scan(
    conn: sqlite3.Connection,
    damage: Damage,
    cursor: ScanCursor | None,
    limit: int,
    filters: ScanFilters | None,
) -> ScanPage:
    """A page after ``cursor`` in ``(receipt_order, id)`` order; ``has_more`` is exact.

    Receipt orders are unique, so "after (r, id)" is "receipt order > r, or = r with a larger
    id" (SQLite compares text as UTF-8 bytes: code point order). Rows are read ``limit + 1`` at
    a time; damaged ones are skipped and reading goes on until the page is full or the end.
    """
    if limit < 1:
        raise ValueError(f"a scan limit must be at least 1, got {limit}")
    where: list[str] = []
    args: list[object] = []
    if filters is not None:
        if filters.doc_id is not None:
            where.append("doc_id = ?")
            args.append(filters.doc_id)
        if filters.entry_types is not None:
            wanted = sorted(t.value for t in filters.entry_types)
            # "+" keeps the planner on receipt order instead of sorting a type index
            where.append(f"+entry_type IN ({','.join('?' * len(wanted))})")
            args += wanted
        if filters.created_from is not None:
            where.append("+created_at >= ?")
            args.append(filters.created_from)
        if filters.created_until is not None:
            where.append("+created_at < ?")
            args.append(filters.created_until)
    page: list[EntryMetadata] = []
    position = cursor
    while True:
        clause = list(where)
        params = list(args)
        if position is not None:
            clause.append(AFTER_CURSOR)
            params += _after(position)
        sql = _SELECT + (f" WHERE {' AND '.join(clause)}" if clause else "")
        batch = conn.execute(
            f"{sql} ORDER BY receipt_order LIMIT ?", [*params, limit + 1]
        ).fetchall()
        for meta in _decoded(batch, damage):
            if filters is None or filters.matches(meta):
                page.append(meta)
        if len(page) > limit or len(batch) <= limit:
            break
        last = batch[-1]
        position = ScanCursor(last[0], last[1])
    has_more = len(page) > limit
    page = page[:limit]
    if not page:
        return ScanPage((), cursor, has_more=False)
    last_meta = page[-1]
    return ScanPage(tuple(page), ScanCursor(last_meta.receipt_order, last_meta.id), has_more)


def scan_ids(
    conn: sqlite3.Connection, _damage: Damage, cursor: ScanCursor | None, limit: int
) -> IdPage:
    """``scan``'s order and cursor, reading only ``(receipt_order, id)``.

    A peer's id scan needs positions only; decoding each row's metadata cost a serving node
    as much as the read itself. Damaged rows are found by the reads that decode them
    (``get_entries`` of an id listed here); quarantined ones are no longer in ``entries``.
    """
    if limit < 1:
        raise ValueError(f"a scan limit must be at least 1, got {limit}")
    sql = "" if cursor is None else f" WHERE {AFTER_CURSOR}"
    params = [*(() if cursor is None else _after(cursor)), limit + 1]
    keys = conn.execute(
        f"SELECT receipt_order, id FROM entries{sql} ORDER BY receipt_order LIMIT ?", params
    ).fetchall()
    has_more = len(keys) > limit
    page = tuple(keys[:limit])
    return IdPage(page, ScanCursor(*page[-1]) if page else cursor, has_more)


def head(conn: sqlite3.Connection, damage: Damage) -> tuple[str, int, int]:
    """``(epoch, max_receipt_order, generation)``: equal heads mean equal id sets."""
    return read_state(conn)


def bloom(conn: sqlite3.Connection, damage: Damage) -> tuple[tuple[str, int, int], BloomSummary]:
    """The summary of every id, from the hashes each put stored (``bloomrows``).

    The state and the hashes are read in one snapshot, so the state names the id set exactly;
    the bits are set after the snapshot ends.
    """
    conn.execute("BEGIN")
    try:
        state = read_state(conn)
        packed = bloomrows.read_all(conn)
    finally:
        conn.execute("COMMIT")
    return state, BloomSummary.from_hash_bytes(packed)


def resolve(
    conn: sqlite3.Connection, damage: Damage, start_id: str, options: ResolveOptions | None
) -> list[str]:
    """The DAG walk, one query per breadth-first level."""
    walk = DependencyWalk(start_id, options)
    while not walk.done:
        walk.feed(_by_ids(conn, walk.wanted(), damage))
    return walk.result()


def quarantined_ids(conn: sqlite3.Connection, _damage: Damage) -> list[str]:
    return [row[0] for row in conn.execute("SELECT id FROM quarantine ORDER BY receipt_order")]
