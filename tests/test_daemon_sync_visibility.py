"""What a user sees of sync between real daemons: live events after a restart, peers, progress.

Two or three ``mindood run`` subprocesses on 127.0.0.1 (the helpers of test_daemon_sync.py);
every wait is bounded and ends on an observable event or RPC answer.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mindood.client import Note
from tests.daemon_helpers import (
    ADMIN_PW,
    TENANT,
    DaemonProcess,
    base_env,
    create_doc,
    create_tenant,
    has_doc,
    join,
    poll_until,
    set_field,
)
from tests.test_daemon_sync import (
    Cluster,
    _address,
    _synced_member,
)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    holder = Cluster(tmp_path)
    try:
        yield holder
    finally:
        holder.close()


async def _next(sub: Any, method: str, match: dict[str, Any], seconds: float = 30.0) -> Note:
    """The first notification ``method`` whose params contain ``match`` (bounded)."""
    async with asyncio.timeout(seconds):
        while True:
            note: Note = await sub.get()
            if note.method == method and all(note.params.get(k) == v for k, v in match.items()):
                return note


async def _peers(daemon: DaemonProcess) -> list[dict[str, Any]]:
    async with await daemon.client() as client:
        peers: list[dict[str, Any]] = (await client.peers())["peers"]
    return peers


async def _connected(daemon: DaemonProcess) -> bool:
    return bool(await _peers(daemon))


async def test_remote_changes_fire_doc_changed_after_a_restart(cluster: Cluster) -> None:
    a, b, doc_id = await _synced_member(cluster)
    b.restart()
    async with await b.client() as client:
        await client.tenant_unlock(TENANT, "bob-password")
        sub = await client.subscribe(["doc.changed"], tenant=TENANT)
        await poll_until(lambda: _connected(b))
        # Nothing on B opens "todos": only sync takes the change in.
        await set_field(a, doc_id, "n", 2)
        note = await _next(sub, "doc.changed", {"db": "todos"})
        assert doc_id in note.params["doc_ids"]
        new_id = await create_doc(a, {"fresh": True})
        note = await _next(sub, "doc.changed", {"db": "todos", "doc_ids": [new_id]})
        assert note.params["tenant"] == TENANT


async def _join_as(admin_node: DaemonProcess, node: DaemonProcess, user: str, label: str) -> None:
    async with await node.client() as client:
        request = await client.tenant_join_request(
            f"cn={user}/o=acme", f"{user}-password", label=label
        )
    async with await admin_node.client() as admin:
        response = await admin.tenant_approve(TENANT, request, admin_password=ADMIN_PW)
    async with await node.client() as client:
        await client.tenant_join(response, f"{user}-password")


async def _node_id(daemon: DaemonProcess) -> str:
    async with await daemon.client() as client:
        node_id: str = (await client.status())["sync"]["node_ids"][TENANT]
    return node_id


def _todos(peer: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [d for d in peer["databases"] if d["db"] == "todos"]
    assert len(found) == 1, peer
    return found[0]


async def test_peers_show_who_how_and_how_much_in_both_directions(cluster: Cluster) -> None:
    a = cluster.start("a")
    await create_tenant(a)
    a_addr = await _address(a)
    async with await a.client() as client:
        events = await client.subscribe(["peer.connected", "sync.progress"], tenant=TENANT)
        b = cluster.start("b", peers=(a_addr,))
        await _join_as(a, b, "bob", "bob's laptop")
        b_id, a_id = await _node_id(b), await _node_id(a)
        assert b_id != a_id and len(b_id) == 32
        connected = await _next(events, "peer.connected", {"peer_id": b_id})
        assert connected.params["user"] == "cn=bob/o=acme"
        assert connected.params["device"] == "bob's laptop"
        doc_id = await create_doc(a, {"title": "served"})
        # A serves the entry to B: its progress counts what it sent, naming B by node id.
        served = await _next(events, "sync.progress", {"peer_id": b_id, "db": "todos"})
        while served.params["sent"] == 0:
            served = await _next(events, "sync.progress", {"peer_id": b_id, "db": "todos"})
        assert served.params["sent_bytes"] > 0
    await poll_until(has_doc(b, doc_id, {"title": "served"}))

    async def up_to_date(daemon: DaemonProcess) -> bool:
        peers = await _peers(daemon)
        return len(peers) == 1 and peers[0]["state"] == "up-to-date"

    await poll_until(lambda: up_to_date(a))
    await poll_until(lambda: up_to_date(b))
    [seen_by_a] = await _peers(a)
    assert seen_by_a["peer_id"] == b_id
    assert served.params["address"] == seen_by_a["address"]  # the address is its own field
    assert (seen_by_a["user"], seen_by_a["device"]) == ("cn=bob/o=acme", "bob's laptop")
    assert seen_by_a["transport"] == "tcp" and seen_by_a["direction"] == "in"
    assert _todos(seen_by_a)["sent"] >= 1 and _todos(seen_by_a)["sent_bytes"] > 0
    [seen_by_b] = await _peers(b)
    assert seen_by_b["peer_id"] == a_id and seen_by_b["address"] == a_addr
    assert seen_by_b["user"] == "cn=alice/o=acme" and seen_by_b["direction"] == "out"
    received = _todos(seen_by_b)
    assert received["received"] >= 1 and received["received_bytes"] > 0
    assert received["sent"] == 0  # B wrote nothing: it served A no todos entry

    # B writes: now B serves and A receives; both sides count it.
    await set_field(b, doc_id, "done", True)
    await poll_until(has_doc(a, doc_id, {"title": "served", "done": True}))

    async def counted_back() -> bool:
        [by_a], [by_b] = await _peers(a), await _peers(b)
        received: int = _todos(by_a)["received"]
        sent: int = _todos(by_b)["sent"]
        return received >= 1 and sent >= 1

    await poll_until(counted_back)
    table = b.cli("peers").stdout
    assert a_id in table and "cn=alice/o=acme" in table and "up-to-date" in table
    assert "acme/todos" in table and a_addr in table and "connected" in table

    status = b.cli("status").stdout
    assert f"node id:  {b_id}" in status and "role:     member" in status
    assert f"listen:   {await _address(b)}" in status
    assert "peers:    1 connected, 1 configured" in status

    # One INFO line per connect and disconnect, with the structured fields.
    connect_line = next(ln for ln in a.log().splitlines() if "peer connected" in ln)
    for field in (f"peer={b_id}", "transport=tcp", f"tenant={TENANT}", "user=cn=bob/o=acme"):
        assert field in connect_line, connect_line
    b.stop()

    def disconnect_lines() -> list[str]:
        return [ln for ln in a.log().splitlines() if "peer disconnected" in ln and b_id in ln]

    async def disconnect_logged() -> bool:
        return bool(disconnect_lines())

    await poll_until(disconnect_logged)
    [line] = disconnect_lines()
    assert "INFO" in line and "reason=" in line and f"address={seen_by_a['address']}" in line


async def test_an_edge_cache_shows_its_role_and_upstream(cluster: Cluster) -> None:
    upstream = cluster.start("upstream")
    await create_tenant(upstream)
    up_addr = await _address(upstream)
    edge = cluster.start("edge", upstream=up_addr)
    await join(upstream, edge, "edge", relay=True)

    async def upstream_connected() -> bool:
        async with await edge.client() as client:
            sync = (await client.status())["sync"]
        return bool(sync["upstreams"]) and all(u["connected"] for u in sync["upstreams"])

    await poll_until(upstream_connected)
    async with await edge.client() as client:
        status = await client.status()
    assert status["sync"]["role"] == "edge cache"
    assert status["sync"]["upstreams"] == [
        {"address": up_addr, "tenant": TENANT, "connected": True}
    ]
    shown = edge.cli("status").stdout
    assert "role:     edge cache" in shown
    assert "0 configured, 1 upstream" in shown
    assert f"upstream: {up_addr} for {TENANT} (connected)" in shown
    listed = edge.cli("peers").stdout
    assert "UPSTREAM" in listed and up_addr in listed
    # The edge holds no content key, so it cannot read the names in the directory.
    [peer] = await _peers(edge)
    assert peer["user"] is None and peer["peer_id"] == await _node_id(upstream)
    async with await upstream.client() as client:
        [seen] = (await client.peers())["peers"]
    assert seen["user"] == "cn=edge/o=acme"  # the upstream, a member, can


async def _watch_cli(daemon: DaemonProcess, *args: str) -> asyncio.subprocess.Process:
    env = base_env(daemon.root)
    env["MINDOOD_SOCKET"] = str(daemon.socket)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mindood",
        "watch",
        "--topic",
        "doc.changed",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _line(stream: asyncio.StreamReader | None, text: str, seconds: float = 30.0) -> str:
    """The next line of ``stream`` that contains ``text`` (bounded in time and lines)."""
    assert stream is not None
    async with asyncio.timeout(seconds):
        for _ in range(1000):
            line = (await stream.readline()).decode()
            if not line:
                raise AssertionError(f"the stream ended before a line with {text!r}")
            if text in line:
                return line
    raise AssertionError(f"no line with {text!r} in 1000 lines")


async def test_watch_follow_survives_a_daemon_restart(cluster: Cluster) -> None:
    a = cluster.start("a")
    await create_tenant(a)
    doc_id = await create_doc(a, {"n": 1})
    follow = await _watch_cli(a, "--follow", "--count", "2", "--timeout", "120")
    once = await _watch_cli(a)
    try:
        await _line(follow.stdout, "watching")
        await _line(once.stdout, "watching")
        await set_field(a, doc_id, "n", 2)
        assert doc_id in await _line(follow.stdout, "doc.changed")
        a.restart()
        # Without --follow: exit 1, saying what happened and what would have helped.
        async with asyncio.timeout(30):
            _out, err = await once.communicate()
        assert once.returncode == 1
        assert "lost the connection to the daemon" in err.decode() and "--follow" in err.decode()
        # With --follow: it says so, comes back, and prints what happens next.
        await _line(follow.stderr, "lost the connection to the daemon")
        await _line(follow.stderr, "reconnected to the daemon")
        async with await a.client() as client:
            await client.tenant_unlock(TENANT, "alice-pw")
        await set_field(a, doc_id, "n", 3)
        assert doc_id in await _line(follow.stdout, "doc.changed")
        async with asyncio.timeout(30):
            assert await follow.wait() == 0  # --count 2 reached
    finally:
        for proc in (follow, once):
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
