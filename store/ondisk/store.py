"""``OnDiskStore``: the durable ``ContentAddressedStore`` (see ``store.ondisk`` for the layout).

Concurrency inside one process: every step that touches the files' shared state (reading new
records, appending, erasing, snapshotting) runs under ``_io_lock``, with the blocking part in
this store's worker threads and the index changed only on the event loop thread afterwards.
Queries run without the lock against the index once one ``fstat`` says nobody appended since.

Across processes: LOCK is held exclusively around every write batch (after catching up with
what others appended) and shared while catching up, so no reader trusts a half-written batch.

Puts are group-committed: callers queue their batches, one writer task takes everything queued
and appends it with a single fsync, then answers every caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from store.base import (
    CompactionStatus,
    IndexBuildStatus,
    IndexPhase,
    PutResult,
)
from store.entry import EntryMetadata, StoreEntry
from store.errors import CorruptEntryError, StoreClosedError
from store.ondisk import housekeeping
from store.ondisk.housekeeping import Stats
from store.ondisk.index import LogIndex
from store.ondisk.layout import Layout
from store.ondisk.log import CatchUp, SegmentLog
from store.ondisk.options import OnDiskStoreOptions
from store.ondisk.queries import IndexQueries
from store.ondisk.records import payload_extent
from store.ondisk.recovery import Loaded, ProgressSink, RecoveryProgress, load
from store.ondisk.writer import PlannedPut, apply_put, plan_put, purge_record

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(slots=True)
class _PutRequest:
    entries: Sequence[StoreEntry]
    future: asyncio.Future[PutResult]


class OnDiskStore(IndexQueries):
    """A durable store in one directory, shareable by several processes."""

    def __init__(self, path: Path, options: OnDiskStoreOptions | None = None) -> None:
        self._options = options or OnDiskStoreOptions()
        self._layout = Layout(Path(path))
        self._log = SegmentLog(self._layout, self._options.fsync, self._options.max_open_segments)
        self._index = LogIndex()
        self._epoch = ""
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ondisk-store")
        self._io_lock = asyncio.Lock()
        self._pending: list[_PutRequest] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._phase = IndexPhase.IDLE
        self._progress01 = 0.0
        self._closing = False
        self._closed = False
        self.stats = Stats()

    @classmethod
    async def open(
        cls,
        path: Path,
        options: OnDiskStoreOptions | None = None,
        progress: Callable[[RecoveryProgress], None] | None = None,
    ) -> OnDiskStore:
        """Open (creating, recovering or rebuilding as needed) the store at ``path``."""
        store = cls(path, options)
        try:
            await store.initialize(progress)
        except BaseException:
            await store._release()
            raise
        return store

    async def initialize(self, progress: Callable[[RecoveryProgress], None] | None = None) -> None:
        """Recover the files and build the index; ``get_index_build_status`` tracks it."""
        loop = asyncio.get_running_loop()
        self._phase = IndexPhase.BUILDING

        def on_progress(report: RecoveryProgress) -> None:
            self._progress01 = report.progress01
            if progress is not None:
                progress(report)

        def sink(report: RecoveryProgress) -> None:
            loop.call_soon_threadsafe(on_progress, report)

        async with self._io_lock:
            await self._run(self._log.open_lock)
            await self._run(self._log.lock, True)
            try:
                if self._options.clear_local_data_on_startup:
                    self._log.forget()
                    await self._run(housekeeping.wipe, self._log)
                await self._reload(exclusive=True, sink=sink)
            finally:
                self._log.unlock()
        self._writer = asyncio.create_task(self._writer_loop(), name=f"ondisk-writer:{self}")
        self._phase = IndexPhase.READY
        self._progress01 = 1.0
        self._ready.set()

    def __str__(self) -> str:
        return self.get_id()

    def get_id(self) -> str:
        return self._options.store_id or str(self._layout.root)

    @property
    def indexed(self) -> bool:
        return self._options.indexing_enabled

    # -- plumbing ----------------------------------------------------------------------------
    async def _run(self, fn: Callable[..., _T], *args: object) -> _T:
        """Run blocking ``fn`` in a worker; if cancelled, still wait for it to finish.

        Waiting keeps two workers from ever touching the files at once: the caller's
        ``_io_lock`` is released only after its worker is done.
        """
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(fn, *args)
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            while not future.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait({future})
            raise

    def _check_open(self) -> None:
        if self._closed or self._closing:
            raise StoreClosedError(f"store {self.get_id()!r} is closed")

    async def _reload(self, exclusive: bool, sink: ProgressSink | None = None) -> None:
        """Rebuild the whole in-memory state from disk (open, or the files were replaced)."""
        self._log.forget()
        loaded = await self._run(
            functools.partial(
                load, self._log, exclusive=exclusive, use_snapshot=self.indexed, progress=sink
            )
        )
        self._install(loaded)
        if exclusive:
            await self._housekeep(loaded.rebuilt and self._options.compaction_enabled)

    def _install(self, loaded: Loaded) -> None:
        housekeeping.report_load(self.get_id(), loaded)
        self._epoch = loaded.epoch
        self._index = loaded.index if self.indexed else LogIndex()
        self._log.commit_position(
            loaded.tail_seg, loaded.tail_pos, loaded.coverage, loaded.stuck_size, replace=True
        )
        self.stats.pending_erase = list(loaded.erase)
        self.stats.since_records = loaded.tail_records
        self.stats.since_bytes = loaded.tail_bytes

    async def _housekeep(self, snapshot: bool = False) -> None:
        """Finish erasures, snapshot if asked or due; exclusive lock held, caught up."""
        if self.stats.pending_erase:
            regions, self.stats.pending_erase = self.stats.pending_erase, []
            await self._run(self._log.erase, regions)
        due = self._options.snapshot_due(self.stats.since_records, self.stats.since_bytes)
        if self.indexed and (due or snapshot):
            await self._snapshot()

    async def _snapshot(self) -> None:
        started = time.perf_counter()
        await self._run(housekeeping.write_snapshot_file, self._log, self._index, self._epoch)
        self.stats.compacted(time.perf_counter() - started)

    async def _catch_up(self, exclusive: bool) -> None:
        """Apply what other processes (or our own unapplied steps) appended; io lock held."""
        if exclusive:
            caught = await self._run(self._log.read_new, True)
        else:
            caught = await self._run(housekeeping.read_shared, self._log)
        await self._absorb(caught, exclusive)

    async def _absorb(self, caught: CatchUp, exclusive: bool) -> None:
        if caught.reload:
            logger.info("store files were replaced; reloading", extra={"store": self.get_id()})
            if exclusive:
                await self._reload(exclusive=True)
            else:
                await self._run(self._log.lock, False)
                try:
                    await self._reload(exclusive=False)
                finally:
                    self._log.unlock()
            return
        self._apply_caught(caught)

    def _apply_caught(self, caught: CatchUp) -> None:
        index = self._index
        for seg, record in caught.records:
            problem, erase = index.apply(seg, record)
            if problem is not None:
                housekeeping.report_problem(self.get_id(), seg, record.offset, problem)
            self.stats.pending_erase.extend(erase)
        housekeeping.report_damage(self.get_id(), caught.damage, caught.truncated)
        self._log.commit_position(
            caught.tail_seg, caught.tail_pos, caught.coverage, caught.stuck_size
        )
        self.stats.since_records += len(caught.records)
        self.stats.since_bytes += caught.bytes_read

    async def _refresh(self) -> None:
        if self._log.unchanged():
            return
        async with self._io_lock:
            if not self._log.unchanged():
                await self._catch_up(exclusive=False)

    async def _view(self) -> LogIndex:
        """The index to answer a query from: caught up, or (scan mode) scanned just now."""
        self._check_open()
        if self.indexed:
            await self._refresh()
            return self._index
        async with self._io_lock:
            loaded = await self._run(housekeeping.scan_shared, self._log)
        self._epoch = loaded.epoch
        return loaded.index

    async def _exclusive_index(self) -> LogIndex:
        """Catch up under the exclusive lock (held by the caller); the index to write against."""
        if self.indexed:
            await self._catch_up(exclusive=True)
            await self._housekeep()
            return self._index
        self._log.forget()  # another process may have replaced the files since
        loaded = await self._run(
            functools.partial(load, self._log, exclusive=True, use_snapshot=False)
        )
        self._epoch = loaded.epoch
        self._log.commit_position(
            loaded.tail_seg, loaded.tail_pos, loaded.coverage, None, replace=True
        )
        if loaded.erase:
            await self._run(self._log.erase, loaded.erase)
        return loaded.index

    # -- write -------------------------------------------------------------------------------
    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        self._check_open()
        if not entries:
            return PutResult()
        future: asyncio.Future[PutResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_PutRequest(list(entries), future))
        self._wakeup.set()
        return await future

    async def _writer_loop(self) -> None:
        """The one writer: each round commits everything queued with one append and fsync."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            batch = [request for request in self._pending if not request.future.done()]
            self._pending = []
            if batch:
                try:
                    plan = await self._commit([request.entries for request in batch])
                except Exception as exc:  # every caller of the round gets the failure
                    for request in batch:
                        if not request.future.done():
                            request.future.set_exception(exc)
                else:
                    for request, result in zip(batch, plan.results, strict=True):
                        if not request.future.done():
                            request.future.set_result(result)
                stats = self.stats
                if self._options.snapshot_due(stats.since_records, stats.since_bytes):
                    try:
                        await self._compact()
                    except OSError as exc:
                        housekeeping.report_snapshot_failure(self.get_id(), exc)
            if self._closing and not self._pending:
                return

    async def _commit(self, requests: list[Sequence[StoreEntry]]) -> PlannedPut:
        """Lock, catch up, plan, append, fsync, unlock; one worker hop when nobody else wrote."""
        async with self._io_lock:
            try:
                if self.indexed:
                    caught, plan, written = await self._run(self._lock_and_commit, requests)
                    if plan is None:  # others appended: apply that first, then plan
                        await self._absorb(caught, exclusive=True)
                        await self._housekeep()
                        plan = await self._run(plan_put, self._index, requests)
                        written = await self._run(self._append, plan)
                else:
                    await self._run(self._log.lock, True)
                    plan = await self._run(plan_put, await self._exclusive_index(), requests)
                    written = await self._run(self._append, plan)
                if written is not None:
                    seg, offset, coverage = written
                    if self.indexed:
                        apply_put(self._index, plan, seg, offset)
                    self._log.commit_position(seg, offset + plan.size, coverage, None)
                    self.stats.since_records += len(plan.ops)
                    self.stats.since_bytes += plan.size
            finally:
                self._log.unlock()
        return plan

    def _lock_and_commit(
        self, requests: list[Sequence[StoreEntry]]
    ) -> tuple[CatchUp, PlannedPut | None, tuple[int, int, dict[int, int]] | None]:
        """Worker: take the lock and read what is new; if nothing is, plan and append too."""
        log = self._log
        log.lock(True)
        caught = log.read_new(True)
        busy = caught.records or caught.reload or caught.damage or caught.truncated
        quiet = not (busy or self.stats.pending_erase)
        if not quiet or (caught.tail_seg, caught.tail_pos) != (log.tail_seg, log.tail_pos):
            return caught, None, None
        plan = plan_put(self._index, requests)
        return caught, plan, self._append(plan)

    def _append(self, plan: PlannedPut) -> tuple[int, int, dict[int, int]] | None:
        if not plan.chunks:
            return None
        return self._log.append(b"".join(plan.chunks), self._options.segment_max_bytes)

    async def compact(self) -> None:
        """Write an index snapshot now (no-op in scan mode)."""
        self._check_open()
        await self._compact()

    async def _compact(self) -> None:
        if not self.indexed:
            return
        async with self._io_lock:
            await self._run(self._log.lock, True)
            try:
                await self._catch_up(exclusive=True)
                await self._housekeep(snapshot=True)
            finally:
                self._log.unlock()

    async def purge_doc_history(self, doc_id: str) -> int:
        self._check_open()
        async with self._io_lock:
            await self._run(self._log.lock, True)
            try:
                index = await self._exclusive_index()
                ids, regions = index.plan_purge(doc_id)
                if not ids:
                    return 0
                data = purge_record(doc_id, ids, index.max_receipt_order, regions)
                seg, offset, coverage = await self._run(
                    self._log.append, data, self._options.segment_max_bytes
                )
                await self._run(self._log.erase, regions)
                index.remove(ids, index.max_receipt_order)
                self._log.commit_position(seg, offset + len(data), coverage, None)
                self.stats.since_records += 1
                self.stats.since_bytes += len(data)
                # the snapshot still holds the purged metadata: replace it, or drop it
                if self.indexed:
                    if self._layout.snapshot.exists():
                        await self._snapshot()
                else:
                    await self._run(housekeeping.drop_snapshot, self._log)
            finally:
                self._log.unlock()
        return len(ids)

    async def clear_all_local_data(self) -> None:
        self._check_open()
        async with self._io_lock:
            await self._run(self._log.lock, True)
            try:
                self._log.forget()
                await self._run(housekeeping.wipe, self._log)
                await self._reload(exclusive=True)
            finally:
                self._log.unlock()

    # -- read --------------------------------------------------------------------------------
    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        index = await self._view()
        entries, bad = await self._read_payloads(index, ids)
        if bad and self.indexed:  # perhaps purged meanwhile by another process: look again
            async with self._io_lock:
                await self._catch_up(exclusive=False)
            retry, still_bad = await self._read_payloads(self._index, bad)
            if still_bad:
                raise CorruptEntryError(
                    f"payload of entry {still_bad[0][:80]!r} does not match its content hash"
                )
            found = {entry.id: entry for entry in (*entries, *retry)}
            return [found[entry_id] for entry_id in ids if entry_id in found]
        if bad:
            raise CorruptEntryError(
                f"payload of entry {bad[0][:80]!r} does not match its content hash"
            )
        return entries

    async def _read_payloads(
        self, index: LogIndex, ids: Sequence[str]
    ) -> tuple[list[StoreEntry], list[str]]:
        wanted: list[tuple[EntryMetadata, int, int, int]] = []
        for entry_id in ids:
            slot = index.entries.get(entry_id)
            if slot is None:
                continue
            payload = index.payloads[slot.meta.content_hash]
            offset, length = payload_extent(payload.offset, payload.length)
            wanted.append((slot.meta, payload.seg, offset, length))
        if not wanted:
            return [], []
        return await self._run(self._read_and_verify, wanted)

    def _read_and_verify(
        self, wanted: list[tuple[EntryMetadata, int, int, int]]
    ) -> tuple[list[StoreEntry], list[str]]:
        entries: list[StoreEntry] = []
        bad: list[str] = []
        for meta, seg, offset, length in wanted:
            try:
                data = self._log.pread(seg, length, offset)
            except FileNotFoundError:
                data = b""
            if len(data) != length or hashlib.sha256(data).hexdigest() != meta.content_hash:
                bad.append(meta.id)
            else:
                entries.append(StoreEntry(meta, data))
        return entries, bad

    # -- status and lifecycle ----------------------------------------------------------------
    def get_index_build_status(self) -> IndexBuildStatus:
        return IndexBuildStatus(self._phase, self.indexed, self._progress01)

    async def await_index_ready(self) -> IndexBuildStatus:
        await self._ready.wait()
        return self.get_index_build_status()

    async def get_compaction_status(self) -> CompactionStatus:
        return self.stats.compaction_status(self._options)

    async def close(self) -> None:
        """Finish queued writes, snapshot if the log grew, release files, locks and threads."""
        if self._closed or self._closing:
            return
        self._closing = True
        self._wakeup.set()
        if self._writer is not None:
            await self._writer
        try:
            if self.indexed and self._options.snapshot_on_close and self.stats.since_records:
                await self._compact()
        except OSError as exc:
            housekeeping.report_snapshot_failure(self.get_id(), exc)
        finally:
            await self._release()

    async def _release(self) -> None:
        self._closed = True
        async with self._io_lock:
            self._log.close()
        self._executor.shutdown(wait=True)
