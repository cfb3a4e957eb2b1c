"""Answering a peer's typed store requests from local stores.

The node decides which stores a tenant serves and what a ``put`` may keep (``ServeModel``);
this module maps requests onto them, with the limits a hostile peer could otherwise abuse (page
sizes, response bytes, id counts). An entry this node cannot send (larger than the tenant-wide
entry limit, or damaged here) is refused by id in the answer; the rest of the batch goes out.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from protocol.errors import ErrorCode, RequestError
from protocol.messages import DEFAULT_LIMITS, Limits
from protocol.requests import (
    FindEntries,
    FindForDoc,
    GetBloom,
    GetEntries,
    GetHead,
    GetMetadata,
    GetPacked,
    HasEntries,
    ListDatabases,
    PutEntries,
    ResolveDependencies,
    ScanEntries,
    ScanIds,
    SessionRequest,
    StoreRequest,
    Subscribe,
)
from protocol.store_ops import (
    EntryPacker,
    Refusal,
    StoreKind,
    entries_answer_to_wire,
    entry_from_parts,
    head_to_wire,
    id_page_to_wire,
    metadata_list_to_wire,
    page_to_wire,
    put_answer_to_wire,
    sealed_entry_to_wire,
)
from store.base import ContentAddressedStore, IdPage
from store.entry import StoreEntry
from store.errors import StoreError
from store.limits import MAX_ENTRY_BYTES
from store.origin import OrderRange, scan_ids_skipping
from store.verify import VerifiedBatch

log = logging.getLogger("mindood.protocol.serve")


class ServeModel(Protocol):
    """What the node lets one authenticated peer reach."""

    def served_databases(self) -> list[str]:
        """The databases this peer may read (none while it is unverified)."""
        ...

    async def served_store(self, db: str, kind: StoreKind) -> ContentAddressedStore | None: ...

    async def admit(self, db: str, entries: Sequence[StoreEntry]) -> VerifiedBatch:
        """Which pushed entries may be stored (signature, trust, size)."""
        ...

    async def took_in(self, db: str) -> None:
        """Entries were stored into ``db``: apply them (listeners then announce them)."""
        ...

    def subscribed(self, db: str, kind: StoreKind) -> None: ...

    def damaged(self, db: str) -> None:
        """Entries of ``db`` were found damaged here: fetch good copies from peers."""
        ...

    def served(self, db: str, entries: int, size: int) -> None:
        """``entries`` of ``db`` (``size`` payload bytes) went to the peer in one answer."""
        ...


class Payloads(Protocol):
    def seal(self, data: bytes) -> bytes: ...

    def open_payload(self, blob: bytes) -> bytes: ...


#: ``(db, kind, scanner_epoch, own_epoch)`` -> the served store's receipt-order ranges that
#: hold entries this node took from the requesting peer while the peer's store had
#: ``scanner_epoch`` and ours ``own_epoch`` (empty when it kept none or either epoch changed).
OriginLookup = Callable[[str, StoreKind, str, str], Awaitable[Sequence[OrderRange]]]


@dataclass(frozen=True, slots=True)
class ServeLimits:
    """Answer sizes: a get stops before ``batch_bytes``; no entry above ``entry_bytes`` goes."""

    batch_bytes: int = DEFAULT_LIMITS.max_batch_bytes
    entry_bytes: int = MAX_ENTRY_BYTES


class StoreService:
    """Executes one peer's store requests against local stores."""

    def __init__(
        self,
        model: ServeModel,
        payloads: Payloads,
        *,
        limits: Limits = DEFAULT_LIMITS,
        serve_limits: ServeLimits | None = None,
        origins: OriginLookup | None = None,
    ) -> None:
        self._model = model
        self._origins = origins
        self._payloads = payloads
        self._limits = limits
        self._serve = serve_limits or ServeLimits(batch_bytes=limits.max_batch_bytes)

    async def handle(self, request: SessionRequest) -> Any:
        """The result of one request; ``ProtocolError`` subclasses become error responses."""
        if isinstance(request, ListDatabases):
            return sorted(self._model.served_databases())
        if not isinstance(request, StoreRequest):
            raise RequestError(ErrorCode.UNKNOWN_OPERATION, f"{type(request).__name__} not served")
        try:
            store = await self._model.served_store(request.db, request.kind)
            if store is None:
                raise RequestError(ErrorCode.UNKNOWN_DATABASE, f"no database {request.db!r} here")
            return await self._dispatch(request, store)
        except StoreError as exc:
            # This node's store failed: that costs this request (the peer retries later), and
            # the peer learns no more than that (our status and log say why).
            log.warning(
                "serving a request failed: the store is unavailable",
                extra={"db": request.db, "kind": request.kind.value, "error": str(exc)},
            )
            raise RequestError(
                ErrorCode.REFUSED, f"database {request.db!r} is unavailable on this node"
            ) from exc

    async def _dispatch(self, request: StoreRequest, store: ContentAddressedStore) -> Any:
        match request:
            case GetHead():
                return head_to_wire(await store.get_store_head())
            case Subscribe():
                self._model.subscribed(request.db, request.kind)
                return head_to_wire(await store.get_store_head())
            case ScanEntries():
                page = await store.scan_entries_since(
                    request.cursor, request.limit, request.filters
                )
                return page_to_wire(page)
            case ScanIds():
                return id_page_to_wire(await self._scan_ids(request, store))
            case HasEntries():
                return await store.has_entries(list(request.ids))
            case GetMetadata():
                return metadata_list_to_wire(await store.get_metadata(list(request.ids)))
            case GetEntries():
                return await self._get(request.db, store, request.ids)
            case GetPacked():
                return await self._get(request.db, store, request.ids, EntryPacker())
            case PutEntries():
                return await self._put(request, store)
            case GetBloom():
                return (await store.get_id_bloom_summary()).to_wire()
            case FindForDoc():
                found = await store.find_new_entries_for_doc(request.known, request.doc_id)
                return metadata_list_to_wire(found)
            case FindEntries():
                found = await store.find_entries(
                    request.entry_type, request.created_from, request.created_until
                )
                return metadata_list_to_wire(found)
            case ResolveDependencies():
                return await store.resolve_dependencies(request.start_id, request.options)
        raise RequestError(ErrorCode.UNKNOWN_OPERATION, f"{type(request).__name__} not served")

    async def _scan_ids(self, request: ScanIds, store: ContentAddressedStore) -> IdPage:
        """An id scan that leaves out what came from the requesting peer (at its epoch)."""
        skip: Sequence[OrderRange] = ()
        if self._origins is not None and request.scanner_epoch is not None:
            own = (await store.get_store_head()).epoch
            skip = await self._origins(request.db, request.kind, request.scanner_epoch, own)
        if skip:
            return await scan_ids_skipping(store, request.cursor, request.limit, skip)
        return await store.scan_ids_since(request.cursor, request.limit)

    async def _get(
        self,
        db: str,
        store: ContentAddressedStore,
        ids: Sequence[str],
        packer: EntryPacker | None = None,
    ) -> list[Any]:
        """Entries asked for, in order, stopping before the batch byte limit (the caller asks
        again for the rest); always at least one entry so progress is guaranteed. Entries that
        cannot go are refused by id, so the peer skips them and takes the rest."""
        out: list[Any] = []
        refused: list[Refusal] = []
        budget = self._serve.batch_bytes
        sent_bytes = 0
        entries = await store.get_entries(list(ids))
        for entry in entries:
            size = len(entry.encrypted_data)
            if size > self._serve.entry_bytes:
                refused.append(
                    Refusal(
                        entry.id,
                        ErrorCode.TOO_LARGE,
                        f"entry of {size} bytes exceeds the tenant-wide limit of "
                        f"{self._serve.entry_bytes} bytes",
                    )
                )
                continue
            if out and size + 1024 > budget:
                break
            budget -= size + 1024
            sent_bytes += size
            sealed = self._payloads.seal(entry.encrypted_data)
            out.append(
                sealed_entry_to_wire(entry, sealed)
                if packer is None
                else packer.pack(entry, sealed)
            )
        if len(entries) < len(ids) and store.health().quarantined:
            found = {e.id for e in entries}
            damaged = set(await store.quarantined_ids())
            lost = [i for i in ids if i in damaged and i not in found]
            refused.extend(
                Refusal(i, ErrorCode.REFUSED, "damaged here and quarantined") for i in lost
            )
            if lost:
                self._model.damaged(db)
        for refusal in refused:
            log.warning(
                "entry not served",
                extra={"entry_id": refusal.entry_id[:200], "reason": refusal.reason},
            )
        if out:
            self._model.served(db, len(out), sent_bytes)
        if packer is not None:
            return packer.answer(out, refused)
        return entries_answer_to_wire(out, refused)

    async def _put(self, request: PutEntries, store: ContentAddressedStore) -> Any:
        entries = [
            entry_from_parts(meta, self._payloads.open_payload(sealed))
            for meta, sealed in request.entries
        ]
        verdict = await self._model.admit(request.db, entries)
        result = await store.put_entries(verdict.accepted)
        if result.stored:
            await self._model.took_in(request.db)
        rejected = [*verdict.rejected, *result.rejected]
        for entry_id, reason in rejected:
            log.warning(
                "peer entry refused",
                extra={"entry_id": entry_id[:200], "reason": reason, "db": request.db},
            )
        return put_answer_to_wire(result, rejected, verdict.deferred)
