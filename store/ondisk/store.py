"""``OnDiskStore``: the durable ``ContentAddressedStore`` on SQLite (layout in ``schema``).

Connections: one write connection, used under ``_write_lock`` by one worker at a time, and up
to ``max_readers`` read connections; WAL lets reads run while a commit is being written. All
blocking calls run in the process-wide worker pools (``workers``).

Puts are group-committed: callers queue their batches; the writer task takes everything
queued and stores it in one transaction (one fsync), then answers every caller.

Containment: an SQLite error that means the file cannot be trusted (damaged, unreadable) fails
this store alone: every later call raises a typed ``StoreError`` and ``health()`` says why. A
row or payload that fails its own check is quarantined (logged, counted in ``health()``) and
the call that met it goes on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from store.base import (
    ContentAddressedStore,
    DocEntries,
    IdPage,
    PutResult,
    ResolveOptions,
    ScanCursor,
    ScanFilters,
    ScanPage,
    StoreHead,
    StoreHealth,
    StoreState,
)
from store.bloom import BloomSummary
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.errors import (
    StoreClosedError,
    StoreCorruptionError,
    StoreError,
    StoreUnavailableError,
)
from store.ondisk import reads, writes
from store.ondisk.check import CheckReport, full_check, quick_check
from store.ondisk.options import CheckOnOpen, OnDiskStoreOptions
from store.ondisk.reads import Damage
from store.ondisk.schema import (
    CHECKPOINT_AT_BYTES,
    CHECKPOINT_FORCE_BYTES,
    DB_NAME,
    WITNESS_NAME,
    connect,
    create_or_check,
    is_fatal,
    read_state,
    refuse_foreign_layout,
    translate,
)
from store.ondisk.walindex import WalIndex
from store.ondisk.witness import Witness, Witnessed, lost_commits
from store.ondisk.workers import Pool, run_blocking, submit_blocking

logger = logging.getLogger("store.ondisk")
_T = TypeVar("_T")
#: How long a purge waits for readers before leaving the WAL truncation to a later moment.
_ERASE_WAIT_MS = 2000
#: How many quarantined entry ids ``health()`` names (the newest; the count covers them all).
QUARANTINED_IDS_SHOWN = 20


@dataclass(slots=True)
class _PutRequest:
    entries: Sequence[StoreEntry]
    future: asyncio.Future[PutResult]


class OnDiskStore(ContentAddressedStore):
    """A durable store in one directory, shareable by several processes."""

    def __init__(self, path: Path, options: OnDiskStoreOptions | None = None) -> None:
        self._options = options or OnDiskStoreOptions()
        self._dir = Path(path)
        self._db = self._dir / DB_NAME
        self._witness = Witness(self._dir / WITNESS_NAME)
        self._conn: sqlite3.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._idle_readers: list[sqlite3.Connection] = []
        self._reader_slots = asyncio.Semaphore(max(1, self._options.max_readers))
        self._pending: list[_PutRequest] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._checker: asyncio.Task[None] | None = None
        self._check_conn: sqlite3.Connection | None = None
        self._bloom: tuple[tuple[str, int, int], BloomSummary] | None = None
        self._state = StoreState.OK
        self._problem: str | None = None
        #: The kind of error a failed store answers with (damage, or a store that cannot write).
        self._failure: type[StoreError] = StoreCorruptionError
        self._recovered: str | None = None
        self._quarantined = 0
        self._quarantined_ids: list[str] = []
        self._checked_at: int | None = None
        self._erase_pending = False
        self._wal = self._db.with_name(DB_NAME + "-wal")
        self._wal_index = WalIndex(self._db.with_name(DB_NAME + "-shm"))
        #: Log bytes not yet checkpointed, as the last commit left them (see ``walindex``).
        self._wal_bytes = 0
        self._checkpointer: asyncio.Task[None] | None = None
        #: A background checkpoint ended short of the log's end (see ``_finish_checkpoint``).
        self._catch_up = False
        self._ckpt_conn: sqlite3.Connection | None = None
        self._closing = False
        self._closed = False

    @classmethod
    async def open(cls, path: Path, options: OnDiskStoreOptions | None = None) -> OnDiskStore:
        """Open (creating it if new) the store at ``path``; raises a typed ``StoreError``."""
        store = cls(path, options)
        try:
            await store.initialize()
        except BaseException:
            await store._release()
            raise
        return store

    async def initialize(self) -> None:
        """Open the database, compare it with the witness, start the writer and the check."""
        await run_blocking(self._guarded, self._open_files)
        self._writer = asyncio.create_task(self._writer_loop(), name=f"ondisk-writer:{self}")
        self._writer.add_done_callback(self._writer_ended)
        mode = self._options.check_on_open
        if mode is CheckOnOpen.BLOCKING:
            await self._check_on_open()
        elif mode is CheckOnOpen.BACKGROUND:
            self._checker = asyncio.create_task(self._check_on_open(), name=f"ondisk-check:{self}")

    def _open_files(self) -> None:
        """Worker: refuse foreign layouts, create or check the file, detect lost commits."""
        refuse_foreign_layout(self._dir)
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        empty = not self._db.exists() or self._db.stat().st_size == 0
        if empty and _size(self._wal) > 0:
            raise StoreCorruptionError(
                f"database {self._db} is missing or empty but its write-ahead log is not: "
                "the database file was lost; move the directory away to start afresh"
            )
        witnessed = self._witness.read()
        conn = self._conn = connect(self._db, self._options)
        created = create_or_check(conn, self._db)
        epoch, max_order, _generation = read_state(conn)
        lost = lost_commits(Witnessed(epoch, max_order), witnessed)
        if lost is None and created and witnessed is not None and witnessed.max_receipt_order > 0:
            lost = (
                f"the database file {self._db} was missing or held no store, but receipt order "
                f"{witnessed.max_receipt_order} was acknowledged"
            )
        if lost is not None:
            committed = writes.new_epoch(conn)
            epoch, max_order = committed.epoch, committed.max_receipt_order
            self._recovered = f"{lost}; started epoch {epoch} so peers send everything again"
            logger.error(
                "store lost acknowledged writes; recovered with a new epoch",
                extra={
                    "store": self.get_id(),
                    "file": str(self._db),
                    "reason": lost,
                    "epoch": epoch,
                },
            )
        if self._options.clear_local_data_on_startup:
            committed = writes.clear(conn)
            epoch, max_order = committed.epoch, committed.max_receipt_order
            writes.checkpoint_truncate(conn)
        self._wal_index.backlog()  # opens the index now, before two threads read it
        self._quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        self._quarantined_ids = [
            row[0]
            for row in conn.execute(
                "SELECT id FROM quarantine ORDER BY quarantined_at DESC, receipt_order DESC "
                "LIMIT ?",
                (QUARANTINED_IDS_SHOWN,),
            )
        ]
        self._remember(Witnessed(epoch, max_order))

    def _remember(self, seen: Witnessed) -> None:
        """Worker: record an acknowledged head; a failed write only weakens loss detection."""
        try:
            self._witness.write(seen)
        except OSError as exc:
            logger.warning(
                "store witness not written", extra={"store": self.get_id(), "error": str(exc)}
            )

    def __str__(self) -> str:
        return self.get_id()

    def get_id(self) -> str:
        return self._options.store_id or str(self._dir)

    # -- plumbing ----------------------------------------------------------------------------
    def _guarded(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Worker: run ``fn``, turning SQLite's errors into typed store errors."""
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            raise translate(exc, self._db) from exc

    async def _blocking(self, fn: Callable[..., _T], *args: Any, pool: Pool = "store") -> _T:
        try:
            return await run_blocking(self._guarded, fn, *args, pool=pool)
        except StoreError as exc:
            if is_fatal(exc):
                self._fail(exc)
            raise

    def _fail(self, exc: StoreError, *, damaged: bool = True) -> None:
        """Mark the store failed; ``damaged`` False: nothing was lost (no error is logged)."""
        if self._state is StoreState.FAILED:
            return
        self._state = StoreState.FAILED
        self._problem = str(exc)
        self._failure = type(exc)
        if damaged:
            logger.error("store failed", extra={"store": self.get_id(), "problem": self._problem})

    def _check_usable(self) -> None:
        if self._closed or self._closing:
            raise StoreClosedError(f"store {self.get_id()!r} is closed")
        if self._state is StoreState.FAILED:
            raise self._failure(f"store {self.get_id()!r} failed: {self._problem}")

    async def _read(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a query from ``reads`` on a read connection; quarantine what it found damaged."""
        self._check_usable()
        damage = Damage()
        async with self._reader_slots:
            conn = self._idle_readers.pop() if self._idle_readers else None
            holder = [conn]
            try:
                result: _T = await self._blocking(self._with_reader, holder, fn, damage, *args)
            finally:
                if holder[0] is not None:
                    self._idle_readers.append(holder[0])
        if damage:
            await self._quarantine(damage)
        return result

    def _with_reader(
        self, holder: list[sqlite3.Connection | None], fn: Callable[..., _T], *args: Any
    ) -> _T:
        if holder[0] is None:
            holder[0] = connect(self._db, self._options)
        return fn(holder[0], *args)

    async def _write(self, fn: Callable[..., _T], *args: Any) -> _T:
        async with self._write_lock:
            self._check_usable()
            return await self._blocking(fn, self._conn, *args)

    async def _quarantine(self, damage: Damage) -> None:
        try:
            moved = await self._write(writes.quarantine, damage.rows, damage.payloads)
        except StoreError as exc:
            logger.error(
                "damaged entries could not be quarantined",
                extra={"store": self.get_id(), "error": str(exc)},
            )
            return
        self._quarantined += len(moved)
        shown = [row.id for row in reversed(moved)] + self._quarantined_ids
        self._quarantined_ids = shown[:QUARANTINED_IDS_SHOWN]
        self._bloom = None
        for row in moved:
            logger.warning(
                "damaged entry quarantined",
                extra={
                    "store": self.get_id(),
                    "entry_id": row.id[:200],
                    "receipt_order": row.receipt_order,
                    "reason": row.reason,
                },
            )

    # -- write -------------------------------------------------------------------------------
    def _writer_ended(self, task: asyncio.Task[None]) -> None:
        """A writer that stops before close fails the store: no put may wait on it forever."""
        if self._closing:
            return
        error = None if task.cancelled() else task.exception()
        problem = f"its writer stopped: {error!r}" if error else "its writer was cancelled"
        failure = StoreUnavailableError(f"store {self.get_id()!r} cannot write: {problem}")
        if error is None and not self._pending:
            # An event loop ending with the store still open (asyncio.run cancels what is
            # left): nothing was lost, so this is a missing close, not a damaged store.
            logger.warning(
                "store left open when its event loop ended: close it (or its store factory)",
                extra={"store": self.get_id()},
            )
            self._fail(failure, damaged=False)
            return
        self._fail(failure)
        for request in self._pending:
            if not request.future.done():
                request.future.set_exception(failure)
        self._pending = []

    def _healed(self, ids: Sequence[str]) -> None:
        self._quarantined = max(0, self._quarantined - len(ids))
        gone = set(ids)
        self._quarantined_ids = [i for i in self._quarantined_ids if i not in gone]
        logger.warning(
            "quarantined entries restored from a good copy",
            extra={
                "store": self.get_id(),
                "count": len(ids),
                "entry_ids": [i[:200] for i in ids[:20]],
            },
        )

    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        self._check_usable()
        if self._writer is None or self._writer.done():
            raise StoreUnavailableError(f"store {self.get_id()!r} has no running writer")
        if not entries:
            return PutResult()
        future: asyncio.Future[PutResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_PutRequest(list(entries), future))
        self._wakeup.set()
        return await future

    async def _writer_loop(self) -> None:
        """The one writer: each round commits everything queued in one transaction."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch = [request for request in self._pending if not request.future.done()]
            self._pending = []
            if batch:
                async with self._write_lock:
                    stored = await self._commit_round(batch)
                    if stored and self._catch_up:  # its callers have their answers already
                        await self._finish_checkpoint()
                if stored:
                    self._maybe_checkpoint()
            if self._closing and not self._pending:
                return

    async def _commit_round(self, batch: list[_PutRequest]) -> bool:
        """Commit ``batch`` in a worker; whether it was stored. The caller holds the write lock.

        The worker hands its outcome straight to the event loop (``_answer``), which answers
        every caller at once: a lone put waits one loop pass after its fsync, not the three
        that awaiting an executor future through ``asyncio.shield`` and this task cost (each
        pass wakes the loop on a busy machine). Like ``run_blocking``, a cancelled round still
        waits for its worker, so the connection is never used by two threads.
        """
        try:
            self._check_usable()
        except StoreError as exc:
            self._answer(batch, None, exc)
            return False
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[bool] = loop.create_future()
        conn, entries = self._conn, [request.entries for request in batch]

        def work() -> None:  # worker thread
            try:
                committed = self._guarded(self._commit, conn, entries)
            except BaseException as exc:  # every caller of the round gets the failure
                loop.call_soon_threadsafe(self._answer, batch, None, exc, answered)
            else:
                loop.call_soon_threadsafe(self._answer, batch, committed, None, answered)

        try:
            worker = submit_blocking(work)
        except RuntimeError as exc:  # the pool is shut down (the interpreter is exiting)
            self._answer(batch, None, exc)
            return False
        try:
            return await answered
        except asyncio.CancelledError:
            while not worker.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({asyncio.wrap_future(worker)})
            raise

    def _answer(
        self,
        batch: list[_PutRequest],
        committed: writes.Committed | None,
        error: BaseException | None,
        answered: asyncio.Future[bool] | None = None,
    ) -> None:
        """On the loop: give each caller of a round its result, or the round's failure."""
        if committed is None:
            if isinstance(error, StoreError) and is_fatal(error):
                self._fail(error)
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(error or StoreError("the commit failed"))
        else:
            for request, result in zip(batch, committed.results, strict=True):
                if not request.future.done():
                    request.future.set_result(result)
            if committed.healed:
                self._healed(committed.healed)
        if answered is not None and not answered.done():
            answered.set_result(committed is not None)

    async def _finish_checkpoint(self) -> None:
        """Copy what a background checkpoint left over, between two commits (write lock held).

        A background checkpoint runs while commits go on, so it ends a few frames short, and
        SQLite restarts the log from its beginning only once every frame is copied. Without
        this the log of a steady writer never restarted: it grew to the forced size (64 MiB)
        and every commit appended to the file, an fsync that must also record the new size
        and blocks; overwriting frames of a restarted log costs about two thirds of that.
        """
        self._catch_up = False
        try:
            await self._blocking(self._checkpoint_between_commits)
        except StoreError as exc:
            logger.warning(
                "checkpoint after a background one failed",
                extra={"store": self.get_id(), "error": str(exc)},
            )

    def _maybe_checkpoint(self) -> None:
        """Start a background checkpoint once the WAL has grown (one at a time, owned)."""
        if self._wal_bytes < CHECKPOINT_AT_BYTES or self._closing:
            return
        if self._checkpointer is None or self._checkpointer.done():
            if self._checkpointer is not None:
                self._reap_checkpoint(self._checkpointer)
            self._checkpointer = asyncio.create_task(
                self._blocking(self._checkpoint, pool="checkpoint"), name=f"ondisk-ckpt:{self}"
            )

    def _reap_checkpoint(self, task: asyncio.Task[None]) -> None:
        """A finished checkpoint's failure is logged, never lost (the next one tries again)."""
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "background checkpoint failed",
                extra={"store": self.get_id(), "error": str(task.exception())},
            )

    def _checkpoint(self) -> None:
        """Worker (checkpoint pool): copy committed WAL pages into the database file.

        PASSIVE: it never waits for readers or the writer; what it cannot copy now, the
        next one does. Uses its own connection, so commits go on meanwhile.
        """
        if self._ckpt_conn is None:
            self._ckpt_conn = connect(self._db, self._options)
        _checkpoint_passive(self._ckpt_conn)
        # Commits went on meanwhile (what the pragma reports stops at the frames it saw):
        # whatever the index shows beyond, the writer copies between two commits.
        self._catch_up = self._wal_index.backlog() != 0

    def _commit(
        self, conn: sqlite3.Connection, batches: list[Sequence[StoreEntry]]
    ) -> writes.Committed:
        committed = writes.commit_batches(conn, batches)
        self._remember(Witnessed(committed.epoch, committed.max_receipt_order))
        size = self._measure_wal()
        # A log the background checkpoints never catch up with completely is never restarted:
        # it grows, though its backlog stays small. This one, between two transactions, does.
        if size >= CHECKPOINT_FORCE_BYTES:
            _checkpoint_passive(conn)
        return committed

    def _checkpoint_between_commits(self) -> None:
        """Worker: copy the leftover frames, then measure again: the backlog the last commit
        measured is gone, and must not start a background checkpoint of an empty log."""
        _checkpoint_passive(self._conn)
        self._measure_wal()

    def _measure_wal(self) -> int:
        """Worker: note the log's backlog (its file size when the index cannot tell); returns
        the file's size."""
        size, backlog = _size(self._wal), self._wal_index.backlog()
        self._wal_bytes = size if backlog is None else backlog
        return size

    async def purge_doc_history(self, doc_id: str) -> int:
        purged = await self._write(self._purge, doc_id)
        self._bloom = None
        return purged

    def _purge(self, conn: sqlite3.Connection, doc_id: str) -> int:
        count, committed = writes.purge_doc(conn, doc_id)
        self._remember(Witnessed(committed.epoch, committed.max_receipt_order))
        if count:
            self._erase(conn)
        return count

    def _erase(self, conn: sqlite3.Connection) -> None:
        """Worker: move the zeroed pages into the file and empty the WAL of the old ones."""
        conn.execute(f"PRAGMA busy_timeout = {_ERASE_WAIT_MS}")
        try:
            self._erase_pending = not writes.checkpoint_truncate(conn)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self._options.busy_timeout_s * 1000)}")
        if self._erase_pending:
            logger.warning(
                "purged bytes stay in the write-ahead log until readers finish",
                extra={"store": self.get_id()},
            )

    async def clear_all_local_data(self) -> None:
        await self._write(self._clear)
        self._bloom = None

    def _clear(self, conn: sqlite3.Connection) -> None:
        committed = writes.clear(conn)
        self._remember(Witnessed(committed.epoch, committed.max_receipt_order))
        self._erase(conn)

    # -- read --------------------------------------------------------------------------------
    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        return await self._read(reads.get_entries, list(ids))

    async def get_metadata(self, ids: Sequence[str]) -> list[EntryMetadata]:
        return await self._read(reads.get_metadata, list(ids))

    async def get_payloads(self, ids: Sequence[str]) -> dict[str, bytes]:
        return await self._read(reads.get_payloads, list(ids))

    async def quarantined_ids(self) -> list[str]:
        if not self._quarantined:
            return []
        return await self._read(reads.quarantined_ids)

    async def has_entries(self, ids: Sequence[str]) -> list[str]:
        return await self._read(reads.has_entries, list(ids))

    async def get_all_ids(self) -> list[str]:
        return await self._read(reads.get_all_ids)

    async def find_new_entries(self, known_ids: Iterable[str]) -> list[EntryMetadata]:
        return await self._read(reads.find_new, known_ids, None)

    async def find_new_entries_for_doc(
        self, known_ids: Iterable[str], doc_id: str
    ) -> list[EntryMetadata]:
        return await self._read(reads.find_new, known_ids, doc_id)

    async def find_entries_for_docs(self, doc_ids: Sequence[str]) -> dict[str, list[EntryMetadata]]:
        return await self._read(reads.find_for_docs, list(doc_ids))

    async def read_docs(self, doc_ids: Sequence[str]) -> DocEntries:
        return await self._read(reads.read_docs, list(doc_ids))

    async def find_entries(
        self, entry_type: EntryType, created_from: int | None, created_until: int | None
    ) -> list[EntryMetadata]:
        return await self._read(reads.find_entries, entry_type, created_from, created_until)

    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        return await self._read(reads.scan, cursor, limit, filters)

    async def scan_ids_since(
        self, cursor: ScanCursor | None, limit: int = 1000, *, scanner_epoch: str | None = None
    ) -> IdPage:
        return await self._read(reads.scan_ids, cursor, limit)

    async def get_store_head(self) -> StoreHead:
        epoch, max_order, _generation = await self._read(reads.head)
        return StoreHead(epoch, max_order)

    async def get_id_bloom_summary(self) -> BloomSummary:
        state = await self._read(reads.head)
        if self._bloom is not None and self._bloom[0] == state:
            return self._bloom[1]
        built = await self._read(reads.bloom)
        self._bloom = built
        return built[1]

    async def resolve_dependencies(
        self, start_id: str, options: ResolveOptions | None = None
    ) -> list[str]:
        return await self._read(reads.resolve, start_id, options)

    # -- checks, status and lifecycle --------------------------------------------------------
    def health(self) -> StoreHealth:
        return StoreHealth(
            self._state,
            self._problem,
            self._recovered,
            self._quarantined,
            self._checked_at,
            tuple(self._quarantined_ids),
        )

    async def check(self, full: bool = True, quarantine: bool = True) -> CheckReport:
        """Check the file now (``integrity_check`` and every row, or ``quick_check``).

        Structural damage fails the store; damaged rows and payloads are quarantined unless
        ``quarantine`` is false (a look that changes nothing).
        """
        self._check_usable()
        report = await self._blocking(self._run_check, full, pool="check")
        self._checked_at = time.time_ns() // 1_000_000
        if report.structure:
            self._fail(StoreCorruptionError(f"database {self._db} is damaged: {report.summary()}"))
            return report
        if report.problems:
            logger.warning(
                "store check found inconsistencies",
                extra={"store": self.get_id(), "problems": "; ".join(report.problems)},
            )
        if quarantine and (report.damaged_rows or report.bad_payloads):
            bad = [
                (digest, "payload does not match its content hash")
                for digest in report.bad_payloads
            ]
            await self._quarantine(Damage(list(report.damaged_rows), bad))
        return report

    def _run_check(self, full: bool) -> CheckReport:
        conn = self._check_conn = connect(self._db, self._options)
        try:
            return full_check(conn) if full else quick_check(conn)
        finally:
            self._check_conn = None
            conn.close()

    async def _check_on_open(self) -> None:
        self._state = StoreState.CHECKING
        try:
            await self.check(full=False)
        except StoreError as exc:
            if not self._closing:
                self._fail(exc)
        finally:
            if self._state is StoreState.CHECKING:
                self._state = StoreState.OK

    async def close(self) -> None:
        """Finish queued writes, stop the check, close every connection."""
        if self._closed or self._closing:
            return
        await self._release()

    async def _release(self) -> None:
        """Stop the tasks (the writer drains its queue first), close every connection."""
        self._closing = True
        if self._writer is not None:
            self._wakeup.set()
            await asyncio.wait({self._writer})  # a writer that died was reported as it ended
        if self._checker is not None:
            check_conn = self._check_conn
            if check_conn is not None:
                check_conn.interrupt()
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        if self._checkpointer is not None:
            await asyncio.wait({self._checkpointer})
            self._reap_checkpoint(self._checkpointer)
        for _ in range(max(1, self._options.max_readers)):
            await self._reader_slots.acquire()
        async with self._write_lock:
            owned = (self._conn, self._ckpt_conn, *self._idle_readers)
            connections = [c for c in owned if c is not None]
            self._conn, self._ckpt_conn, self._idle_readers = None, None, []
            await run_blocking(self._close_all, connections)
        self._closed = True

    def _close_all(self, connections: list[sqlite3.Connection]) -> None:
        if self._erase_pending and connections:
            try:
                writes.checkpoint_truncate(connections[0])
            except sqlite3.Error as exc:
                logger.warning(
                    "purged bytes may stay in the write-ahead log",
                    extra={"store": self.get_id(), "error": str(exc)},
                )
        for conn in connections:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._witness.close()
        self._wal_index.close()


def _checkpoint_passive(conn: sqlite3.Connection | None) -> None:
    """Worker: copy what the log holds into the database, as far as readers allow now."""
    if conn is not None:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
