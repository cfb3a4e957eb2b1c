"""Where a tenant's databases keep their entries: one store per (tenant, database, kind).

A ``StoreFactory`` hands out ``ContentAddressedStore`` objects; the tenant layer never builds a
store itself, so the same tenant code runs on memory (tests, relays that keep nothing) and on disk
(the daemon). Asking twice for the same ``(tenant, db, kind)`` returns the same store object:
two tenant objects on one factory therefore share their stores, which is how tests model two
devices on one shared store.

Besides stores, a factory keeps a few small named blobs per tenant (``read_meta`` /
``write_meta``), e.g. an exported session, so the daemon finds it again after a restart.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Literal, Protocol

from mindood.errors import InvalidNameError
from store.atomicfile import atomic_write, fsync_dir
from store.base import ContentAddressedStore, StoreHealth, StoreState
from store.errors import StoreError
from store.failed import FailedStore
from store.memory import InMemoryStore

logger = logging.getLogger(__name__)

StoreKind = Literal["docs", "attachments"]
STORE_KINDS: tuple[StoreKind, ...] = ("docs", "attachments")

#: Tenant ids, database names and metadata names double as path components on disk.
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Directory (inside the tenant's) holding metadata blobs; db names cannot start with ".".
META_DIR = ".tenant"


def check_component(value: object, what: str) -> str:
    """A name that is safe as one path component (no separators, no ``..``, not hidden)."""
    if not isinstance(value, str) or not _COMPONENT.match(value) or ".." in value:
        raise InvalidNameError(
            f"{what} {value!r} must be 1-128 of [A-Za-z0-9._-], starting with a letter or digit"
        )
    return value


def _check_kind(kind: str) -> StoreKind:
    if kind == "docs":
        return "docs"
    if kind == "attachments":
        return "attachments"
    raise InvalidNameError(f"store kind must be 'docs' or 'attachments', got {kind!r}")


class StoreFactory(Protocol):
    """Opens (and caches) the stores of every tenant and database."""

    async def open_store(
        self, tenant_id: str, db_id: str, kind: StoreKind
    ) -> ContentAddressedStore:
        """The store of one database's documents or attachments (created on first use).

        A store whose files cannot be opened comes back failed (``store.failed.FailedStore``):
        every call on it raises ``StoreUnavailableError`` with the reason, and
        ``store_health`` lists it, so one damaged database never stops the rest of a tenant.
        """
        ...

    async def list_databases(self, tenant_id: str) -> list[str]:
        """Names of the tenant's databases that have stores, sorted."""
        ...

    async def drop_database(self, tenant_id: str, db_id: str) -> bool:
        """Close a database's stores and delete them; False if it had none."""
        ...

    async def read_meta(self, tenant_id: str, name: str) -> bytes | None:
        """A small metadata blob of the tenant, or None if never written."""
        ...

    async def write_meta(self, tenant_id: str, name: str, data: bytes) -> None:
        """Replace a metadata blob (atomically where the backend can)."""
        ...

    def store_health(self, tenant_id: str) -> dict[str, StoreHealth]:
        """``"<db>/<kind>"`` -> health, for the tenant's stores that are not simply ok.

        Includes stores that failed to open (their health says why) and stores that recovered
        from damage or quarantined entries, so node status shows every loss.
        """
        ...

    async def close(self) -> None:
        """Close every store opened through this factory."""
        ...


