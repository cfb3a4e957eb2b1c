"""One-way replication between any two stores, resumable by cursor, without any key.

``replicate(source, target)`` copies every entry of ``source`` that ``target`` lacks. It pages
the source's metadata by ``(receipt_order, id)`` from a cursor the caller keeps, so an idle
re-sync costs one head comparison, and an interrupted one resumes where it stopped. A change of
either store's epoch (wiped, rebuilt) falls back to a full reconciliation.

Relays and edge caches run exactly this: they verify and store what they cannot read.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from store.base import ContentAddressedStore, IdPage, ScanCursor, StoreHead
from store.bloom import BloomSummary
from store.entry import StoreEntry
from store.origin import OrderRange, add_orders, scan_ids_skipping
from store.verify import VerifiedBatch, verify_entries

log = logging.getLogger("mindood.store.replicate")

#: Decides which fetched entries the target may keep (default: integrity + signature checks).
Admission = Callable[[Sequence[StoreEntry]], Awaitable[VerifiedBatch]]


#: Deferred ids remembered per cursor; past it the oldest are dropped (a full rescan after an
#: epoch change still finds them), so a stranger's junk cannot grow a cursor without bound.
MAX_DEFERRED = 10_000


@dataclass(frozen=True, slots=True)
class ReplicationCursor:
    """How far ``target`` has seen ``source``; valid only while both epochs stay the same.

    ``deferred``: ids behind the cursor that the target's admission put off (an author it does
    not trust yet); the cursor moves on, and these are fetched by id once trust changes.
    ``origin``: the target's receipt-order ranges filled with entries from ``source`` (only
    when tracked): the source's id scans of the target leave them out.
    """

    source_epoch: str
    target_epoch: str
    cursor: ScanCursor | None
    deferred: tuple[str, ...] = ()
    origin: tuple[OrderRange, ...] = ()

    def origin_towards(self, scanner_epoch: str, own_epoch: str) -> tuple[OrderRange, ...]:
        """The ranges the source may skip when it scans the target: only while the source's
        store is still at ``scanner_epoch`` and ours at ``own_epoch`` as recorded (a source
        that wiped its store, or a target that did, gets everything listed)."""
        if self.source_epoch != scanner_epoch or self.target_epoch != own_epoch:
            return ()
        return self.origin


@dataclass(frozen=True, slots=True)
class ReplicationProgress:
    scanned: int
    transferred: int
    #: The source's newest receipt order when the run began: the scan's upper bound.
    bound: int
    position: int


@dataclass(frozen=True, slots=True)
class ReplicationResult:
    scanned: int
    transferred: int
    transferred_bytes: int
    rejected: tuple[tuple[str, str], ...]
    state: ReplicationCursor
    idle: bool
    #: Ids the source listed but did not deliver (refused as too large, or damaged there).
    unavailable: tuple[str, ...] = ()


async def replicate(
    source: ContentAddressedStore,
    target: ContentAddressedStore,
    state: ReplicationCursor | None = None,
    *,
    admit: Admission = verify_entries,
    page_size: int = 1000,
    batch_size: int = 250,
    use_target_bloom: bool = False,
    on_progress: Callable[[ReplicationProgress], None] | None = None,
    on_checkpoint: Callable[[ReplicationCursor], Awaitable[None]] | None = None,
    retry: Sequence[str] = (),
    track_origin: bool = False,
    reverse: ReplicationCursor | None = None,
) -> ReplicationResult:
    """Copy what ``target`` lacks from ``source``; return counts and the cursor to keep.

    ``on_checkpoint`` receives the cursor after every page whose entries are stored, so a run
    cut short (peer gone, process killed) resumes from its last page, not from the start.
    ``retry`` names ids to fetch by id first, wherever the cursor is: the cursor's deferred ids
    once trust changed, or ids the target quarantined and wants a good copy of.
    ``track_origin`` (a local target) records the receipt orders the target gave what it
    stored, in the cursor's ``origin``, so the source's scans of the target can skip them.
    The source's metadata is scanned ids only (``scan_ids_since``), telling it the target's
    epoch: a source that tracked what it took from the target leaves those entries out.
    ``reverse`` is the cursor of the opposite pull (target into source, origin tracked): what
    the source took from the target is not scanned here either (a push to a peer that never
    pulls from us, so never asks with its epoch).
    """
    source_head = await source.get_store_head()
    target_head = await target.get_store_head()
    cursor: ScanCursor | None = None
    deferred: list[str] = []
    origin: tuple[OrderRange, ...] = ()
    if (
        state is not None
        and state.source_epoch == source_head.epoch
        and state.target_epoch == target_head.epoch
    ):
        cursor = state.cursor
        retrying = set(retry)
        deferred = [i for i in state.deferred if i not in retrying]
        origin = state.origin
    run = _Run(source, target, admit, batch_size, origin if track_origin else None)

    def current(at: ScanCursor | None) -> ReplicationCursor:
        kept = _bounded([*deferred, *run.deferred])
        return ReplicationCursor(
            source_head.epoch, target_head.epoch, at, kept, run.origin or origin
        )

    if track_origin and on_checkpoint is not None:
        # Published as soon as a batch is stored: the source, told we grew, may scan us at once.
        run.on_origin = lambda: on_checkpoint(current(cursor))
    if retry:
        await run.fetch(await _missing_ids(target, list(dict.fromkeys(retry)), None))
    start_order = cursor.receipt_order if cursor else 0
    if start_order >= source_head.max_receipt_order and state is not None:
        return run.result(0, current(cursor), idle=True)  # nothing new (an empty store too)

    bound = source_head.max_receipt_order
    bloom: _Bloom = _Bloom(target, target_head, use_target_bloom)
    skip = () if reverse is None else reverse.origin_towards(target_head.epoch, source_head.epoch)
    scanned = 0

    def scan(after: ScanCursor | None) -> Awaitable[IdPage]:
        if skip:
            return scan_ids_skipping(source, after, page_size, skip)
        return source.scan_ids_since(after, page_size, scanner_epoch=target_head.epoch)

    async def page_done(after: ScanCursor | None, before: ScanCursor | None, seen: int) -> None:
        """A page's entries are all stored: its cursor may be kept."""
        nonlocal cursor
        cursor = after
        if cursor != before and on_checkpoint is not None:
            await on_checkpoint(current(cursor))
        if on_progress is not None:
            position = min(cursor.receipt_order, bound) if cursor else 0
            on_progress(ReplicationProgress(seen, run.transferred, bound, position))

    async def pages() -> AsyncGenerator[_Batch, None]:
        """The missing ids page by page, in batches; a page's last batch carries its
        checkpoint. Pulled by the pipeline while earlier batches are still checked."""
        nonlocal scanned
        at = cursor
        # The next page of ids is asked for as soon as this one arrived: it crosses the
        # network while this page's missing ids are worked out.
        ahead: asyncio.Future[IdPage] | None = None
        try:
            while True:
                page = await (ahead if ahead is not None else scan(at))
                ahead = None
                keys = [k for k in page.keys if k[0] <= bound]
                scanned += len(keys)
                at_bound = len(keys) < len(page.keys)
                before, after = at, at
                if at_bound:
                    after = ScanCursor(*keys[-1]) if keys else at
                elif page.next_cursor is not None:
                    after = page.next_cursor
                # Done: the source says so, the bound is reached, or a page neither listed
                # nor moved.
                done = (
                    not page.has_more
                    or at_bound
                    or after == before
                    or (after is not None and after.receipt_order > bound)
                )
                if not done:
                    ahead = asyncio.ensure_future(scan(after))
                missing = await _missing_ids(target, [i for _, i in keys], await bloom.get(keys))
                chunks = _chunks(missing, batch_size) or [[]]
                checkpoint = functools.partial(page_done, after, before, scanned)
                for index, chunk in enumerate(chunks):
                    yield _Batch(chunk, checkpoint if index == len(chunks) - 1 else None)
                at = after
                if done:
                    return
        finally:
            if ahead is not None:
                await _dropped(ahead)

    await run.pump(pages())
    return run.result(scanned, current(cursor), idle=False)


