"""The SQLite file of an on-disk store: its tables, its connections, and what an open checks.

::

    <dir>/store.sqlite        the database (WAL mode); its -wal and -shm files beside it
    <dir>/store.witness       the last committed (epoch, receipt order) seen (see ``witness``)

Tables (all ``STRICT``)::

    state        one row: epoch, order_floor, generation
    entries      receipt_order (rowid) | id UNIQUE | doc_id | entry_type | created_at |
                 content_hash | metadata (msgpack, the codec's layout) | checksum
                 indexes: (doc_id, receipt_order), (entry_type, created_at)
    payloads     receipt_order (rowid) -> data       (every entry but attachment chunks)
    chunks       content_hash UNIQUE | refs | data    (attachment chunks, kept once: equal
                                                      chunks are equal ciphertext)
    bloom_blocks first_order (rowid) | last_order | hashes: the Bloom base hashes of the entries
                 in that range of receipt orders, written once 256 new ones gathered; a
                 summary hashes the newest itself (see ``bloomrows``)
    quarantine   entries set aside because their stored bytes were damaged

``receipt_order`` is assigned inside the write transaction as one past the store's maximum,
``max(order_floor, max(entries.receipt_order))``, so it only grows, across processes and purges
alike: a deletion first raises ``order_floor`` to the maximum it may remove, and bumps
``generation`` (caches of the id set key on it). A put writes no state row: one page less per
commit.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from store.errors import (
    StoreCorruptionError,
    StoreError,
    StoreFormatError,
    StoreFullError,
    StoreLockedError,
    StoreUnavailableError,
)
from store.ids import uuid7
from store.ondisk import bloomrows
from store.ondisk.options import OnDiskStoreOptions

logger = logging.getLogger("store.ondisk")

DB_NAME = "store.sqlite"
WITNESS_NAME = "store.witness"
#: ``PRAGMA application_id``: "MDOD", so a foreign SQLite file is recognised as foreign.
APPLICATION_ID = 0x4D444F44
#: ``PRAGMA user_version``: the layout of the tables below. 2 since entries carry the reference's
#: two signatures; format 1 stores (never released) are refused, not migrated. 3 since puts
#: write the Bloom hashes (``bloom_blocks``); format 2 is migrated at open (``_migrate_2_to_3``).
#: 4 since the newest entries (the tail, see ``bloomrows``) wait for a block: the tables are
#: format 3's, so format 3 is taken as it is; an older build would grow its last block over
#: the tail without hashing it, so it must refuse format 4.
FORMAT_VERSION = 4
#: Files of the segment-log store that came before (never released, so not migrated).
OLD_FORMAT_MARKERS = ("segments", "index.snap")

_TABLES = """
CREATE TABLE state (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    epoch TEXT NOT NULL,
    order_floor INTEGER NOT NULL,
    generation INTEGER NOT NULL
) STRICT;
CREATE TABLE entries (
    receipt_order INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL,
    entry_type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    content_hash BLOB NOT NULL,
    metadata BLOB NOT NULL,
    checksum INTEGER NOT NULL
) STRICT;
CREATE INDEX entries_by_doc ON entries (doc_id, receipt_order);
CREATE INDEX entries_by_type ON entries (entry_type, created_at);
CREATE TABLE payloads (
    receipt_order INTEGER PRIMARY KEY,
    data BLOB NOT NULL
) STRICT;
CREATE TABLE chunks (
    content_hash BLOB NOT NULL UNIQUE,
    refs INTEGER NOT NULL,
    data BLOB NOT NULL
) STRICT;
CREATE TABLE quarantine (
    receipt_order INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    quarantined_at INTEGER NOT NULL
) STRICT;
"""

#: Log bytes not yet checkpointed from which a background checkpoint is started.
CHECKPOINT_AT_BYTES = 4 * 1024 * 1024
#: WAL file size from which a commit checkpoints itself (the background ones fall behind).
CHECKPOINT_FORCE_BYTES = 64 * 1024 * 1024
#: Size a reset WAL is truncated back to, so an idle store does not keep a large one.
WAL_SIZE_LIMIT = 16 * 1024 * 1024

_CORRUPTION = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
_BUSY = {"SQLITE_BUSY", "SQLITE_LOCKED"}


def _base_error(exc: sqlite3.Error) -> str:
    """SQLite's primary error name: ``SQLITE_IOERR_SHORT_READ`` -> ``SQLITE_IOERR``."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return "_".join(name.split("_")[:2])


def translate(exc: sqlite3.Error, where: Path) -> StoreError:
    """The typed store error for an SQLite failure on the database at ``where``."""
    base = _base_error(exc)
    if base in _CORRUPTION or "malformed" in str(exc) or "not a database" in str(exc):
        return StoreCorruptionError(f"database {where} is damaged: {exc}")
    if base in _BUSY:
        return StoreLockedError(f"database {where} stayed locked by another writer: {exc}")
    if base in {"SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_READONLY"}:
        return StoreUnavailableError(f"database {where} cannot be used: {exc}")
    if base == "SQLITE_FULL":
        return StoreFullError(f"database {where}: the disk is full ({exc})")
    return StoreError(f"database {where}: {exc}")


def is_fatal(error: StoreError) -> bool:
    """Whether an error means the file cannot be trusted until it is checked or repaired."""
    if isinstance(error, StoreFullError):
        return False
    return isinstance(error, StoreCorruptionError | StoreUnavailableError)


