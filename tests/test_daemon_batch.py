"""Batch document methods on a real daemon: one write per batch, all or nothing, named errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mindood.client import MindoodClient, op_increment, op_set
from mindood.rpc.errors import (
    AlreadyExistsError,
    DocumentDeletedRpcError,
    InvalidParamsError,
    NotFoundError,
)
from tests.daemon_helpers import TENANT, DaemonProcess, create_tenant

DB = "todos"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("batch"))
    proc.start()
    try:
        asyncio.run(_prepare(proc))
        yield proc
    finally:
        proc.close()


async def _prepare(proc: DaemonProcess) -> None:
    await create_tenant(proc)
    async with await proc.client() as client:
        await client.db_create(TENANT, DB)


@pytest.fixture
async def client(daemon: DaemonProcess) -> AsyncIterator[MindoodClient]:
    async with await daemon.client() as connected:
        yield connected


async def test_create_change_and_get_many(client: MindoodClient) -> None:
    events = await client.subscribe(["doc.changed"], tenant=TENANT, db=DB)
    made = await client.doc_create_many(
        TENANT, DB, [{"data": {"n": i, "c": {"$counter": 0}}} for i in range(100)]
    )
    ids = [d["id"] for d in made]
    assert [d["data"]["n"] for d in made] == list(range(100)) and len(set(ids)) == 100
    changed = await client.doc_change_many(
        TENANT,
        DB,
        [(doc_id, [op_set(["n"], -i), op_increment(["c"], 2)]) for i, doc_id in enumerate(ids)],
    )
    assert [d["data"]["n"] for d in changed] == [-i for i in range(100)]
    got = await client.doc_get_many(TENANT, DB, list(reversed(ids)))
    assert [d["id"] for d in got] == list(reversed(ids))
    assert all(d["data"]["c"] == 2 and d["last_modified"] >= d["created_at"] for d in got)
    assert got[-1] == changed[0]
    seen: list[str] = []
    async with asyncio.timeout(10):
        while len(seen) < 200:
            seen.extend((await events.get()).params["doc_ids"])
    assert sorted(seen[:100]) == sorted(ids) == sorted(seen[100:])


async def test_a_bad_item_writes_nothing_and_is_named(client: MindoodClient) -> None:
    [kept] = await client.doc_create_many(TENANT, DB, [{"data": {"v": 1}, "doc_id": "kept"}])
    before = await client.doc_list(TENANT, DB)
    with pytest.raises(InvalidParamsError, match=r"docs\[1\]\.data: '_lastModified'"):
        await client.doc_create_many(
            TENANT, DB, [{"data": {"a": 1}}, {"data": {"_lastModified": 1}}]
        )
    with pytest.raises(AlreadyExistsError, match=r"documents\[1\] 'kept': .*already exists"):
        await client.doc_create_many(TENANT, DB, [{"data": {}}, {"doc_id": "kept"}])
    with pytest.raises(InvalidParamsError, match=r"docs\[0\]: unknown field 'id'"):
        await client.doc_create_many(TENANT, DB, [{"id": "x"}])
    with pytest.raises(InvalidParamsError, match=r"documents\[1\] 'kept': ops\[0\]: no key 'nope'"):
        await client.doc_change_many(
            TENANT,
            DB,
            [("kept", [op_set(["v"], 2)]), ("kept", [{"op": "delete", "path": ["nope"]}])],
        )
    with pytest.raises(InvalidParamsError, match=r"changes\[1\]: parameter 'ops' must not be"):
        await client.doc_change_many(TENANT, DB, [("kept", [op_set(["v"], 2)]), ("kept", [])])
    with pytest.raises(NotFoundError, match=r"documents\[1\] 'missing'"):
        await client.doc_change_many(
            TENANT, DB, [("kept", [op_set(["v"], 3)]), ("missing", [op_set(["v"], 3)])]
        )
    assert await client.doc_list(TENANT, DB) == before
    assert (await client.doc_get(TENANT, DB, "kept"))["data"] == kept["data"] == {"v": 1}
    await client.doc_create_many(TENANT, DB, [{"doc_id": "gone"}])
    await client.doc_delete(TENANT, DB, "gone")
    with pytest.raises(DocumentDeletedRpcError, match=r"documents\[1\] 'gone'"):
        await client.doc_change_many(
            TENANT, DB, [("kept", [op_set(["v"], 4)]), ("gone", [op_set(["v"], 4)])]
        )
    with pytest.raises(NotFoundError, match=r"documents\[2\] 'missing'"):
        await client.doc_get_many(TENANT, DB, ["kept", "gone", "missing"])
    with pytest.raises(InvalidParamsError, match=r"doc_ids\[0\]"):
        await client.call("doc.get_many", {"tenant": TENANT, "db": DB, "doc_ids": [7]})
    assert (await client.doc_get(TENANT, DB, "kept"))["data"] == {"v": 1}


async def test_batches_survive_a_restart(daemon: DaemonProcess) -> None:
    async with await daemon.client() as client:
        made = await client.doc_create_many(TENANT, DB, [{"data": {"k": i}} for i in range(300)])
    daemon.restart()
    async with await daemon.client() as client:
        await client.tenant_unlock(TENANT, "alice-pw")
        got = await client.doc_get_many(TENANT, DB, [d["id"] for d in made])
    assert [d["data"]["k"] for d in got] == list(range(300))


def test_the_cli_creates_from_an_array_and_gets_several(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    source = tmp_path / "docs.json"
    source.write_text(json.dumps([{"title": "a"}, {"title": "b"}, {"title": "c"}]))
    ids = daemon.cli("doc", "create", TENANT, DB, "--data", f"@{source}").stdout.split()
    assert len(ids) == 3
    changes = json.dumps([{"doc_id": i, "ops": [op_set(["seen"], True)]} for i in ids])
    assert daemon.cli("doc", "change", TENANT, DB, "--changes", changes).stdout.split() == ids
    shown = json.loads(daemon.cli("doc", "get", TENANT, DB, *ids, "--json").stdout)
    assert [d["data"] for d in shown] == [{"title": t, "seen": True} for t in "abc"]
    one = json.loads(daemon.cli("doc", "get", TENANT, DB, ids[0], "--json").stdout)
    assert one == shown[0]
