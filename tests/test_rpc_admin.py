"""Named keys, purge, groups and settings over the RPC, against two real daemons syncing on TCP.

Daemon ``a`` holds the tenant (created through the CLI, so it keeps the admin identity) with
alice as its user; daemon ``b`` is bob's node, joined through a request and an approval. What
the admin does on ``a`` reaches ``b`` through sync, the way it reaches any member.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mindood.client import op_delete, op_set
from mindood.errors import MindoodError
from mindood.rpc.errors import (
    AlreadyExistsError,
    InvalidParamsError,
    NoKeyError,
    NotFoundError,
    PermissionDeniedError,
    WrongPasswordRpcError,
)
from tests.daemon_helpers import DaemonProcess

TENANT = "acme"
ADMIN_PW, ALICE_PW, BOB_PW, SHARE_PW = "admin-pw-1", "alice-pw-1", "bob-pw-12", "share-pw-1"
ALICE, BOB = "cn=alice/o=acme", "cn=bob/o=acme"
SYNC_SECONDS = 30.0


@dataclass
class Pair:
    a: DaemonProcess
    b: DaemonProcess


def _start(root: Path, name: str, peers: tuple[str, ...] = ()) -> DaemonProcess:
    lines = ["[network]", 'listen = ["127.0.0.1:0"]', ""]
    for address in peers:
        lines += ["[[peers]]", f'address = "{address}"', ""]
    config = root / f"{name}.toml"
    config.write_text("\n".join(lines))
    daemon = DaemonProcess(root, name=name, args=["--config", str(config)])
    daemon.start()
    return daemon


async def _setup(root: Path) -> Pair:
    a = _start(root, "a")
    a.cli("tenant", "create", TENANT, "--user", ALICE, stdin=f"{ADMIN_PW}\n{ALICE_PW}\n")
    async with await a.client() as client:
        address = (await client.sync_status())["listening"][0]
        for db in ("staff", "notes"):
            await client.db_create(TENANT, db)
    b = _start(root, "b", (address,))
    async with await b.client() as client:
        request = await client.tenant_join_request(BOB, BOB_PW)
    async with await a.client() as client:
        response = await client.tenant_approve(TENANT, request, admin_password=ADMIN_PW)
    async with await b.client() as client:
        await client.tenant_join(response, BOB_PW)
    return Pair(a, b)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("admin")
    started = asyncio.run(_setup(root))
    try:
        yield started
    finally:
        started.b.close()
        started.a.close()


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll the daemons (not the product: sync is pushed) until ``check`` holds, bounded."""
    try:
        async with asyncio.timeout(SYNC_SECONDS):
            for _ in range(10_000):
                try:
                    if await check():
                        return
                except MindoodError:
                    pass  # not arrived yet (no such database or document)
                await asyncio.sleep(0.1)
    except TimeoutError:
        pass
    raise AssertionError(f"not within {SYNC_SECONDS}s: {what}")


# -- named keys -----------------------------------------------------------------------------------
async def test_a_named_key_opens_a_document_for_the_member_it_is_shared_with(pair: Pair) -> None:
    async with await pair.a.client() as a, await pair.b.client() as b:
        with pytest.raises(WrongPasswordRpcError):
            await a.key_create(TENANT, "hr", password="not-alice", share_password=SHARE_PW)
        assert "hr" not in [k["id"] for k in await a.key_list(TENANT)]

        created = await a.key_create(TENANT, "hr", password=ALICE_PW, share_password=SHARE_PW)
        assert set(created["exported"]) >= {"ciphertext", "iv", "tag", "salt"}
        with pytest.raises(AlreadyExistsError, match="rotate"):
            await a.key_create(TENANT, "hr", password=ALICE_PW, share_password=SHARE_PW)
        keys = {k["id"]: k for k in await a.key_list(TENANT)}
        assert keys["hr"]["versions"] == 1 and set(keys["hr"]) == {"id", "versions", "created_at"}
        with pytest.raises(InvalidParamsError, match="tenant key"):
            await a.key_export(TENANT, "default", password=ALICE_PW, share_password=SHARE_PW)

        doc = await a.doc_create(TENANT, "staff", {"salary": 5100}, key_id="hr")
        assert doc["key_id"] == "hr"

        async def arrived() -> bool:
            return doc["id"] in await b.doc_list(TENANT, "staff")

        await _eventually(arrived, "bob's node receives the encrypted document")
        with pytest.raises(NoKeyError):
            await b.doc_get(TENANT, "staff", doc["id"])

        exported = (
            await a.key_export(TENANT, "hr", password=ALICE_PW, share_password="other-pw-1")
        )["exported"]
        with pytest.raises(WrongPasswordRpcError, match="share password"):
            await b.key_import(TENANT, "hr", exported, share_password=SHARE_PW, password=BOB_PW)
        with pytest.raises(WrongPasswordRpcError, match="share password"):
            await b.key_import(
                TENANT, "hr2", exported, share_password="other-pw-1", password=BOB_PW
            )
        imported = await b.key_import(
            TENANT, "hr", exported, share_password="other-pw-1", password=BOB_PW
        )
        assert imported["added"]
        assert (await b.doc_get(TENANT, "staff", doc["id"]))["data"] == {"salary": 5100}
        again = await b.key_import(
            TENANT, "hr", created["exported"], share_password=SHARE_PW, password=BOB_PW
        )
        assert not again["added"]  # the same key bytes, sealed twice