class InMemoryStoreFactory:
    """Stores in process memory; the same key always yields the same ``InMemoryStore``."""

    def __init__(self) -> None:
        self._stores: dict[tuple[str, str, StoreKind], InMemoryStore] = {}
        self._meta: dict[tuple[str, str], bytes] = {}

    async def open_store(
        self, tenant_id: str, db_id: str, kind: StoreKind
    ) -> ContentAddressedStore:
        key = (
            check_component(tenant_id, "tenant id"),
            check_component(db_id, "database name"),
            _check_kind(kind),
        )
        store = self._stores.get(key)
        if store is None:
            store = self._stores[key] = InMemoryStore(f"{tenant_id}/{db_id}/{kind}")
        return store

    async def list_databases(self, tenant_id: str) -> list[str]:
        return sorted({db for tenant, db, _ in self._stores if tenant == tenant_id})

    async def drop_database(self, tenant_id: str, db_id: str) -> bool:
        keys = [k for k in self._stores if k[:2] == (tenant_id, db_id)]
        for key in keys:
            await self._stores.pop(key).close()
        return bool(keys)

    def store_health(self, tenant_id: str) -> dict[str, StoreHealth]:
        return {}  # memory keeps no files that could be damaged

    async def read_meta(self, tenant_id: str, name: str) -> bytes | None:
        return self._meta.get(
            (check_component(tenant_id, "tenant id"), check_component(name, "name"))
        )

    async def write_meta(self, tenant_id: str, name: str, data: bytes) -> None:
        key = (check_component(tenant_id, "tenant id"), check_component(name, "name"))
        self._meta[key] = bytes(data)

    async def close(self) -> None:
        stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            await store.close()


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically and durably replace ``path`` (0600, parent directories 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(path, data)


def _read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class OnDiskStoreFactory:
    """Durable stores under ``base_path/<tenant>/<db>/<kind>`` (reference §5.1 layout)."""

    def __init__(self, base_path: Path | str) -> None:
        self._base = Path(base_path)
        self._stores: dict[tuple[str, str, StoreKind], ContentAddressedStore] = {}
        self._opening: dict[tuple[str, str, StoreKind], asyncio.Lock] = {}
        self._failed: dict[tuple[str, str, StoreKind], str] = {}

    @property
    def base_path(self) -> Path:
        return self._base

    async def open_store(
        self, tenant_id: str, db_id: str, kind: StoreKind
    ) -> ContentAddressedStore:
        key = (
            check_component(tenant_id, "tenant id"),
            check_component(db_id, "database name"),
            _check_kind(kind),
        )
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:  # two concurrent first opens must not create two stores on one path
            store = self._stores.get(key)
            if store is None:
                # Imported lazily: the on-disk backend pulls in its thread pools and file locks,
                # which an in-memory deployment never needs.
                ondisk = importlib.import_module("store.ondisk.store")
                path = self._base / tenant_id / db_id / kind
                try:
                    opened = await ondisk.OnDiskStore.open(path)
                except StoreError as exc:
                    # Not cached: the next open (after a lock and unlock, say) tries again.
                    self._failed[key] = str(exc)
                    logger.error(
                        "store cannot be opened; its database is out of service",
                        extra={"tenant": tenant_id, "db": db_id, "kind": kind, "error": str(exc)},
                    )
                    return FailedStore(str(path), str(exc))
                if not isinstance(opened, ContentAddressedStore):
                    raise TypeError("OnDiskStore.open returned something that is not a store")
                self._failed.pop(key, None)
                store = self._stores[key] = opened
        return store

    def store_health(self, tenant_id: str) -> dict[str, StoreHealth]:
        out: dict[str, StoreHealth] = {}
        for (tenant, db, kind), problem in self._failed.items():
            if tenant == tenant_id:
                out[f"{db}/{kind}"] = StoreHealth(StoreState.FAILED, problem=problem)
        for (tenant, db, kind), store in self._stores.items():
            health = store.health()
            if tenant == tenant_id and health.needs_attention:
                out[f"{db}/{kind}"] = health
        return out

    async def list_databases(self, tenant_id: str) -> list[str]:
        root = self._base / check_component(tenant_id, "tenant id")

        def scan() -> list[str]:
            if not root.is_dir():
                return []
            return sorted(
                child.name
                for child in root.iterdir()
                if not child.name.startswith(".")
                and any((child / kind).is_dir() for kind in STORE_KINDS)
            )

        return await asyncio.to_thread(scan)

    async def drop_database(self, tenant_id: str, db_id: str) -> bool:
        """Close, then move the directory aside in one rename (a crash leaves it whole or gone
        from every listing) before deleting it."""
        key = (check_component(tenant_id, "tenant id"), check_component(db_id, "database name"))
        for kind in STORE_KINDS:
            self._failed.pop((*key, kind), None)
            store = self._stores.pop((*key, kind), None)
            if store is not None:
                await store.close()
        path = self._base / tenant_id / db_id
        trash = self._base / tenant_id / f".dropped-{db_id}-{uuid.uuid4().hex[:8]}"

        def remove() -> bool:
            try:
                os.rename(path, trash)
            except FileNotFoundError:
                return False
            fsync_dir(path.parent)
            shutil.rmtree(trash, ignore_errors=True)
            return True

        return await asyncio.to_thread(remove)

    def _meta_path(self, tenant_id: str, name: str) -> Path:
        return (
            self._base
            / check_component(tenant_id, "tenant id")
            / META_DIR
            / check_component(name, "name")
        )

    async def read_meta(self, tenant_id: str, name: str) -> bytes | None:
        return await asyncio.to_thread(_read_file, self._meta_path(tenant_id, name))

    async def write_meta(self, tenant_id: str, name: str, data: bytes) -> None:
        await asyncio.to_thread(write_private_file, self._meta_path(tenant_id, name), bytes(data))

    async def close(self) -> None:
        stores, self._stores = list(self._stores.values()), {}
        self._opening.clear()
        for store in stores:
            await store.close()


__all__ = [
    "STORE_KINDS",
    "InMemoryStoreFactory",
    "OnDiskStoreFactory",
    "StoreFactory",
    "StoreKind",
    "check_component",
]
