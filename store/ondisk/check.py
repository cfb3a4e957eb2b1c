"""Checking a store's database file: SQLite's own checks, then every row and payload.

``quick_check`` (at open, in the background) proves the file's structure: pages, B-trees,
free lists. ``full_check`` (``mindood store check``) adds ``integrity_check`` (indexes match
their tables) and reads every entry row and every payload back against its checksum or
content hash, the payload reference counts against the entries, and the stored Bloom hashes
against the ids.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field

from store.ondisk import bloomrows
from store.ondisk.rows import CHUNK_TYPE, COLUMNS, DamagedRow, decode

#: Problems listed at most (a badly damaged file can produce millions of lines).
MAX_PROBLEMS = 20


@dataclass(slots=True)
class CheckReport:
    """What a check found; ``ok`` only if nothing at all."""

    kind: str
    #: What SQLite's own check found: the file's structure is broken.
    structure: list[str] = field(default_factory=list)
    #: Rows that disagree with each other (reference counts, the state row).
    problems: list[str] = field(default_factory=list)
    entries_checked: int = 0
    payloads_checked: int = 0
    damaged_rows: list[DamagedRow] = field(default_factory=list)
    bad_payloads: list[bytes] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.structure or self.problems or self.damaged_rows or self.bad_payloads)

    def summary(self) -> str:
        if self.ok:
            return f"{self.kind}: ok"
        parts = self.structure[:3] + self.problems[:3]
        if self.damaged_rows:
            parts.append(f"{len(self.damaged_rows)} damaged entry rows")
        if self.bad_payloads:
            parts.append(f"{len(self.bad_payloads)} payloads not matching their hash")
        return f"{self.kind}: " + "; ".join(parts)


def sqlite_check(conn: sqlite3.Connection, pragma: str) -> list[str]:
    """``quick_check`` or ``integrity_check``: the problems found (empty when "ok")."""
    lines = [str(row[0]) for row in conn.execute(f"PRAGMA {pragma}({MAX_PROBLEMS})")]
    return [] if lines == ["ok"] else lines


def quick_check(conn: sqlite3.Connection) -> CheckReport:
    return CheckReport("quick_check", sqlite_check(conn, "quick_check"))


def full_check(conn: sqlite3.Connection) -> CheckReport:
    report = CheckReport("integrity_check", sqlite_check(conn, "integrity_check"))
    if report.structure:
        return report  # rows of a structurally broken file are not worth reading one by one
    for row in conn.execute(f"SELECT {COLUMNS} FROM entries"):
        report.entries_checked += 1
        meta = decode(row)
        if isinstance(meta, DamagedRow):
            report.damaged_rows.append(meta)
    own = (
        "SELECT e.receipt_order, e.id, e.doc_id, e.content_hash, p.data FROM entries e "
        "JOIN payloads p ON p.receipt_order = e.receipt_order"
    )
    for order, entry_id, doc_id, digest, data in conn.execute(own):
        report.payloads_checked += 1
        if hashlib.sha256(data).digest() != digest:
            reason = "payload does not match its content hash"
            report.damaged_rows.append(DamagedRow(order, entry_id, doc_id, reason))
    for digest, data in conn.execute("SELECT content_hash, data FROM chunks"):
        report.payloads_checked += 1
        if hashlib.sha256(data).digest() != digest:
            report.bad_payloads.append(digest)
    uses = (
        "SELECT content_hash AS h, count(*) AS n FROM entries "
        f"WHERE entry_type = '{CHUNK_TYPE}' GROUP BY content_hash"
    )
    counts = {
        "shared chunks count their users wrongly": (
            f"SELECT count(*) FROM chunks c LEFT JOIN ({uses}) u ON u.h = c.content_hash "
            "WHERE u.n IS NULL OR u.n != c.refs"
        ),
        "attachment chunks lack their shared payload": (
            f"SELECT count(*) FROM ({uses}) u LEFT JOIN chunks c ON c.content_hash = u.h "
            "WHERE c.content_hash IS NULL"
        ),
        "payloads belong to no entry": (
            "SELECT count(*) FROM payloads p LEFT JOIN entries e "
            "ON e.receipt_order = p.receipt_order WHERE e.receipt_order IS NULL"
        ),
        "entries lack their payload": (
            "SELECT count(*) FROM entries e LEFT JOIN payloads p "
            f"ON p.receipt_order = e.receipt_order WHERE e.entry_type != '{CHUNK_TYPE}' "
            "AND p.receipt_order IS NULL"
        ),
    }
    for what, sql in counts.items():
        (found,) = conn.execute(sql).fetchone()
        if found:
            report.problems.append(f"{found} {what}")
    report.problems += bloomrows.mismatches(conn)
    if conn.execute("SELECT count(*) FROM state").fetchone()[0] != 1:
        report.problems.append("the state row is missing or repeated")
    return report
