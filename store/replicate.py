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
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from store.base import ContentAddressedStore, ScanCursor
from store.bloom import BloomSummary
from store.entry import StoreEntry
from store.verify import VerifiedBatch, verify_entries

log = logging.getLogger("mindood.store.replicate")

#: Decides which fetched entries the target may keep (default: integrity + signature checks).
Admission = Callable[[Sequence[StoreEntry]], Awaitable[VerifiedBatch]]


@dataclass(frozen=True, slots=True)
class ReplicationCursor:
    """How far ``target`` has seen ``source``; valid only while both epochs stay the same."""

    source_epoch: str
    target_epoch: str
    cursor: ScanCursor | None


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
) -> ReplicationResult:
    """Copy what ``target`` lacks from ``source``; return counts and the cursor to keep.

    ``on_checkpoint`` receives the cursor after every page whose entries are stored, so a run
    cut short (peer gone, process killed) resumes from its last page, not from the start.
    """
    source_head = await source.get_store_head()
    target_head = await target.get_store_head()
    cursor: ScanCursor | None = None
    if (
        state is not None
        and state.source_epoch == source_head.epoch
        and state.target_epoch == target_head.epoch
    ):
        cursor = state.cursor
    start_order = cursor.receipt_order if cursor else 0
    if start_order >= source_head.max_receipt_order and state is not None and cursor is not None:
        return ReplicationResult(0, 0, 0, (), state, idle=True)

    bound = source_head.max_receipt_order
    bloom: BloomSummary | None = None
    if use_target_bloom:
        bloom = await target.get_id_bloom_summary()
    scanned = transferred = transferred_bytes = 0
    rejected: list[tuple[str, str]] = []
    while True:
        page = await source.scan_entries_since(cursor, page_size)
        metas = [m for m in page.entries if m.receipt_order <= bound]
        scanned += len(metas)
        missing = await _missing_ids(target, [m.id for m in metas], bloom)
        batches = [missing[i : i + batch_size] for i in range(0, len(missing), batch_size)]
        async with contextlib.aclosing(_prefetched(source, batches)) as fetched:
            async for entries in fetched:
                verdict = await admit(entries)
                rejected.extend(verdict.rejected)
                for entry_id, reason in verdict.rejected:
                    log.warning(
                        "entry refused",
                        extra={"entry_id": entry_id, "reason": reason, "source": source.get_id()},
                    )
                if verdict.accepted:
                    result = await target.put_entries(verdict.accepted)
                    rejected.extend(result.rejected)
                    transferred += len(result.stored)
                    stored = set(result.stored)
                    transferred_bytes += sum(
                        len(e.encrypted_data) for e in verdict.accepted if e.id in stored
                    )
        if metas:
            last = metas[-1]
            cursor = ScanCursor(last.receipt_order, last.id)
            if on_checkpoint is not None:
                await on_checkpoint(ReplicationCursor(source_head.epoch, target_head.epoch, cursor))
        if on_progress is not None:
            position = cursor.receipt_order if cursor else 0
            on_progress(ReplicationProgress(scanned, transferred, bound, position))
        if not page.has_more or len(metas) < len(page.entries) or not page.entries:
            break
    new_state = ReplicationCursor(source_head.epoch, target_head.epoch, cursor)
    return ReplicationResult(
        scanned, transferred, transferred_bytes, tuple(rejected), new_state, idle=False
    )


async def _prefetched(
    source: ContentAddressedStore, batches: list[list[str]]
) -> AsyncGenerator[list[StoreEntry], None]:
    """The batches' entries in order, fetching the next batch while the caller checks and
    stores the current one: the network wait overlaps verification and fsync. At most one
    batch is in flight beyond the one being processed."""
    pending: asyncio.Task[list[StoreEntry]] | None = None
    try:
        for index, batch in enumerate(batches):
            current = (
                pending if pending is not None else asyncio.ensure_future(source.get_entries(batch))
            )
            pending = None
            entries = await current
            if index + 1 < len(batches):
                pending = asyncio.ensure_future(source.get_entries(batches[index + 1]))
            yield entries
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending


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
