"""What a user sees of sync between real daemons: live events after a restart, peers, progress.

Two or three ``mindood run`` subprocesses on 127.0.0.1 (the helpers of test_daemon_sync.py);
every wait is bounded and ends on an observable event or RPC answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mindood.client import Note
from tests.daemon_helpers import DaemonProcess
from tests.test_daemon_sync import (
    TENANT,
    Cluster,
    _create_doc,
    _eventually,
    _set,
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
        await client.tenant_unlock(TENANT, "bob-pw")
        sub = await client.subscribe(["doc.changed"], tenant=TENANT)
        await _eventually(lambda: _connected(b))
        # Nothing on B opens "todos": only sync takes the change in.
        await _set(a, doc_id, "n", 2)
        note = await _next(sub, "doc.changed", {"db": "todos"})
        assert doc_id in note.params["doc_ids"]
        new_id = await _create_doc(a, {"fresh": True})
        note = await _next(sub, "doc.changed", {"db": "todos", "doc_ids": [new_id]})
        assert note.params["tenant"] == TENANT
