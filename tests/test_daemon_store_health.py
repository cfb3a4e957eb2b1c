"""A real daemon over damaged store files: the damage costs what it touched, and status says so."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from store.ondisk.schema import DB_NAME
from tests.daemon_helpers import DaemonProcess

TENANT = "acme"
ADMIN, ADMIN_PW = "cn=admin/o=acme", "admin-pw"
ALICE, ALICE_PW = "cn=alice/o=acme", "alice-pw"
CONFIG = """
[tenants.acme]
databases = ["contacts", "notes"]
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    config = tmp_path / "mindood.toml"
    config.write_text(CONFIG)
    proc = DaemonProcess(tmp_path, args=["--config", str(config)])
    proc.start()
    try:
        proc.cli(
            "tenant", "create", TENANT, "--admin", ADMIN, "--user", ALICE, "--json",
            stdin=f"{ADMIN_PW}\n{ALICE_PW}\n",
        )  # fmt: skip
        yield proc
    finally:
        proc.close()


def cli_json(daemon: DaemonProcess, *args: str) -> dict[str, object]:
    result = json.loads(daemon.cli(*args, "--json").stdout)
    assert isinstance(result, dict)
    return result


def flip_metadata_of_one(db: Path, entry_type: str) -> str:
    """Damage the stored metadata of one entry of ``entry_type``; return its document id."""
    conn = sqlite3.connect(db)
    doc_id, blob = conn.execute(
        "SELECT doc_id, metadata FROM entries WHERE entry_type = ? ORDER BY receipt_order DESC",
        (entry_type,),
    ).fetchone()
    conn.close()
    signature = msgpack.unpackb(blob)[11]
    data = bytearray(db.read_bytes())
    at = data.find(signature)
    assert at > 0 and data.count(signature) == 1
    data[at + 9] ^= 0x40
    db.write_bytes(bytes(data))
    return str(doc_id)


