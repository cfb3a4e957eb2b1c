"""Checking the daemon's on-disk stores from outside it (``mindood store check``).

Stores are SQLite files several processes may open at once, so this runs beside a running
daemon. Each check opens one store without its check at open, runs ``OnDiskStore.check`` and
turns the outcome into a plain report; a store that cannot be opened is a report too.
"""

from __future__ import annotations

from pathlib import Path

from mindood.daemon.paths import TENANTS_DIR
from mindood.storefactory import STORE_KINDS
from store.errors import StoreError
from store.ondisk import CheckOnOpen, OnDiskStore, OnDiskStoreOptions
from store.ondisk.schema import DB_NAME


def find_stores(data_dir: Path) -> list[Path]:
    """Store directories under ``<data>/tenants/<tenant>/<db>/<kind>``, sorted."""
    root = data_dir / TENANTS_DIR
    if not root.is_dir():
        return []
    found = [
        store
        for tenant in sorted(root.iterdir())
        if tenant.is_dir()
        for db in sorted(tenant.iterdir())
        if db.is_dir() and not db.name.startswith(".")
        for kind in STORE_KINDS
        if (store := db / kind).is_dir()
    ]
    return found


async def check_store(path: Path, *, full: bool, quarantine: bool) -> dict[str, object]:
    """Open one store (no check at open), check it, report; never raises a store error."""
    report: dict[str, object] = {"store": str(path)}
    if not (path / DB_NAME).exists():
        report |= {"ok": False, "problem": f"no {DB_NAME} in this directory"}
        return report
    try:
        store = await OnDiskStore.open(path, OnDiskStoreOptions(check_on_open=CheckOnOpen.OFF))
    except StoreError as exc:
        return report | {"ok": False, "problem": str(exc)}
    try:
        result = await store.check(full=full, quarantine=quarantine)
        health = store.health()
        report |= {
            "ok": result.ok,
            "check": result.kind,
            "summary": result.summary(),
            "entries_checked": result.entries_checked,
            "payloads_checked": result.payloads_checked,
            "damaged_entries": [row.id for row in result.damaged_rows],
            "quarantined_total": health.quarantined,
        }
        if health.recovered:
            report["recovered"] = health.recovered
    except StoreError as exc:
        report |= {"ok": False, "problem": str(exc)}
    finally:
        await store.close()
    return report
