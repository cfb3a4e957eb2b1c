"""Stores chained to an HTTP sync server (the edge cache's read and write paths), in one process
against mindood's real HTTP server on 127.0.0.1, with no sync running, so each path is seen alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mindood import InMemoryStoreFactory, TenantFactory
from mindood.sync.chaining import ChainingStoreFactory, LateUpstream
from mindood.tenant.remote import open_client
from protocol.http.remote import HttpRemoteStore
from protocol.store_ops import StoreKind
from store.chained import ChainedStore
from tests.http_helpers import serve
from tests.sync_helpers import eventually, sync_node
from tests.tenant_helpers import TENANT_ID, admin_creds, fast_kdf, identity, new_tenant, password


@pytest.fixture(autouse=True, scope="module")
def _kdf() -> Iterator[None]:
    yield from fast_kdf()


async def test_a_chained_store_reads_misses_from_and_forwards_writes_to_an_http_server(
    tmp_path: Path,
) -> None:
    alice = (await new_tenant(InMemoryStoreFactory())).tenant
    served = await serve(tmp_path, alice)
    server_db = await alice.open_db("todos")
    doc = await server_db.create_document({"title": "only upstream had it"})
    ids = [m.id for m in await server_db.get_store().find_new_entries_for_doc([], doc.get_id())]
    assert ids

    # bob's edge device: every store chained to the server (bound once joined)
    upstream = LateUpstream()
    factory = TenantFactory(ChainingStoreFactory(InMemoryStoreFactory(), upstream))
    request = factory.create_join_request(identity("bob"), format="uri", label="edge")
    response = await alice.approve_join_request(request, **admin_creds())
    bob = (
        await factory.join_tenant(response, user=identity("bob"), password=password("bob"))
    ).tenant
    fetcher, client = open_client(TENANT_ID, bob.user, served.url)
    upstream.target = lambda _tenant, db, kind: client.store(db, kind)
    edge = sync_node(tmp_path, "edge")
    try:
        store = (await bob.open_db("todos")).get_store()
        assert isinstance(store, ChainedStore)
        assert await store.has_entries(ids) == []  # the edge holds none of them
        assert [e.id for e in await store.get_entries(ids)] == ids  # fetched, checked, kept
        assert store.fetched_from_upstream == len(ids)
        assert await store.local.has_entries(ids) == ids

        # a write at the edge is on the server when the write returns
        bob_db = await bob.open_db("todos")
        mine = await bob_db.create_document({"title": "written at the edge"})
        mine_ids = [m.id for m in await store.find_new_entries_for_doc([], mine.get_id())]
        assert store.forwarded_upstream == len(mine_ids) > 0
        assert await server_db.get_store().has_entries(mine_ids) == mine_ids

        # the node's upstream lookup answers with the server's store while the link runs
        await edge.add_tenant(bob, ["todos"])
        assert edge.upstream_store(TENANT_ID, "todos", StoreKind.DOCS) is None
        edge.add_http_peer(served.url, TENANT_ID, upstream=True)

        async def linked() -> bool:
            return edge.upstream_connected(TENANT_ID)

        await eventually(linked)
        found = edge.upstream_store(TENANT_ID, "todos", StoreKind.DOCS)
        assert isinstance(found, HttpRemoteStore) and found.db == "todos"
        assert edge.peers()[0].transport == "http"
    finally:
        await edge.aclose()
        await fetcher.aclose()
        await bob.close()
        await served.aclose()
        await alice.close()
