"""An edge cache in front of an HTTP sync server: real ``mindood run`` daemons on 127.0.0.1.

``up`` serves ``[http]`` only. ``edge`` serves ``[http]`` to apps and has
``[[upstreams]] address = "http://..."``: its stores are chained to ``up``'s (misses fetched and
checked, writes forwarded) and it follows ``up``'s change feed. The app is bob's device in this
process, speaking the HTTP API to ``edge`` alone (``tenant.connect_to_server``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from mindood import InMemoryStoreFactory, TenantFactory
from mindood.tenant import Tenant
from protocol.errors import RequestError
from protocol.http import wire
from tests.daemon_helpers import (
    ADMIN_PW,
    HTTP_LISTEN,
    TENANT,
    DaemonProcess,
    create_doc,
    create_tenant,
    http_address,
    join,
    poll_until,
    read_doc,
    start_daemon,
)
from tests.http_helpers import Client
from tests.tenant_helpers import fast_kdf, identity, password

pytestmark = pytest.mark.usefixtures("_kdf")


@pytest.fixture(autouse=True, scope="module")
def _kdf() -> object:
    yield from fast_kdf()


async def _bob(up: DaemonProcess) -> Tenant:
    """Bob's device (its own in-memory store), approved on ``up``."""
    factory = TenantFactory(InMemoryStoreFactory())
    request = factory.create_join_request(identity("bob"), format="uri", label="bob's laptop")
    async with await up.client() as client:
        response = await client.tenant_approve(TENANT, request, admin_password=ADMIN_PW)
    return (
        await factory.join_tenant(response, user=identity("bob"), password=password("bob"))
    ).tenant


async def test_an_edge_cache_in_front_of_an_http_server(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    up = start_daemon(tmp_path, daemons, "up", HTTP_LISTEN)
    await create_tenant(up)
    async with await up.client() as client:
        await client.db_create(TENANT, "todos")
    up_http = await http_address(up)
    assert up_http.startswith("http://127.0.0.1:")
    only_up = await create_doc(up, {"title": "only upstream had it"}, ensure_db=False)
    bob = await _bob(up)

    edge = start_daemon(
        tmp_path,
        daemons,
        "edge",
        [
            *HTTP_LISTEN,
            "[[upstreams]]",
            f'address = "{up_http}"',
            f'tenant = "{TENANT}"',
            'databases = ["todos"]',
        ],
    )
    await join(up, edge, "edge", relay=True)
    async with await edge.client() as client:
        status = await client.sync_status()
    assert status["roles"] == {TENANT: "edge cache"}
    edge_http = await http_address(edge)
    assert edge_http.startswith("http://127.0.0.1:")

    # a read at the edge of a document only the upstream had: answered, entries checked
    up_store = await bob.connect_to_server(up_http, "todos")
    ids = [m.id for m in await up_store.find_new_entries_for_doc([], only_up)]
    assert ids
    edge_store = await bob.connect_to_server(edge_http, "todos")

    async def edge_answers() -> bool:
        try:  # refused until the edge has the directory that lists bob
            return {e.id for e in await edge_store.get_entries(ids)} == set(ids)
        except RequestError:
            return False

    await poll_until(edge_answers)
    # bob learns who wrote it from the directory, through the edge too
    directory = await bob.open_db("directory")
    await directory.pull_changes_from(await bob.connect_to_server(edge_http, "directory"))
    await bob.refresh_directory()
    db = await bob.open_db("todos")
    verdict = await db.admit_entries(await edge_store.get_entries(ids))
    assert not verdict.rejected and not verdict.deferred
    await db.get_store().put_entries(verdict.accepted)
    await db.sync_store_changes()
    assert (await db.get_document(only_up)).get_data() == {"title": "only upstream had it"}
    async with await edge.client() as client:
        [upstream] = (await client.sync_status())["upstreams"]
    assert upstream == {"address": up_http, "tenant": TENANT, "connected": True}

    # a write at the edge reaches the upstream
    mine = (await db.create_document({"title": "written at the edge"})).get_id()
    await db.push_changes_to(edge_store)

    async def upstream_has_it() -> bool:
        return await read_doc(up, mine) == {"title": "written at the edge"}

    await poll_until(upstream_has_it, seconds=15)

    # the edge's own change feed announces a change made upstream
    async with aiohttp.ClientSession() as session:
        app = Client(session, edge_http, bob)
        await app.login()
        url = f"{edge_http}/{TENANT}/sync/docs/events?dbId=todos"
        async with session.get(url, headers=app.auth_headers()) as events:
            assert events.status == 200
            parser = wire.SseParser()
            pending: list[wire.SseEvent] = []

            async def next_event() -> wire.SseEvent:
                while not pending:
                    pending.extend(parser.feed(await events.content.readany()))
                return pending.pop(0)

            async with asyncio.timeout(15):
                assert (await next_event()).event == "hello"
            upstream_doc = await create_doc(up, {"title": "changed upstream"}, ensure_db=False)
            new_ids = [m.id for m in await up_store.find_new_entries_for_doc([], upstream_doc)]
            assert new_ids
            async with asyncio.timeout(20):
                while True:  # the edge announces once it holds the new entries
                    event = await next_event()
                    change = wire.ChangeEvent.from_data(event.data)
                    if (
                        event.event == "change"
                        and change is not None
                        and change.db_id == "todos"
                        and await edge_store.has_entries(new_ids) == new_ids
                    ):
                        break
    await bob.close()