# -- purge ----------------------------------------------------------------------------------------
async def test_an_admin_purge_erases_a_document_here_and_on_the_member(pair: Pair) -> None:
    async with await pair.a.client() as a, await pair.b.client() as b:
        gone = (await a.doc_create(TENANT, "notes", {"patient": "Jane Roe"}))["id"]
        await a.doc_change(TENANT, "notes", gone, [op_set(["visits"], 2)])
        kept = (await a.doc_create(TENANT, "notes", {"patient": "John Doe"}))["id"]

        async def both_arrived() -> bool:
            return {gone, kept} <= set(await b.doc_list(TENANT, "notes"))

        await _eventually(both_arrived, "bob's node receives both notes")

        with pytest.raises(WrongPasswordRpcError):
            await a.purge_request(TENANT, "notes", [gone], admin_password="wrong-pw-1")
        with pytest.raises(PermissionDeniedError, match="admin identity"):
            await b.purge_request(TENANT, "notes", [gone], admin_password=ADMIN_PW)
        with pytest.raises(NotFoundError, match="it has:"):
            await a.purge_request(TENANT, "nootes", [gone], admin_password=ADMIN_PW)
        assert gone in await a.doc_list(TENANT, "notes")  # refused requests erased nothing

        result = await a.purge_request(
            TENANT, "notes", [gone], admin_password=ADMIN_PW, reason="erasure request 12"
        )
        assert result["doc_ids"] == [gone] and result["entries_removed"] >= 2
        assert await a.doc_list(TENANT, "notes") == [kept]
        with pytest.raises(NotFoundError, match="purged"):
            await a.doc_get(TENANT, "notes", gone)
        listed = await a.purge_list(TENANT, db="notes")
        [request] = [r for r in listed["requests"] if r["request_id"] == result["request_id"]]
        assert request["applied"] and request["reason"] == "erasure request 12"

        async def purged_on_b() -> bool:
            return gone not in await b.doc_list(TENANT, "notes")

        await _eventually(purged_on_b, "bob's node applies the purge request")
        with pytest.raises(NotFoundError):
            await b.doc_get(TENANT, "notes", gone)
        assert (await b.doc_get(TENANT, "notes", kept))["data"] == {"patient": "John Doe"}
        records = (await b.purge_list(TENANT))["records"]
        assert [r["doc_ids"] for r in records] == [[gone]] and records[0]["entries_removed"] >= 2
        assert await b.purge_apply(TENANT) == []  # nothing pending: applied when it arrived


# -- groups ---------------------------------------------------------------------------------------
async def test_groups_are_created_changed_listed_and_deleted(pair: Pair) -> None:
    async with await pair.a.client() as a, await pair.b.client() as b:
        made = await a.group_create(TENANT, "Sales", [ALICE], admin_password=ADMIN_PW)
        assert made == {"tenant": TENANT, "name": "sales", "members": [ALICE]}
        with pytest.raises(AlreadyExistsError):
            await a.group_create(TENANT, "SALES", admin_password=ADMIN_PW)
        with pytest.raises(WrongPasswordRpcError):
            await a.group_add(TENANT, "sales", [BOB], admin_password="wrong-pw-1")
        added = await a.group_add(TENANT, "sales", [BOB], admin_password=ADMIN_PW)
        assert added["members"] == sorted([ALICE, BOB])
        removed = await a.group_remove(TENANT, "sales", [ALICE], admin_password=ADMIN_PW)
        assert removed["members"] == [BOB]
        assert "sales" in await a.group_list(TENANT)

        async def bob_sees_it() -> bool:
            return await b.group_members(TENANT, "sales") == [BOB]

        await _eventually(bob_sees_it, "the group reaches bob's node")
        with pytest.raises(PermissionDeniedError):
            await b.group_delete(TENANT, "sales", admin_password=ADMIN_PW)

        await a.group_delete(TENANT, "sales", admin_password=ADMIN_PW)
        assert "sales" not in await a.group_list(TENANT)
        with pytest.raises(NotFoundError, match="no group 'sales'"):
            await a.group_members(TENANT, "sales")
        with pytest.raises(NotFoundError, match="no group 'sales'"):
            await a.group_add(TENANT, "sales", [BOB], admin_password=ADMIN_PW)
        with pytest.raises(NotFoundError, match="no group 'sales'"):
            await a.group_delete(TENANT, "sales", admin_password=ADMIN_PW)


