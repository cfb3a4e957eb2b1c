"""Per-peer cursors survive a restart, origin ranges included; damaged ranges count as none."""

from __future__ import annotations

import json
from pathlib import Path

from mindood.storefactory import OnDiskStoreFactory
from mindood.sync.cursors import CursorBook
from store.base import ScanCursor
from store.replicate import ReplicationCursor


async def test_cursors_keep_their_origin_ranges_across_a_restart(tmp_path: Path) -> None:
    factory = OnDiskStoreFactory(tmp_path)
    book = CursorBook(factory, "t")
    state = ReplicationCursor("ea", "eb", ScanCursor(9, "x"), ("d1",), ((1, 5), (8, 9)))
    await book.put("peer", "db/docs", state)
    await book.save()
    again = await CursorBook(factory, "t").get("peer", "db/docs")
    assert again == state
    assert again.origin_towards("ea", "eb") == ((1, 5), (8, 9))
    assert again.origin_towards("ea-wiped", "eb") == () and again.origin_towards("ea", "x") == ()
    await factory.close()


async def test_malformed_origin_ranges_are_dropped_not_trusted(tmp_path: Path) -> None:
    factory = OnDiskStoreFactory(tmp_path)
    for bad in ([[5, 1]], [[1, 5], [3, 9]], [["1", 2]], "1-5", [[0, 3]]):
        raw = {"peer": {"s": {"source": "a", "target": "b", "order": 1, "id": "i", "origin": bad}}}
        await factory.write_meta("t", "sync-cursors", json.dumps(raw).encode())
        state = await CursorBook(factory, "t").get("peer", "s")
        assert state is not None and state.origin == () and state.cursor == ScanCursor(1, "i")
    await factory.close()