#: Bytes an exact ``has`` costs per id asked (the id both ways, framing), against the Bloom
#: summary's bytes per id the target holds (base64 of ~10 bits, framing): an exact check is
#: cheaper for a page that is small next to the target's store.
_HAS_BYTES_PER_ID = 200
_BLOOM_BYTES_PER_STORED_ID = 2


class _Bloom:
    """The target's Bloom summary, fetched once and only when a page makes it worth it."""

    def __init__(self, target: ContentAddressedStore, head: StoreHead, wanted: bool) -> None:
        self._target = target
        self._cost = head.max_receipt_order * _BLOOM_BYTES_PER_STORED_ID
        self._wanted = wanted
        self._summary: BloomSummary | None = None

    async def get(self, keys: Sequence[tuple[int, str]]) -> BloomSummary | None:
        if self._summary is None and self._wanted and len(keys) * _HAS_BYTES_PER_ID > self._cost:
            self._summary = await self._target.get_id_bloom_summary()
        return self._summary


def _bounded(ids: list[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(ids))
    if len(unique) > MAX_DEFERRED:
        log.warning(
            "too many deferred entries; the oldest are dropped until a full rescan",
            extra={"dropped": len(unique) - MAX_DEFERRED},
        )
    return tuple(unique[-MAX_DEFERRED:])


@dataclass(frozen=True, slots=True)
class _Batch:
    """Ids to fetch together; ``then`` runs once they are stored (a page's checkpoint)."""

    ids: list[str]
    then: Callable[[], Awaitable[None]] | None = None


def _chunks(ids: list[str], size: int) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


class _Run:
    """One replication run's fetching, checking and storing, and what it counted."""

    def __init__(
        self,
        source: ContentAddressedStore,
        target: ContentAddressedStore,
        admit: Admission,
        batch_size: int,
        origin: tuple[OrderRange, ...] | None = None,
    ) -> None:
        self._source = source
        self._target = target
        self._admit = admit
        self._batch_size = batch_size
        self._track = origin is not None
        #: The target's receipt-order ranges holding entries from the source (when tracked).
        self.origin: tuple[OrderRange, ...] = origin or ()
        #: Called whenever ``origin`` grew (the run's cursor itself has not moved yet).
        self.on_origin: Callable[[], Awaitable[None]] | None = None
        self.transferred = 0
        self.transferred_bytes = 0
        self.rejected: list[tuple[str, str]] = []
        self.deferred: list[str] = []
        self.unavailable: list[str] = []

    async def fetch(self, missing: list[str]) -> None:
        """Fetch, check and store ``missing``; returns once all of it is stored."""

        async def batches() -> AsyncGenerator[_Batch, None]:
            for chunk in _chunks(missing, self._batch_size):
                yield _Batch(chunk)

        await self.pump(batches())

    async def pump(self, batches: AsyncGenerator[_Batch, None]) -> None:
        """Fetch, check and store every batch in order; a batch's ``then`` runs once it and
        everything before it is stored.

        Three stages overlap: while batch k is checked (the verify pool, both cores), batch
        k+1 is on the network (asking for it may first scan the source's next page) and
        batch k-1 is being written, so the verifiers wait neither for a page boundary nor for
        the network. Batches are stored in order, at most one write in flight.
        """
        storing: asyncio.Task[None] | None = None
        try:
            async with contextlib.aclosing(_prefetched(self._source, batches)) as fetched:
                async for batch, entries in fetched:
                    if len(entries) < len(batch.ids):
                        got = {e.id for e in entries}
                        self.unavailable.extend(i for i in batch.ids if i not in got)
                    accepted = await self._check(entries) if entries else ()
                    if storing is not None:
                        await storing
                    storing = asyncio.ensure_future(self._store(accepted, batch.then))
            if storing is not None:
                await storing
        finally:
            if storing is not None:
                await _dropped(storing)

    async def _check(self, entries: list[StoreEntry]) -> tuple[StoreEntry, ...]:
        verdict = await self._admit(entries)
        self.rejected.extend(verdict.rejected)
        self.deferred.extend(verdict.deferred)
        for entry_id, reason in verdict.rejected:
            log.warning(
                "entry refused",
                extra={"entry_id": entry_id, "reason": reason, "source": self._source.get_id()},
            )
        return verdict.accepted

    async def _store(
        self, accepted: tuple[StoreEntry, ...], then: Callable[[], Awaitable[None]] | None
    ) -> None:
        if accepted:
            await self._put(accepted)
        if then is not None:
            await then()

    async def _put(self, accepted: tuple[StoreEntry, ...]) -> None:
        result = await self._target.put_entries(accepted)
        self.rejected.extend(result.rejected)
        self.transferred += len(result.stored)
        if len(result.stored) == len(accepted):
            self.transferred_bytes += sum(len(e.encrypted_data) for e in accepted)
        else:
            stored = set(result.stored)
            self.transferred_bytes += sum(len(e.encrypted_data) for e in accepted if e.id in stored)
        if self._track and result.stored:
            orders: Sequence[int] = result.orders
            if len(orders) != len(result.stored):  # a store that does not say: ask it
                placed = await self._target.get_metadata(list(result.stored))
                orders = [m.receipt_order for m in placed]
            self.origin = add_orders(self.origin, orders)
            if self.on_origin is not None:
                await self.on_origin()

    def result(self, scanned: int, state: ReplicationCursor, *, idle: bool) -> ReplicationResult:
        return ReplicationResult(
            scanned,
            self.transferred,
            self.transferred_bytes,
            tuple(self.rejected),
            state,
            idle=idle,
            unavailable=tuple(self.unavailable),
        )


async def _prefetched(
    source: ContentAddressedStore, batches: AsyncGenerator[_Batch, None]
) -> AsyncGenerator[tuple[_Batch, list[StoreEntry]], None]:
    """The batches with their entries, in order, asking for the next batch (and so working
    out which ids it holds) while the caller checks and stores the current one: the network
    wait overlaps verification and fsync. At most one batch is in flight beyond the one
    being processed."""

    async def next_fetched() -> tuple[_Batch, list[StoreEntry]] | None:
        batch = await anext(batches, None)
        if batch is None:
            return None
        return batch, (await source.get_entries(batch.ids) if batch.ids else [])

    pending: asyncio.Task[tuple[_Batch, list[StoreEntry]] | None] | None = None
    try:
        pending = asyncio.ensure_future(next_fetched())
        while True:
            got = await pending
            pending = None
            if got is None:
                return
            pending = asyncio.ensure_future(next_fetched())
            yield got
    finally:
        if pending is not None:
            await _dropped(pending)  # first: it may be inside the generator
        await batches.aclose()


async def _dropped(task: asyncio.Future[Any]) -> None:
    """Cancel a task this run no longer needs (done or not) and wait for it to end. Its own
    failure does not matter here (the run is failing already, or asks again); a cancel of
    the caller still propagates."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved, so it is not reported as lost


async def _missing_ids(
    target: ContentAddressedStore, ids: list[str], bloom: BloomSummary | None
) -> list[str]:
    """Ids ``target`` lacks; the Bloom filter only spares the exact check for certain misses."""
    if not ids:
        return []
    if bloom is None:
        present = set(await target.has_entries(ids))
        return [i for i in ids if i not in present]
    maybe = [i for i in ids if bloom.might_contain(i)]
    present = set(await target.has_entries(maybe)) if maybe else set()
    return [i for i in ids if i not in present]
