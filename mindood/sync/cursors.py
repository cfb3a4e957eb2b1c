"""Per-peer replication cursors, persisted with the tenant's metadata.

A cursor is only valid for the pair of store epochs it was taken under; ``store.replicate``
compares them and falls back to a full reconciliation when either side was wiped or rebuilt.
With a valid cursor an idle re-sync is a head comparison: a few hundred bytes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mindood.storefactory import StoreFactory
from store.base import ScanCursor
from store.origin import MAX_ORIGIN_RANGES, OrderRange
from store.replicate import MAX_DEFERRED, ReplicationCursor

log = logging.getLogger("mindood.sync.cursors")

_META_NAME = "sync-cursors"


class CursorBook:
    """All cursors of one tenant: ``peer -> "db/kind/direction" -> ReplicationCursor``."""

    def __init__(self, store_factory: StoreFactory, tenant_id: str) -> None:
        self._factory = store_factory
        self._tenant_id = tenant_id
        self._data: dict[str, dict[str, dict[str, Any]]] = {}
        self._loaded = False

    async def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        raw = await self._factory.read_meta(self._tenant_id, _META_NAME)
        if raw is None:
            return
        try:
            data = json.loads(raw)
            if isinstance(data, dict):
                self._data = {k: v for k, v in data.items() if isinstance(v, dict)}
        except ValueError:
            log.warning(
                "sync cursors unreadable; starting from full reconciliation",
                extra={"tenant": self._tenant_id},
            )

    async def get(self, peer: str, slot: str) -> ReplicationCursor | None:
        await self._load()
        raw = self._data.get(peer, {}).get(slot)
        if not isinstance(raw, dict):
            return None
        try:
            cursor = None
            if raw.get("order") is not None:
                cursor = ScanCursor(int(raw["order"]), str(raw["id"]))
            deferred = raw.get("deferred") or []
            if not isinstance(deferred, list):
                deferred = []
            return ReplicationCursor(
                str(raw["source"]),
                str(raw["target"]),
                cursor,
                tuple(str(i) for i in deferred[:MAX_DEFERRED]),
                _origin(raw.get("origin")),
            )
        except (KeyError, TypeError, ValueError):
            return None

    async def put(self, peer: str, slot: str, state: ReplicationCursor) -> None:
        await self._load()
        self._data.setdefault(peer, {})[slot] = {
            "source": state.source_epoch,
            "target": state.target_epoch,
            "order": state.cursor.receipt_order if state.cursor else None,
            "id": state.cursor.id if state.cursor else None,
            "deferred": list(state.deferred),
            "origin": [list(r) for r in state.origin],
        }

    async def save(self) -> None:
        await self._factory.write_meta(
            self._tenant_id, _META_NAME, json.dumps(self._data, sort_keys=True).encode()
        )


def _origin(raw: Any) -> tuple[OrderRange, ...]:
    """Saved origin ranges; anything malformed counts as none (the peer then scans them)."""
    if not isinstance(raw, list):
        return ()
    out: list[OrderRange] = []
    for item in raw[-MAX_ORIGIN_RANGES:]:
        if not (isinstance(item, list) and len(item) == 2):
            return ()
        low, high = item
        if not (isinstance(low, int) and isinstance(high, int) and 0 < low <= high):
            return ()
        if out and low <= out[-1][1]:
            return ()
        out.append((low, high))
    return tuple(out)
