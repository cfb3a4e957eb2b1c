"""Checking batches of incoming entries on both cores.

Ed25519 verification is the floor of sync speed (about 3,700 entries/s per core here), and
``cryptography`` releases the GIL while verifying, so a small thread pool lets a node use every
core for it while the event loop keeps serving (platform-notes.md, "cryptography").
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from store.entry import StoreEntry
from store.errors import StoreError
from store.limits import oversize_reason
from store.signing import REQUIRED_SINCE_ALWAYS, PublicKeyCache, check_entry

#: Thread name prefix of the verification pool (tests recognise it as a shared, lasting pool).
VERIFY_THREAD_PREFIX = "mindood-verify"
#: Entries per task handed to a worker: large enough to amortise scheduling, small enough to
#: spread a batch over the workers.
_SLICE = 64

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_keys = PublicKeyCache()


def crypto_executor() -> ThreadPoolExecutor:
    """The process's threads for Ed25519 work: verifying here, signing batches in ``mindood``."""
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = max(1, min(4, os.cpu_count() or 1))
            _pool = ThreadPoolExecutor(workers, thread_name_prefix=VERIFY_THREAD_PREFIX)
        return _pool


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    """Entries that passed every check, ``(id, reason)`` for those that did not, and the ids
    of sound entries whose author the reader does not trust yet (not stored, asked for again
    once the reader's directory grants their author)."""

    accepted: tuple[StoreEntry, ...]
    rejected: tuple[tuple[str, str], ...]
    deferred: tuple[str, ...] = ()


def _check_slice(entries: Sequence[StoreEntry], required_since: int | None) -> list[str | None]:
    reasons: list[str | None] = []
    for entry in entries:
        too_large = oversize_reason(entry.metadata.entry_type, len(entry.encrypted_data))
        if too_large is not None:
            reasons.append(too_large)  # no entry this size can sync on; skip hash and signature
            continue
        try:
            check_entry(entry, _keys, required_since=required_since)
        except StoreError as exc:
            reasons.append(str(exc))
        else:
            reasons.append(None)
    return reasons


async def verify_entries(
    entries: Sequence[StoreEntry], *, required_since: int | None = REQUIRED_SINCE_ALWAYS
) -> VerifiedBatch:
    """Check size, consistency, content hash and author signature of every entry, in parallel.

    The size is the tenant-wide ``MAX_ENTRY_BYTES``: an entry above it is refused here, on every
    admission path, as it is at write time. ``required_since`` is the tenant's
    ``requireMetadataSignatureSince``; by default every entry needs a ``metadataSignature``
    (a store without a directory cannot know of a later floor).
    """
    if not entries:
        return VerifiedBatch((), ())
    loop = asyncio.get_running_loop()
    slices = [entries[i : i + _SLICE] for i in range(0, len(entries), _SLICE)]
    if len(slices) == 1:
        results = [_check_slice(slices[0], required_since)]
    else:
        pool = crypto_executor()
        results = await asyncio.gather(
            *(loop.run_in_executor(pool, _check_slice, part, required_since) for part in slices)
        )
    accepted: list[StoreEntry] = []
    rejected: list[tuple[str, str]] = []
    for part, reasons in zip(slices, results, strict=True):
        for entry, reason in zip(part, reasons, strict=True):
            if reason is None:
                accepted.append(entry)
            else:
                rejected.append((entry.id[:512], reason))
    return VerifiedBatch(tuple(accepted), tuple(rejected))