def connect(path: Path, options: OnDiskStoreOptions) -> sqlite3.Connection:
    """A connection with the store's settings; transactions are explicit (autocommit mode)."""
    conn = sqlite3.connect(
        path,
        timeout=options.busy_timeout_s,
        isolation_level=None,
        check_same_thread=False,  # used by one worker at a time, never two at once
    )
    try:
        conn.execute(f"PRAGMA synchronous = {'FULL' if options.fsync else 'OFF'}")
        conn.execute(f"PRAGMA cache_size = {-int(options.cache_kib)}")
        conn.execute("PRAGMA secure_delete = ON")  # purged bytes are zeroed, not just unlinked
        conn.execute("PRAGMA trusted_schema = OFF")
        # checkpoints run in the background (``OnDiskStore``), not inside a commit
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
    except BaseException:
        conn.close()
        raise
    return conn


def refuse_foreign_layout(directory: Path) -> None:
    """Raise if ``directory`` is not a directory or holds the old segment-log format."""
    if directory.exists() and not directory.is_dir():
        raise StoreUnavailableError(f"store path {directory} exists but is not a directory")
    found = [name for name in OLD_FORMAT_MARKERS if (directory / name).exists()]
    if found:
        raise StoreFormatError(
            f"{directory} holds the segment-log store of earlier mindood builds "
            f"({', '.join(found)}); this version keeps stores in SQLite and does not read it: "
            "move the directory away and let peers sync the database again"
        )


#: How long an open waits for another process that is creating the same file.
_WAL_PATIENCE_S = 30.0


def _switch_to_wal(conn: sqlite3.Connection) -> str:
    """``journal_mode = WAL``, waiting while another process holds a new file's lock.

    Changing the journal mode of a file another connection is creating can fail with "locked"
    at once, without SQLite's busy handler, so several processes opening one new store at the
    same time retry here (bounded) instead of failing.
    """
    deadline = time.monotonic() + _WAL_PATIENCE_S
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if _base_error(exc) not in _BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def create_or_check(conn: sqlite3.Connection, path: Path) -> bool:
    """Make the file a store (WAL, tables, state row) if it is new; True if it was created.

    An existing file must carry our application id and a format this version knows.
    """
    mode = _switch_to_wal(conn)
    if str(mode).lower() != "wal":
        raise StoreUnavailableError(f"database {path} cannot switch to WAL mode (got {mode!r})")
    conn.execute("BEGIN IMMEDIATE")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        created = False
        if app_id == 0 and version == 0 and tables == 0:
            for statement in [*_TABLES.split(";"), bloomrows.CREATE]:
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO state VALUES (1, ?, 0, 0)", (uuid7(),))
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
            created = True
        elif app_id != APPLICATION_ID:
            raise StoreFormatError(f"{path} is an SQLite database but not a mindood store")
        elif version == 1:
            raise StoreFormatError(
                f"{path} was written by an earlier mindood (store format 1), whose entries are "
                "signed in a layout MindooDB cannot verify; there is no migration: move it "
                "aside and sync the database again from a peer"
            )
        elif version == 2:
            _migrate_2_to_3(conn, path)
        elif version == 3:  # every id has its block already: an empty tail
            conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
        elif version != FORMAT_VERSION:
            raise StoreFormatError(
                f"{path} has store format {version}; this version reads format {FORMAT_VERSION}"
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return created


#: Progress of a migration is logged every this many ids.
_MIGRATION_LOG_EVERY = 100_000


def _migrate_2_to_3(conn: sqlite3.Connection, path: Path) -> None:
    """Inside the open's write transaction: hash every stored id into ``bloom_blocks``.

    Format 2 hashed ids when a summary was first asked (``bloom_hashes``, ``bloom_through``);
    both go. One transaction: an interrupted migration leaves format 2, redone at next open.
    Measured: 1.3 s at a million entries (hashing and writing), once.
    """
    (total,) = conn.execute("SELECT count(*) FROM entries").fetchone()
    started = time.monotonic()
    logger.info(
        f"migrating store to format {FORMAT_VERSION}: hashing every id for Bloom summaries",
        extra={"file": str(path), "ids": total},
    )
    logged = 0

    def progress(done: int) -> None:
        nonlocal logged
        if done - logged >= _MIGRATION_LOG_EVERY:
            logged = done
            logger.info(
                "store migration: ids hashed",
                extra={"file": str(path), "done": done, "ids": total},
            )

    conn.execute(bloomrows.CREATE)
    done = bloomrows.backfill(conn, progress)
    conn.execute("DROP TABLE bloom_hashes")
    if sqlite3.sqlite_version_info >= (3, 35, 0):  # DROP COLUMN; an older SQLite keeps it, unread
        conn.execute("ALTER TABLE state DROP COLUMN bloom_through")
    conn.execute(f"PRAGMA user_version = {FORMAT_VERSION}")
    logger.info(
        "store migrated from format 2",
        extra={"file": str(path), "ids": done, "seconds": round(time.monotonic() - started, 2)},
    )


_STATE = (
    "SELECT epoch, max(order_floor, coalesce((SELECT max(receipt_order) FROM entries), 0)), "
    "generation FROM state"
)


def read_state(conn: sqlite3.Connection) -> tuple[str, int, int]:
    """``(epoch, max_receipt_order, generation)`` as committed."""
    row = conn.execute(_STATE).fetchone()
    if row is None:
        raise StoreCorruptionError("the store's state row is missing")
    return str(row[0]), int(row[1]), int(row[2])


def before_removing(conn: sqlite3.Connection) -> None:
    """Inside a write transaction that deletes entries: keep the maximum, mark the change."""
    conn.execute(
        "UPDATE state SET generation = generation + 1, order_floor = "
        "max(order_floor, coalesce((SELECT max(receipt_order) FROM entries), 0))"
    )
