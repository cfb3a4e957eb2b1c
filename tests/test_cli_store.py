"""``mindood store check`` as a user runs it: a real process over real store files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from store.entry import StoreEntry
from store.ondisk import OnDiskStore
from store.ondisk.schema import DB_NAME
from tests.entries import Author

REPO = Path(__file__).resolve().parent.parent
AUTHOR = Author()


def mindood(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "mindood", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


async def fill(path: Path, count: int) -> list[StoreEntry]:
    store = await OnDiskStore.open(path)
    entries = [AUTHOR.entry(payload=os.urandom(150)) for _ in range(count)]
    await store.put_entries(entries)
    await store.close()
    return entries


async def test_store_check_reports_damage_and_quarantines_on_request(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants"
    healthy = tenants / "acme" / "contacts" / "docs"
    damaged = tenants / "acme" / "todos" / "docs"
    await fill(healthy, 5)
    entries = await fill(damaged, 8)
    db = damaged / DB_NAME
    data = bytearray(db.read_bytes())
    data[data.find(entries[2].metadata.signature) + 7] ^= 0x10
    db.write_bytes(bytes(data))

    first = mindood("store", "check", "--data-dir", str(tmp_path), "--json")
    assert first.returncode == 1, first.stderr
    reports = {Path(r["store"]).parent.name: r for r in json.loads(first.stdout)}
    assert reports["contacts"]["ok"] and reports["contacts"]["entries_checked"] == 5
    assert not reports["todos"]["ok"]
    assert reports["todos"]["damaged_entries"] == [entries[2].id]
    assert reports["todos"]["quarantined_total"] == 0  # a plain check changes nothing

    fixed = mindood("store", "check", "--data-dir", str(tmp_path), "--quarantine")
    assert fixed.returncode == 1 and "damaged entry quarantined" in fixed.stderr
    after = mindood("store", "check", str(damaged))
    assert after.returncode == 0, after.stdout + after.stderr
    assert after.stdout.startswith("ok") and "(7 entries)" in after.stdout


async def test_store_check_names_a_file_that_is_no_database(tmp_path: Path) -> None:
    store = tmp_path / "tenants" / "acme" / "notes" / "docs"
    store.mkdir(parents=True)
    (store / DB_NAME).write_bytes(b"this is not SQLite" * 500)
    result = mindood("store", "check", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.startswith("DAMAGED") and "is damaged" in result.stdout
