"""RPC methods for time travel: a document at a point in time, its history, past document ids.

A history page replays the document from its first change (a version is the state right after
one change, and the library builds each from the one before), so a page that starts at index N
costs the replay of N versions; what goes on the wire stays bounded by ``count`` and, with data,
by :data:`MAX_PAGE_DATA_BYTES`. ``next`` says where the following page starts.

Authors are named from the directory: the user a signing key was granted to (and the device
label), when this member may read the name; the administrator's key is flagged as such.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from collections.abc import AsyncGenerator
from typing import Any, cast

from mindood.crypto.pem import normalize_pem
from mindood.daemon.docops import doc_to_wire
from mindood.daemon.node import Node
from mindood.daemon.params import Handler, Params
from mindood.db import DocumentVersion, MindooDB
from mindood.db.history import to_ms
from mindood.rpc.connection import Connection
from mindood.rpc.errors import InvalidParamsError, NotFoundError
from mindood.rpc.wire import pack
from mindood.tenant import Tenant

DEFAULT_HISTORY_PAGE = 100
MAX_HISTORY_PAGE = 1000
#: A page with data ends after the version that takes its data past this size.
MAX_PAGE_DATA_BYTES = 16 * 1024 * 1024
MAX_TIMESTAMP_CHARS = 64
#: Milliseconds a float holds exactly; later times are not timestamps anyone means.
MAX_MS = 2**53


def parse_at(raw: object) -> int:
    """Parameter ``at`` as milliseconds since the epoch (see the schema for the forms)."""
    if raw is None:
        raise InvalidParamsError("missing parameter 'at'")
    if isinstance(raw, bool):
        raise InvalidParamsError("parameter 'at' must be milliseconds, ISO 8601 text or a time")
    if isinstance(raw, int | float):
        if not math.isfinite(raw) or not 0 <= raw <= MAX_MS:
            raise InvalidParamsError(f"parameter 'at' must be between 0 and {MAX_MS} ms")
        return int(raw)
    if isinstance(raw, str):
        if len(raw) > MAX_TIMESTAMP_CHARS:
            raise InvalidParamsError("parameter 'at' is too long for a timestamp")
        try:
            return to_ms(raw.strip())
        except ValueError:
            raise InvalidParamsError(
                f"parameter 'at': {raw!r} is not ISO 8601 (e.g. 2026-01-31T12:00:00Z)"
            ) from None
    if isinstance(raw, dt.datetime):
        return to_ms(raw)
    raise InvalidParamsError("parameter 'at' must be milliseconds, ISO 8601 text or a time")


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


async def _open(node: Node, tenant_id: str, db_name: str) -> tuple[Tenant, MindooDB]:
    db = await node.tenants.open_db(tenant_id, db_name)
    return node.tenants.unlocked(tenant_id), db


async def _doc_get_at(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name = p.tenant(), p.db()
    doc_id = p.text("doc_id", max_chars=256)
    at = parse_at(p.raw("at"))
    p.finish()
    _, db = await _open(node, tenant_id, db_name)
    doc = await db.get_document_at_timestamp(doc_id, at)
    if doc is None:
        raise NotFoundError(f"no document {doc_id!r} in {db.db_id!r} before {_iso(at)}")
    return {**doc_to_wire(doc), "at": at}


async def _doc_list_at(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name = p.tenant(), p.db()
    at = parse_at(p.raw("at"))
    p.finish()
    _, db = await _open(node, tenant_id, db_name)
    ids = await db.get_all_document_ids_at_timestamp(at)
    return {"tenant": db.tenant_id, "db": db.db_id, "at": at, "doc_ids": ids}


class _Authors:
    """Signing key -> (user name, device label), from the grants this member can read."""

    def __init__(self, tenant: Tenant) -> None:
        directory = tenant.get_directory()
        self._admin = normalize_pem(tenant.admin_signing_public_key)
        self._by_key: dict[str, tuple[str, str | None]] = {}
        for name in directory.get_usernames():
            pairs = (*directory.get_user_key_pairs(name), *directory.get_revoked_key_pairs(name))
            for pair in pairs:
                self._by_key[pair.signing_key_id] = (name, pair.label)

    def describe(self, public_key: str) -> dict[str, Any]:
        key = normalize_pem(public_key)
        name, label = self._by_key.get(key, (None, None))
        return {"author": name, "device": label, "by_admin": key == self._admin}


def _version_to_wire(index: int, version: DocumentVersion, authors: _Authors) -> dict[str, Any]:
    return {
        "index": index,
        "entry_id": version.change_entry_id,
        "type": version.change_type.value,
        "created_at": version.change_created_at,
        **authors.describe(version.change_created_by_public_key),
        "author_key": version.change_created_by_public_key,
        "deleted": version.doc.is_deleted(),
    }


async def _doc_history(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name = p.tenant(), p.db()
    doc_id = p.text("doc_id", max_chars=256)
    start = p.opt_int("start", low=0, high=2**31, default=0)
    count = p.opt_int("count", low=1, high=MAX_HISTORY_PAGE, default=DEFAULT_HISTORY_PAGE)
    with_data = p.opt_bool("data", False)
    p.finish()
    tenant, db = await _open(node, tenant_id, db_name)
    authors = _Authors(tenant)
    page: list[dict[str, Any]] = []
    data_bytes = 0
    seen = 0
    next_index: int | None = None
    # An async generator (typed as an iterator): close it at once when the page is full.
    history = cast(AsyncGenerator[DocumentVersion, None], db.iterate_document_history(doc_id))
    async with contextlib.aclosing(history) as versions:
        async for version in versions:
            index, seen = seen, seen + 1
            if index < start:
                continue
            if len(page) == count or data_bytes >= MAX_PAGE_DATA_BYTES:
                next_index = index
                break
            item = _version_to_wire(index, version, authors)
            if with_data:
                item["data"] = dict(version.doc.get_data())
                data_bytes += len(pack([item["data"]]))
            page.append(item)
    if seen == 0:
        raise NotFoundError(f"no document {doc_id!r} in {db.db_id!r}")
    return {"id": doc_id, "versions": page, "next": next_index}


HISTORY_METHODS: dict[str, Handler] = {
    "doc.get_at": _doc_get_at,
    "doc.history": _doc_history,
    "doc.list_at": _doc_list_at,
}

__all__ = ["HISTORY_METHODS", "parse_at"]
