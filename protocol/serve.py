"""Answering a peer's store requests from local stores.

The node decides which stores a tenant serves (``StoreProvider``) and what a ``put`` may keep
(``admit``: signature and trust checks); this module maps requests onto them, with the limits a
hostile peer could otherwise abuse (page sizes, response bytes, id counts).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from protocol.errors import ErrorCode, ProtocolError, RequestError
from protocol.messages import DEFAULT_LIMITS, Limits, integer
from protocol.store_ops import (
    MAX_SCAN_PAGE,
    Op,
    StoreKind,
    bad_args,
    cursor_from_wire,
    db_and_kind,
    entry_from_parts,
    entry_type,
    filters_from_wire,
    ids_from_wire,
    metadata_list_to_wire,
    page_to_wire,
    resolve_options_from_wire,
    sealed_entries_from_wire,
    sealed_entry_to_wire,
)
from store.base import ContentAddressedStore
from store.entry import StoreEntry
from store.verify import VerifiedBatch

log = logging.getLogger("mindood.protocol.serve")

Admission = Callable[[str, StoreKind, Sequence[StoreEntry]], Awaitable[VerifiedBatch]]


class StoreProvider(Protocol):
    """The stores one tenant serves to one authenticated peer."""

    def databases(self) -> list[str]: ...

    async def store(self, db: str, kind: StoreKind) -> ContentAddressedStore | None: ...


class Payloads(Protocol):
    def seal(self, data: bytes) -> bytes: ...

    def open_payload(self, blob: bytes) -> bytes: ...


class StoreService:
    """Executes one peer's store requests against local stores."""

    def __init__(
        self,
        provider: StoreProvider,
        payloads: Payloads,
        admit: Admission,
        *,
        on_subscribe: Callable[[str, StoreKind], None] | None = None,
        on_stored: Callable[[str, StoreKind], Awaitable[None]] | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self._on_stored = on_stored
        self._provider = provider
        self._payloads = payloads
        self._admit = admit
        self._on_subscribe = on_subscribe
        self._limits = limits

    async def handle(self, operation: str, args: Sequence[Any]) -> Any:
        """The result of one request; ``ProtocolError`` subclasses become error responses."""
        try:
            op = Op(operation)
        except ValueError:
            raise RequestError(
                ErrorCode.UNKNOWN_OPERATION, f"unknown operation {operation!r}"
            ) from None
        if op is Op.DATABASES:
            return sorted(self._provider.databases())
        db, kind = db_and_kind(args, self._limits)
        store = await self._provider.store(db, kind)
        if store is None:
            raise RequestError(ErrorCode.UNKNOWN_DATABASE, f"no database {db!r} here")
        rest = args[2:]
        return await self._dispatch(op, db, kind, store, rest)

    async def _dispatch(
        self, op: Op, db: str, kind: StoreKind, store: ContentAddressedStore, rest: Sequence[Any]
    ) -> Any:
        limits = self._limits
        if op is Op.HEAD:
            head = await store.get_store_head()
            return [head.epoch, head.max_receipt_order]
        if op is Op.SCAN:
            if len(rest) != 3:
                raise bad_args("scan takes cursor, limit, filters")
            cursor = cursor_from_wire(rest[0], limits)
            limit = min(integer(rest[1], "limit", 1, 1 << 31), MAX_SCAN_PAGE)
            page = await store.scan_entries_since(cursor, limit, filters_from_wire(rest[2], limits))
            return page_to_wire(page)
        if op is Op.HAS:
            return await store.has_entries(list(ids_from_wire(_one(rest), limits)))
        if op is Op.METADATA:
            return metadata_list_to_wire(await store.get_metadata(list(ids_from_wire(_one(rest)))))
        if op is Op.GET:
            return await self._get(store, ids_from_wire(_one(rest), limits))
        if op is Op.PUT:
            return await self._put(db, kind, store, _one(rest))
        if op is Op.BLOOM:
            return (await store.get_id_bloom_summary()).to_wire()
        if op is Op.FIND_FOR_DOC:
            if len(rest) != 2:
                raise bad_args("find_doc takes doc id and known ids")
            doc_id = ids_from_wire([rest[0]])[0]
            found = await store.find_new_entries_for_doc(ids_from_wire(rest[1], limits), doc_id)
            return metadata_list_to_wire(found)
        if op is Op.FIND:
            if len(rest) != 3:
                raise bad_args("find takes type, from, until")
            low = None if rest[1] is None else integer(rest[1], "from", -(1 << 63))
            high = None if rest[2] is None else integer(rest[2], "until", -(1 << 63))
            return metadata_list_to_wire(await store.find_entries(entry_type(rest[0]), low, high))
        if op is Op.RESOLVE:
            if len(rest) != 2:
                raise bad_args("resolve takes start id and options")
            start = ids_from_wire([rest[0]])[0]
            return await store.resolve_dependencies(start, resolve_options_from_wire(rest[1]))
        if op is Op.SUBSCRIBE:
            if self._on_subscribe is not None:
                self._on_subscribe(db, kind)
            head = await store.get_store_head()
            return [head.epoch, head.max_receipt_order]
        raise RequestError(ErrorCode.UNKNOWN_OPERATION, f"operation {op} not served")

    async def _get(self, store: ContentAddressedStore, ids: Sequence[str]) -> list[Any]:
        """Entries asked for, in order, stopping before the batch byte limit (the caller asks
        again for the rest); always at least one entry so progress is guaranteed."""
        out: list[Any] = []
        budget = self._limits.max_batch_bytes
        for entry in await store.get_entries(list(ids)):
            size = len(entry.encrypted_data) + 1024
            if out and size > budget:
                break
            budget -= size
            out.append(sealed_entry_to_wire(entry, self._payloads.seal(entry.encrypted_data)))
        return out

    async def _put(self, db: str, kind: StoreKind, store: ContentAddressedStore, value: Any) -> Any:
        entries = [
            entry_from_parts(meta, self._payloads.open_payload(sealed))
            for meta, sealed in sealed_entries_from_wire(value, self._limits)
        ]
        verdict = await self._admit(db, kind, entries)
        result = await store.put_entries(verdict.accepted)
        if result.stored and self._on_stored is not None:
            await self._on_stored(db, kind)
        rejected = [*verdict.rejected, *result.rejected]
        for entry_id, reason in rejected:
            log.warning(
                "peer entry refused", extra={"entry_id": entry_id, "reason": reason, "db": db}
            )
        return [list(result.stored), list(result.existing), [list(r) for r in rejected]]


def _one(rest: Sequence[Any]) -> Any:
    if len(rest) != 1:
        raise bad_args("expected exactly one argument after database and kind")
    return rest[0]


def error_of(exc: ProtocolError) -> tuple[int, str]:
    return (int(exc.code), exc.message)
