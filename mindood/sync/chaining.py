"""Edge-cache mode: every store of a tenant chained to the node's upstream peer.

Wraps a node's real store factory: each opened store becomes a ``ChainedStore`` whose upstream
is the live session with the configured upstream node (none while disconnected, when the cache
serves what it holds). See ``store.chained`` for the read and write rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mindood.storefactory import StoreFactory, StoreKind
from protocol.store_ops import StoreKind as WireKind
from store.base import ContentAddressedStore, StoreHealth
from store.chained import ChainedStore

UpstreamLookup = Callable[[str, str, WireKind], ContentAddressedStore | None]


@dataclass
class LateUpstream:
    """An ``UpstreamLookup`` bound late: the store factory exists before the sync node that
    answers it, which binds ``target`` while it runs."""

    target: UpstreamLookup | None = None

    def __call__(self, tenant_id: str, db: str, kind: WireKind) -> ContentAddressedStore | None:
        return None if self.target is None else self.target(tenant_id, db, kind)


class ChainingStoreFactory:
    """A ``StoreFactory`` whose stores read through to, and write through to, an upstream."""

    def __init__(self, inner: StoreFactory, upstream: UpstreamLookup) -> None:
        self._inner = inner
        self._upstream = upstream
        self._stores: dict[tuple[str, str, str], ChainedStore] = {}

    async def open_store(
        self, tenant_id: str, db_id: str, kind: StoreKind
    ) -> ContentAddressedStore:
        key = (tenant_id, db_id, kind)
        store = self._stores.get(key)
        if store is None:
            local = await self._inner.open_store(tenant_id, db_id, kind)
            wire_kind = WireKind(kind)
            store = ChainedStore(local, lambda: self._upstream(tenant_id, db_id, wire_kind))
            self._stores[key] = store
        return store

    async def list_databases(self, tenant_id: str) -> list[str]:
        return await self._inner.list_databases(tenant_id)

    async def drop_database(self, tenant_id: str, db_id: str) -> bool:
        """The local copy only: the upstream keeps its own."""
        for kind in ("docs", "attachments"):
            self._stores.pop((tenant_id, db_id, kind), None)
        return await self._inner.drop_database(tenant_id, db_id)

    async def read_meta(self, tenant_id: str, name: str) -> bytes | None:
        return await self._inner.read_meta(tenant_id, name)

    async def write_meta(self, tenant_id: str, name: str, data: bytes) -> None:
        await self._inner.write_meta(tenant_id, name, data)

    def store_health(self, tenant_id: str) -> dict[str, StoreHealth]:
        return self._inner.store_health(tenant_id)

    async def close(self) -> None:
        await self._inner.close()