# -- settings -------------------------------------------------------------------------------------
async def test_tenant_and_database_settings_change_by_operations(pair: Pair) -> None:
    async with await pair.a.client() as a, await pair.b.client() as b:
        assert await a.settings_get(TENANT) == {}
        changed = await a.settings_change(
            TENANT,
            [op_set(["retention_days"], 30), op_set(["labels"], {"title": "Acme"})],
            admin_password=ADMIN_PW,
        )
        assert changed == {"retention_days": 30, "labels": {"title": "Acme"}}
        changed = await a.settings_change(
            TENANT,
            [op_delete(["retention_days"]), op_set(["labels", "footer"], "ok")],
            admin_password=ADMIN_PW,
        )
        assert changed == {"labels": {"title": "Acme", "footer": "ok"}}
        notes = await a.settings_change(
            TENANT, [op_set(["max_notes"], 500)], admin_password=ADMIN_PW, db="notes"
        )
        assert notes == {"max_notes": 500}
        assert await a.settings_get(TENANT, db="notes") == notes
        assert await a.settings_get(TENANT, db="staff") == {}

        with pytest.raises(InvalidParamsError, match="'form' is maintained"):
            await a.settings_change(TENANT, [op_set(["form"], "x")], admin_password=ADMIN_PW)
        with pytest.raises(InvalidParamsError, match="no key 'missing'"):
            await a.settings_change(TENANT, [op_delete(["missing"])], admin_password=ADMIN_PW)
        with pytest.raises(WrongPasswordRpcError):
            await a.settings_change(TENANT, [op_set(["x"], 1)], admin_password="wrong-pw-1")
        with pytest.raises(NotFoundError, match="no database 'nots'"):
            await a.settings_get(TENANT, db="nots")
        assert await a.settings_get(TENANT) == {"labels": {"title": "Acme", "footer": "ok"}}

        async def bob_reads_them() -> bool:
            return await b.settings_get(TENANT, db="notes") == {"max_notes": 500}

        await _eventually(bob_reads_them, "the settings reach bob's node")


# -- the CLI --------------------------------------------------------------------------------------
def test_the_cli_drives_keys_groups_settings_and_purge(pair: Pair) -> None:
    a = pair.a
    key_file = a.root / "cli.key"
    created = a.cli(
        "key", "create", TENANT, "cli", "-o", str(key_file), stdin=f"{ALICE_PW}\n{SHARE_PW}\n"
    )
    assert "written to" in created.stdout
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "ciphertext" in json.loads(key_file.read_text())

    shown = a.cli("group", "create", TENANT, "ops", ALICE, BOB, stdin=f"{ADMIN_PW}\n").stdout
    assert "2 member(s)" in shown and BOB in shown
    settings = a.cli(
        "settings", "change", TENANT, "--set", "mode=strict", "--json", stdin=f"{ADMIN_PW}\n"
    ).stdout
    assert json.loads(settings)["settings"]["mode"] == "strict"

    doc = asyncio.run(_create(a, "notes"))
    purged = a.cli(
        "purge",
        "request",
        TENANT,
        "notes",
        doc,
        "--reason",
        "test",
        "--json",
        stdin=f"{ADMIN_PW}\n",
    )
    assert json.loads(purged.stdout)["doc_ids"] == [doc]
    bad = a.cli("group", "add", TENANT, "nogroup", BOB, stdin=f"{ADMIN_PW}\n", check=False)
    assert bad.returncode == 1 and "no group 'nogroup'" in bad.stderr


async def _create(daemon: DaemonProcess, db: str) -> str:
    async with await daemon.client() as client:
        doc_id: str = (await client.doc_create(TENANT, db, {"n": 1}))["id"]
        return doc_id


# -- last: a restart ----------------------------------------------------------------------------
async def test_an_imported_key_survives_a_restart(pair: Pair) -> None:
    async with await pair.a.client() as a, await pair.b.client() as b:
        created = await a.key_create(TENANT, "payroll", password=ALICE_PW, share_password=SHARE_PW)
        await b.key_import(
            TENANT, "payroll", created["exported"], share_password=SHARE_PW, password=BOB_PW
        )
        doc_id = (await a.doc_create(TENANT, "staff", {"salary": 6200}, key_id="payroll"))["id"]

        async def readable() -> bool:
            found = await b.doc_get(TENANT, "staff", doc_id)
            return bool(found["data"] == {"salary": 6200})

        await _eventually(readable, "the payroll document reaches bob's node")
    pair.b.restart()
    async with await pair.b.client() as b:
        await b.tenant_unlock(TENANT, BOB_PW)
        assert "payroll" in [k["id"] for k in await b.key_list(TENANT)]
        found = await b.doc_get(TENANT, "staff", doc_id)  # from its own store, with its own key
        assert found["data"] == {"salary": 6200}