def test_a_damaged_entry_costs_its_document_and_shows_in_status(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    ids = [
        str(
            cli_json(daemon, "doc", "create", TENANT, "contacts", "--data", json.dumps({"n": n}))[
                "id"
            ]
        )
        for n in range(3)
    ]
    assert daemon.stop() == 0
    store = daemon.data_dir / "tenants" / TENANT / "contacts" / "docs"
    victim = flip_metadata_of_one(store / DB_NAME, "doc_create")
    daemon.start()
    password = tmp_path / "alice.password"
    password.write_text(ALICE_PW + "\n")
    os.chmod(password, 0o600)
    daemon.cli("tenant", "unlock", TENANT, "--password-file", str(password))
    listed = cli_json(daemon, "doc", "list", TENANT, "contacts")
    assert sorted(listed["doc_ids"]) == sorted(i for i in ids if i != victim)  # type: ignore[arg-type]
    for doc_id in ids:
        if doc_id != victim:
            assert cli_json(daemon, "doc", "get", TENANT, "contacts", doc_id)["data"] == {
                "n": ids.index(doc_id)
            }
    status = cli_json(daemon, "status")
    (tenant,) = status["tenants"]  # type: ignore[misc]
    assert tenant["stores"]["contacts/docs"]["quarantined"] == 1
    text = daemon.cli("status").stdout
    assert "store acme/contacts/docs: ok; 1 damaged entries quarantined" in text
    assert "damaged entry quarantined" in daemon.log()
    # the node keeps working: new writes land, and the damage stays contained
    fresh = cli_json(daemon, "doc", "create", TENANT, "contacts", "--data", '{"n": 9}')
    assert cli_json(daemon, "doc", "get", TENANT, "contacts", str(fresh["id"]))["data"] == {"n": 9}


def unlock(daemon: DaemonProcess, tmp_path: Path) -> None:
    """Unlock the tenant as alice (the CLI fails the test if the unlock fails)."""
    password = tmp_path / "alice.password"
    password.write_text(ALICE_PW + "\n")
    os.chmod(password, 0o600)
    daemon.cli("tenant", "unlock", TENANT, "--password-file", str(password))


def create_docs(daemon: DaemonProcess, db: str, count: int) -> list[str]:
    return [
        str(cli_json(daemon, "doc", "create", TENANT, db, "--data", json.dumps({"n": n}))["id"])
        for n in range(count)
    ]


def store_of(daemon: DaemonProcess, db: str) -> Path:
    return daemon.data_dir / "tenants" / TENANT / db / "docs"


def flip_payload(db: Path, entry_id: str) -> None:
    """Flip one byte in the middle of the stored ciphertext of ``entry_id``."""
    conn = sqlite3.connect(db)
    (order,) = conn.execute(
        "SELECT receipt_order FROM entries WHERE id = ?", (entry_id,)
    ).fetchone()
    (data,) = conn.execute("SELECT data FROM payloads WHERE receipt_order = ?", (order,)).fetchone()
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x40
    conn.execute("UPDATE payloads SET data = ? WHERE receipt_order = ?", (bytes(damaged), order))
    conn.commit()
    conn.close()


def entry_ids(db: Path, doc_id: str | None = None) -> list[str]:
    """The ids of stored entries (of one document), oldest first."""
    conn = sqlite3.connect(db)
    sql = "SELECT id FROM entries" + (" WHERE doc_id = ?" if doc_id else "")
    rows = conn.execute(sql + " ORDER BY receipt_order", (doc_id,) if doc_id else ()).fetchall()
    conn.close()
    return [str(row[0]) for row in rows]


def tenant_status(daemon: DaemonProcess) -> dict[str, object]:
    (tenant,) = cli_json(daemon, "status")["tenants"]  # type: ignore[misc]
    assert isinstance(tenant, dict)
    return tenant


def test_a_garbage_sync_database_list_costs_the_list_not_the_unlock(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    ids = create_docs(daemon, "contacts", 2)
    assert daemon.stop() == 0
    listed = daemon.data_dir / "tenants" / TENANT / ".tenant" / "sync-databases"
    assert listed.is_file()
    listed.write_bytes(b"\xff\x00{ not json")
    daemon.start()
    unlock(daemon, tmp_path)
    assert tenant_status(daemon)["state"] == "unlocked"
    for n, doc_id in enumerate(ids):
        assert cli_json(daemon, "doc", "get", TENANT, "contacts", doc_id)["data"] == {"n": n}
    log = daemon.log()
    assert f"sync database list {listed} damaged" in log
    assert "WARNING mindood.sync.known_databases" in log
    # the list is written again from the stores on disk, and the daemon still serves
    assert {"contacts", "directory", "notes"} <= set(json.loads(listed.read_bytes()))
    assert daemon.proc is not None and daemon.proc.poll() is None


def test_a_store_path_that_is_a_file_fails_its_database_alone(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    ids = create_docs(daemon, "contacts", 2)
    assert daemon.stop() == 0
    broken = store_of(daemon, "notes")
    shutil.rmtree(broken)
    broken.write_bytes(b"not a store")
    daemon.start()
    unlock(daemon, tmp_path)  # the configured, broken database does not stop the unlock
    tenant = tenant_status(daemon)
    assert tenant["state"] == "unlocked"
    health = tenant["stores"]["notes/docs"]  # type: ignore[index]
    assert health["state"] == "failed"
    assert f"store path {broken} exists but is not a directory" in health["problem"]
    assert f"store acme/notes/docs: failed; store path {broken}" in daemon.cli("status").stdout
    failed = daemon.cli("doc", "list", TENANT, "notes", check=False)
    assert failed.returncode == 1
    assert "internal error" not in failed.stderr
    assert f"{broken} exists but is not a directory" in failed.stderr
    assert "[StoreUnavailableError -32010]" in failed.stderr
    log = daemon.log()
    assert "store cannot be opened; its database is out of service" in log
    assert "WARNING mindood.rpc: rpc method doc.list: StoreUnavailableError" in log
    # the other database and the directory (trust) keep working, reads and writes
    for n, doc_id in enumerate(ids):
        assert cli_json(daemon, "doc", "get", TENANT, "contacts", doc_id)["data"] == {"n": n}
    fresh = cli_json(daemon, "doc", "create", TENANT, "contacts", "--data", '{"n": 7}')
    assert cli_json(daemon, "doc", "get", TENANT, "contacts", str(fresh["id"]))["data"] == {"n": 7}


def test_a_directory_store_that_cannot_open_refuses_the_unlock_with_the_reason(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    assert daemon.stop() == 0
    broken = store_of(daemon, "directory")
    shutil.rmtree(broken)
    broken.write_bytes(b"not a store")
    daemon.start()
    password = tmp_path / "alice.password"
    password.write_text(ALICE_PW + "\n")
    os.chmod(password, 0o600)
    refused = daemon.cli("tenant", "unlock", TENANT, "--password-file", str(password), check=False)
    assert refused.returncode == 1
    assert f"store out of service: store path {broken} exists but is not a directory" in (
        refused.stderr
    )
    assert "[StoreUnavailableError -32010]" in refused.stderr
    tenant = tenant_status(daemon)  # the daemon keeps serving, the tenant stays locked
    assert tenant["state"] == "locked"
    assert tenant["stores"]["directory/docs"]["state"] == "failed"  # type: ignore[index]
    assert "WARNING mindood.rpc: rpc method tenant.unlock: StoreUnavailableError" in daemon.log()


def test_a_damaged_directory_entry_is_quarantined_and_the_tenant_unlocks(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    ids = create_docs(daemon, "contacts", 2)
    directory = store_of(daemon, "directory") / DB_NAME
    before = set(entry_ids(directory))
    bob_pw = tmp_path / "bob.password"
    bob_pw.write_text("bob-password\n")
    admin_pw = tmp_path / "admin.password"
    admin_pw.write_text(ADMIN_PW + "\n")
    for path in (bob_pw, admin_pw):
        os.chmod(path, 0o600)
    request = daemon.cli(
        "tenant", "request", "--user", "cn=bob/o=acme", "--password-file", str(bob_pw), "--json"
    )  # fmt: skip
    daemon.cli(
        "tenant", "approve", TENANT, json.loads(request.stdout)["request"],
        "--admin-password-file", str(admin_pw),
    )  # fmt: skip
    assert daemon.stop() == 0
    victim = [i for i in entry_ids(directory) if i not in before][-1]  # bob's grant, not alice's
    flip_payload(directory, victim)
    daemon.start()
    unlock(daemon, tmp_path)
    health = tenant_status(daemon)["stores"]["directory/docs"]  # type: ignore[index]
    assert health["state"] == "ok" and health["quarantined"] == 1
    assert health["quarantined_ids"] == [victim]
    text = daemon.cli("status").stdout
    assert "store acme/directory/docs: ok; 1 damaged entries quarantined" in text
    assert f"  quarantined entry {victim}" in text
    assert f"WARNING store.ondisk: damaged entry quarantined entry_id={victim}" in daemon.log()
    for n, doc_id in enumerate(ids):
        assert cli_json(daemon, "doc", "get", TENANT, "contacts", doc_id)["data"] == {"n": n}
    fresh = cli_json(daemon, "doc", "create", TENANT, "notes", "--data", '{"n": 8}')
    assert cli_json(daemon, "doc", "get", TENANT, "notes", str(fresh["id"]))["data"] == {"n": 8}


def test_a_damaged_document_entry_is_named_and_the_document_reads_without_it(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    changed, lost, other = create_docs(daemon, "contacts", 3)
    for value in (10, 11):
        daemon.cli("doc", "change", TENANT, "contacts", changed, "--set", f"n={value}")
    assert daemon.stop() == 0
    store = store_of(daemon, "contacts") / DB_NAME
    last_change = entry_ids(store, changed)[-1]
    (create_of_lost,) = entry_ids(store, lost)
    flip_payload(store, last_change)
    flip_payload(store, create_of_lost)
    daemon.start()
    unlock(daemon, tmp_path)
    # the damaged change costs that change: the document reads from the entries left
    assert cli_json(daemon, "doc", "get", TENANT, "contacts", changed)["data"] == {"n": 10}
    # a document whose only entry is damaged says so, on this read and on every later one
    for _ in range(2):
        failed = daemon.cli("doc", "get", TENANT, "contacts", lost, check=False)
        assert failed.returncode == 1
        assert "internal error" not in failed.stderr
        assert f"entry {create_of_lost!r} is damaged on disk and was quarantined" in failed.stderr
        assert "a peer with a good copy restores it on the next sync" in failed.stderr
        assert "[QuarantinedEntryError -32011]" in failed.stderr
    assert cli_json(daemon, "doc", "get", TENANT, "contacts", other)["data"] == {"n": 2}
    health = tenant_status(daemon)["stores"]["contacts/docs"]  # type: ignore[index]
    assert health["quarantined"] == 2
    assert sorted(health["quarantined_ids"]) == sorted([last_change, create_of_lost])
    text = daemon.cli("status").stdout
    assert f"  quarantined entry {last_change}" in text
    assert f"  quarantined entry {create_of_lost}" in text
    log = daemon.log()
    assert f"damaged entry quarantined entry_id={last_change}" in log
    assert f"damaged entry quarantined entry_id={create_of_lost}" in log


@pytest.mark.parametrize("loss", ["deleted", "truncated"])
def test_a_lost_database_file_is_reported_not_served_silently(
    daemon: DaemonProcess, tmp_path: Path, loss: str
) -> None:
    (doc_id,) = create_docs(daemon, "contacts", 1)
    assert daemon.stop() == 0
    db = store_of(daemon, "contacts") / DB_NAME
    assert (db.parent / "store.witness").is_file()
    if loss == "deleted":
        db.unlink()
    else:
        db.write_bytes(b"")
    daemon.start()
    unlock(daemon, tmp_path)
    health = tenant_status(daemon)["stores"]["contacts/docs"]  # type: ignore[index]
    assert f"the database file {db} was missing or held no store" in health["recovered"]
    text = daemon.cli("status").stdout
    assert "store acme/contacts/docs: ok; recovered: the database file" in text
    log = daemon.log()
    assert "ERROR store.ondisk: store lost acknowledged writes" in log
    assert f"file={db}" in log
    missing = daemon.cli("doc", "get", TENANT, "contacts", doc_id, check=False)
    assert missing.returncode == 1 and "internal error" not in missing.stderr
