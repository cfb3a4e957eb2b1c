"""The databases a tenant syncs, remembered across restarts (``sync-databases``).

A damaged file must not stop the node: what cannot be read is dropped with a warning, and the
databases on disk are found again from the store factory anyway.
"""

from __future__ import annotations

import json
import logging

from mindood.storefactory import StoreFactory

log = logging.getLogger("mindood.sync.known_databases")

META_NAME = "sync-databases"
_MAX_NAME = 256


async def load_known_databases(factory: StoreFactory, tenant_id: str) -> set[str]:
    raw = await factory.read_meta(tenant_id, META_NAME)
    if not raw:
        return set()
    try:
        names = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        log.warning(
            "the list of synced databases is unreadable; using the databases on disk",
            extra={"tenant": tenant_id, "file": META_NAME, "problem": str(exc)[:200]},
        )
        return set()
    if not isinstance(names, list):
        log.warning(
            "the list of synced databases is not a list; using the databases on disk",
            extra={"tenant": tenant_id, "file": META_NAME},
        )
        return set()
    good = {n for n in names if isinstance(n, str) and 0 < len(n) <= _MAX_NAME}
    if len(good) != len(names):
        log.warning(
            "dropped malformed names from the list of synced databases",
            extra={"tenant": tenant_id, "file": META_NAME, "dropped": len(names) - len(good)},
        )
    return good


async def save_known_databases(factory: StoreFactory, tenant_id: str, names: set[str]) -> None:
    await factory.write_meta(tenant_id, META_NAME, json.dumps(sorted(names)).encode())
