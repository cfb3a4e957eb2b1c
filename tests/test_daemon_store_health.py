"""A real daemon over damaged store files: the damage costs what it touched, and status says so."""

from __future__ import annotations

import json
import os
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
databases = ["contacts"]
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
