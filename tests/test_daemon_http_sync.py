"""Real ``mindood run`` daemons syncing through the HTTP sync API only, live, with a third daemon
on the native protocol behind the one that dials: a mesh across both protocols.

``a`` serves ``[http]`` and nothing else; ``b`` has ``[[peers]] address = "http://..."`` (so it
pulls, pushes and follows ``a``'s change feed) and serves the native protocol; ``c`` knows only
``b``. Every wait is bounded; the daemons are observed through their RPC.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.daemon_helpers import (
    HTTP_LISTEN,
    TENANT,
    DaemonProcess,
    create_doc,
    create_tenant,
    has_doc,
    join,
    poll_until,
    set_field,
    start_daemon,
)


async def test_two_daemons_sync_over_http_only_with_a_native_peer_behind_one(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    a = start_daemon(tmp_path, daemons, "a", HTTP_LISTEN)
    await create_tenant(a)
    async with await a.client() as client:
        await client.db_create(TENANT, "todos")
        [a_http] = (await client.sync_status())["http"]
        assert (await client.sync_status())["listening"] == []  # no native listener on a
    first = await create_doc(a, {"title": "before bob"})

    b = start_daemon(
        tmp_path,
        daemons,
        "b",
        [
            "[network]",
            'listen = ["127.0.0.1:0"]',
            # a server cannot list its databases: name the ones to sync (the change feed
            # adopts any other the server announces)
            f"[tenants.{TENANT}]",
            'databases = ["todos"]',
            "[[peers]]",
            f'address = "{a_http}"',
        ],
    )
    await join(a, b, "bob")
    await poll_until(has_doc(b, first, {"title": "before bob"}))
    async with await b.client() as client:
        [b_native] = (await client.sync_status())["listening"]
    c = start_daemon(tmp_path, daemons, "c", ["[[peers]]", f'address = "{b_native}"'])
    await join(a, c, "carol")
    await poll_until(has_doc(c, first, {"title": "before bob"}))

    # live from the HTTP server to both (b follows a's change feed; c hears from b)
    doc_id = await create_doc(a, {"title": "Buy milk"})
    await poll_until(has_doc(b, doc_id, {"title": "Buy milk"}), seconds=15)
    await poll_until(has_doc(c, doc_id, {"title": "Buy milk"}), seconds=15)
    # and back: c's edit reaches a through b's HTTP push; concurrent edits converge
    await asyncio.gather(set_field(c, doc_id, "done", True), set_field(a, doc_id, "owner", "alice"))
    expected = {"title": "Buy milk", "done": True, "owner": "alice"}
    for node in (a, b, c):
        await poll_until(has_doc(node, doc_id, expected), seconds=15)

    async with await b.client() as client:
        peers = (await client.peers())["peers"]
    by_transport = {p["transport"]: p for p in peers}
    assert set(by_transport) == {"http", "tcp"}
    assert by_transport["http"]["address"] == a_http
    assert by_transport["http"]["state"] == "up-to-date"
