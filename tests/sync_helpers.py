"""Nodes for sync tests: tenants of one organisation on separate stores, each with a SyncNode."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from mindood import InMemoryStoreFactory, KeyBag, TenantFactory
from mindood.db import MindooDB
from mindood.identity import unlock
from mindood.storefactory import StoreFactory
from mindood.sync import SyncNode
from mindood.tenant import Tenant
from tests.tenant_helpers import TENANT_ID, admin_creds, identity, password
from transports.tcp import Backoff, NodeCertificate


@dataclass
class Node:
    name: str
    tenant: Tenant
    sync: SyncNode
    port: int = 0

    async def db(self, name: str = "todos") -> MindooDB:
        return await self.tenant.open_db(name)

    async def listen(self) -> int:
        _, self.port = await self.sync.listen("127.0.0.1", 0)
        return self.port

    async def connect_to(self, other: Node) -> None:
        await self.sync.connect("127.0.0.1", other.port, self.tenant.tenant_id)


async def join(admin_side: Tenant, name: str) -> Tenant:
    """A fresh device of user ``name`` on its own empty store, joined through the admin."""
    factory = TenantFactory(InMemoryStoreFactory())
    request = factory.create_join_request(identity(name), format="uri", label=f"{name}'s device")
    response = await admin_side.approve_join_request(request, **admin_creds())
    joined = await factory.join_tenant(response, user=identity(name), password=password(name))
    return joined.tenant


async def keyless_relay(
    admin_side: Tenant, name: str = "relay", store_factory: StoreFactory | None = None
) -> Tenant:
    """A relay: registered node identity, holding only ``$publicinfos`` (no content key)."""
    relay_id = identity(name)
    await admin_side.register_user(relay_id.public, label="relay node", **admin_creds())
    bag = KeyBag.for_user(relay_id, password(name))
    bag.set(TENANT_ID, "$publicinfos", admin_side.key_bag.get(TENANT_ID, "$publicinfos"))
    return await TenantFactory(store_factory or InMemoryStoreFactory()).open_tenant(
        TENANT_ID,
        admin_side.admin_signing_public_key,
        admin_side.admin_encryption_public_key,
        unlock(relay_id, password(name)),
        None,
        bag,
    )


def sync_node(tmp_path: Path, name: str, *, max_entry_bytes: int = 64 * 1024 * 1024) -> SyncNode:
    return SyncNode(
        NodeCertificate.load_or_create(tmp_path / name),
        backoff=Backoff(initial=0.05, maximum=0.5),
        max_entry_bytes=max_entry_bytes,
    )


async def make_node(
    tmp_path: Path, name: str, tenant: Tenant, sync: SyncNode | None = None
) -> Node:
    sync = sync or sync_node(tmp_path, name)
    await sync.add_tenant(tenant, ["todos"])
    return Node(name, tenant, sync)


async def eventually(check: Callable[[], Awaitable[bool]], *, seconds: float = 15.0) -> None:
    """Wait (bounded in time and count) until ``check`` holds; each retry follows a sync event."""
    async with asyncio.timeout(seconds):
        for _ in range(100_000):
            if await check():
                return
            await asyncio.sleep(0.02)
    raise AssertionError("condition never held")
