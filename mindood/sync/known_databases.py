"""The tenant's list of databases the sync layer follows, kept as a small metadata blob.

The list only remembers which databases to watch and announce after a restart; the stores on
disk are the truth. So a damaged, foreign or unreadable file costs the list, never the unlock:
it reads as empty (the stores found on disk refill it) with a WARNING naming the file and the
problem, and names that are not valid database names are dropped one by one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from mindood.errors import InvalidNameError
from mindood.storefactory import META_DIR, OnDiskStoreFactory, StoreFactory, check_component

log = logging.getLogger("mindood.sync.known_databases")

META_NAME = "sync-databases"
#: Databases dropped on this node: peers that still share them are not followed into them again.
DROPPED_META_NAME = "sync-dropped-databases"
#: Largest file read as a list (a list of 10,000 names of 128 characters fits well within it).
MAX_FILE_BYTES = 2 * 1024 * 1024
#: Most names kept; more than this is not a list we wrote.
MAX_NAMES = 10_000


def _describe(factory: StoreFactory, tenant_id: str, meta: str) -> str:
    """The file's path where the factory keeps files, else its place inside the tenant."""
    if isinstance(factory, OnDiskStoreFactory):
        return str(factory.base_path / tenant_id / META_DIR / meta)
    return f"{tenant_id}/{META_DIR}/{meta}"


def parse_known_databases(raw: bytes) -> tuple[set[str], list[str]]:
    """The valid names in ``raw``, and what was wrong with it (empty when nothing was)."""
    if len(raw) > MAX_FILE_BYTES:
        return set(), [f"{len(raw)} bytes is over the {MAX_FILE_BYTES}-byte limit"]
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return set(), [f"not JSON: {exc}"]
    if not isinstance(value, list):
        return set(), [f"not a JSON list but {type(value).__name__}"]
    if len(value) > MAX_NAMES:
        return set(), [f"{len(value)} names is over the limit of {MAX_NAMES}"]
    names: set[str] = set()
    dropped = 0
    for item in value:
        try:
            names.add(check_component(item, "database name"))
        except InvalidNameError:
            dropped += 1
    problems = [f"dropped {dropped} entries that are not valid database names"] if dropped else []
    return names, problems


async def load_known_databases(
    factory: StoreFactory, tenant_id: str, meta: str = META_NAME
) -> set[str]:
    """The names saved for ``tenant_id``; a missing, unreadable or damaged file reads as empty."""
    try:
        raw = await factory.read_meta(tenant_id, meta)
    except OSError as exc:
        log.warning(
            "sync database list %s unreadable, starting from the stores on disk: %s",
            _describe(factory, tenant_id, meta),
            exc,
        )
        return set()
    if not raw:
        return set()
    names, problems = parse_known_databases(raw)
    for problem in problems:
        log.warning(
            "sync database list %s damaged, kept %d names: %s",
            _describe(factory, tenant_id, meta),
            len(names),
            problem,
        )
    return names


async def save_known_databases(
    factory: StoreFactory, tenant_id: str, names: Iterable[str], meta: str = META_NAME
) -> None:
    """Replace the saved list with the valid names of ``names`` (sorted, as JSON)."""
    valid = sorted({n for n in names if isinstance(n, str) and _valid(n)})
    await factory.write_meta(tenant_id, meta, json.dumps(valid).encode())


def _valid(name: str) -> bool:
    try:
        check_component(name, "database name")
    except InvalidNameError:
        return False
    return True


__all__ = [
    "DROPPED_META_NAME",
    "MAX_FILE_BYTES",
    "MAX_NAMES",
    "META_NAME",
    "load_known_databases",
    "parse_known_databases",
    "save_known_databases",
]
