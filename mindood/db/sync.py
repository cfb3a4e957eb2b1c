"""Moving entries between a database's stores and another database's or any store.

The database decides admission (signature, integrity, trust, purges); this module only runs
``store.replicate`` over the (source, target) store pairs and adds up what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from store.base import ContentAddressedStore
from store.replicate import Admission, ReplicationCursor, replicate

StorePair = tuple[ContentAddressedStore, ContentAddressedStore]


@dataclass(frozen=True, slots=True)
class SyncResult:
    transferred: int
    transferred_bytes: int
    scanned: int
    rejected: tuple[tuple[str, str], ...]


def pair_key(source: ContentAddressedStore, target: ContentAddressedStore) -> tuple[str, str]:
    """Identifies a pair for its resumable cursor (two stores may share a name, not an id)."""
    return (f"{source.get_id()}@{id(source)}", f"{target.get_id()}@{id(target)}")


async def replicate_pairs(
    pairs: Sequence[StorePair],
    cursors: dict[tuple[str, str], ReplicationCursor],
    admit: Admission,
    *,
    page_size: int,
    batch_size: int,
) -> SyncResult:
    """Replicate every pair in order, resuming from and updating ``cursors``."""
    transferred = transferred_bytes = scanned = 0
    rejected: list[tuple[str, str]] = []
    for source, target in pairs:
        key = pair_key(source, target)
        result = await replicate(
            source,
            target,
            cursors.get(key),
            admit=admit,
            page_size=page_size,
            batch_size=batch_size,
            use_target_bloom=target.remote_checks_cost,
        )
        cursors[key] = result.state
        transferred += result.transferred
        transferred_bytes += result.transferred_bytes
        scanned += result.scanned
        rejected.extend(result.rejected)
    return SyncResult(transferred, transferred_bytes, scanned, tuple(rejected))
