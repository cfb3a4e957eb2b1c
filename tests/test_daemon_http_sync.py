"""Real ``mindood run`` daemons syncing through the HTTP sync API only, live, with a third daemon
on the native protocol behind the one that dials: a mesh across both protocols.

``a`` serves ``[http]`` and nothing else; ``b`` has ``[[peers]] address = "http://..."`` (so it
pulls, pushes and follows ``a``'s change feed) and serves the native protocol; ``c`` knows only
``b``. Every wait is bounded; the daemons are observed through their RPC.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mindood.errors import MindoodError
from tests.daemon_helpers import DaemonProcess

TENANT = "acme"
ADMIN_PW = "admin-pw"


@pytest.fixture
async def daemons() -> AsyncIterator[list[DaemonProcess]]:
    held: list[DaemonProcess] = []
    try:
        yield held
    finally:
        for daemon in held:
            daemon.close()


def _start(root: Path, held: list[DaemonProcess], name: str, lines: list[str]) -> DaemonProcess:
    config = root / f"{name}.toml"
    config.write_text("\n".join([*lines, ""]))
    daemon = DaemonProcess(root, name=name, args=["--config", str(config)])
    held.append(daemon)
    daemon.start()
    return daemon


async def _join(admin_node: DaemonProcess, node: DaemonProcess, user: str) -> None:
    async with await node.client() as client:
        request = await client.tenant_join_request(f"cn={user}/o=acme", f"{user}-password")
    async with await admin_node.client() as admin:
        response = await admin.tenant_approve(TENANT, request, admin_password=ADMIN_PW)
    async with await node.client() as client:
        await client.tenant_join(response, f"{user}-password")


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    async with asyncio.timeout(seconds):
        for _ in range(100_000):
            if await check():
                return
            await asyncio.sleep(0.1)


async def _doc(daemon: DaemonProcess, doc_id: str) -> dict[str, Any] | None:
    async with await daemon.client() as client:
        try:
            found: dict[str, Any] = (await client.doc_get(TENANT, "todos", doc_id))["data"]
            return found
        except MindoodError:
            return None


def _has(
    daemon: DaemonProcess, doc_id: str, expected: dict[str, Any]
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await _doc(daemon, doc_id) == expected

    return check


async def _create_doc(daemon: DaemonProcess, data: dict[str, Any]) -> str:
    async with await daemon.client() as client:
        await client.db_create(TENANT, "todos")
        doc_id: str = (await client.doc_create(TENANT, "todos", data))["id"]
    return doc_id


async def _set(daemon: DaemonProcess, doc_id: str, field: str, value: Any) -> None:
    async with await daemon.client() as client:
        await client.doc_change(
            TENANT, "todos", doc_id, [{"op": "set", "path": [field], "value": value}]
        )


async def test_two_daemons_sync_over_http_only_with_a_native_peer_behind_one(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    a = _start(tmp_path, daemons, "a", ["[http]", 'listen = ["127.0.0.1:0"]'])
    async with await a.client() as client:
        await client.tenant_create(
            TENANT,
            admin_name="cn=admin/o=acme",
            admin_password=ADMIN_PW,
            user_name="cn=alice/o=acme",
            user_password="alice-pw",
        )
        await client.db_create(TENANT, "todos")
        [a_http] = (await client.sync_status())["http"]
        assert (await client.sync_status())["listening"] == []  # no native listener on a
    first = await _create_doc(a, {"title": "before bob"})

    b = _start(
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
    await _join(a, b, "bob")
    await _eventually(_has(b, first, {"title": "before bob"}))
    async with await b.client() as client:
        [b_native] = (await client.sync_status())["listening"]
    c = _start(tmp_path, daemons, "c", ["[[peers]]", f'address = "{b_native}"'])
    await _join(a, c, "carol")
    await _eventually(_has(c, first, {"title": "before bob"}))

    # live from the HTTP server to both (b follows a's change feed; c hears from b)
    doc_id = await _create_doc(a, {"title": "Buy milk"})
    await _eventually(_has(b, doc_id, {"title": "Buy milk"}), seconds=15)
    await _eventually(_has(c, doc_id, {"title": "Buy milk"}), seconds=15)
    # and back: c's edit reaches a through b's HTTP push; concurrent edits converge
    await asyncio.gather(_set(c, doc_id, "done", True), _set(a, doc_id, "owner", "alice"))
    expected = {"title": "Buy milk", "done": True, "owner": "alice"}
    for node in (a, b, c):
        await _eventually(_has(node, doc_id, expected), seconds=15)

    async with await b.client() as client:
        peers = (await client.peers())["peers"]
    by_transport = {p["transport"]: p for p in peers}
    assert set(by_transport) == {"http", "tcp"}
    assert by_transport["http"]["address"] == a_http
    assert by_transport["http"]["state"] == "up-to-date"
