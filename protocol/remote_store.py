"""A peer's store, seen through an authenticated session, as a ``ContentAddressedStore``.

``store.replicate`` and ``MindooDB.pull_changes_from`` take it like any local store; that is what
makes mesh, relay and store chaining the same code. Reads of large results are paged so no single
response crosses the message limit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from protocol.errors import ErrorCode, RemoteProtocolError, RequestError
from protocol.requests import (
    FindEntries,
    GetBloom,
    GetEntries,
    GetHead,
    GetMetadata,
    GetPacked,
    HasEntries,
    PutEntries,
    ResolveDependencies,
    ScanEntries,
    ScanIds,
    SessionRequest,
    Subscribe,
)
from protocol.store_ops import (
    MAX_SCAN_PAGE,
    Refusal,
    StoreKind,
    entries_answer_from_wire,
    entry_from_packed,
    entry_from_parts,
    head_from_wire,
    id_page_from_wire,
    ids_from_wire,
    metadata_list_from_wire,
    metadata_to_wire_sealed,
    packed_answer_from_wire,
    page_from_wire,
    put_answer_from_wire,
)
from store.base import (
    ContentAddressedStore,
    IdPage,
    PutResult,
    ResolveOptions,
    ScanCursor,
    ScanFilters,
    ScanPage,
    StoreHead,
)
from store.bloom import BloomSummary
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.errors import EntryFormatError

log = logging.getLogger("mindood.protocol.remote")

#: Ids per ``has``/``get``/``meta`` request: keeps each message far below the size limit.
ID_BATCH = 1000
#: Bytes of payload per ``put`` request.
PUT_BATCH_BYTES = 4 * 1024 * 1024


class Requester(Protocol):
    """Sends one request over a live session and awaits its result."""

    async def call(self, operation: str, args: list[Any]) -> Any:
        """Raise ``RequestError`` for a failed request, ``ProtocolError`` if the session died."""
        ...

    def seal(self, data: bytes) -> bytes: ...

    def open_payload(self, blob: bytes) -> bytes: ...


async def ask(requester: Requester, request: SessionRequest) -> Any:
    """Send a typed request and await its (still unparsed) result."""
    return await requester.call(request.OP, request.to_args())


class RemoteStore(ContentAddressedStore):
    """One store (docs or attachments of one database) of a connected peer.

    ``refusals`` collects the entries the peer would not send (too large, damaged there): a
    replication skips them and its driver reports them.
    """

    def __init__(
        self, requester: Requester, db: str, kind: StoreKind, peer_name: str = "peer"
    ) -> None:
        self._requester = requester
        self._db = db
        self._kind = kind
        self._name = f"{peer_name}/{db}/{kind}"
        self.refusals: list[Refusal] = []
        #: False once the peer answered that it does not know ``scan_ids`` (an older node).
        self._scans_ids = True
        #: False once the peer answered that it does not know packed gets (an older node).
        self._packs = True

    def get_id(self) -> str:
        return self._name

    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        stored: list[str] = []
        existing: list[str] = []
        rejected: list[tuple[str, str]] = []
        batch: list[tuple[Any, bytes]] = []
        size = 0
        for entry in [*entries, None]:
            if entry is not None:
                batch.append(
                    metadata_to_wire_sealed(entry, self._requester.seal(entry.encrypted_data))
                )
                size += len(entry.encrypted_data) + 1024
            if batch and (entry is None or size >= PUT_BATCH_BYTES):
                answer = await ask(self._requester, PutEntries(self._db, self._kind, tuple(batch)))
                result = put_answer_from_wire(answer)
                stored.extend(result.stored)
                existing.extend(result.existing)
                rejected.extend(result.rejected)
                batch, size = [], 0
        return PutResult(tuple(stored), tuple(existing), tuple(rejected))

    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        wanted = list(ids)
        found: dict[str, StoreEntry] = {}
        position = 0
        while position < len(wanted):
            chunk = wanted[position : position + ID_BATCH]
            pairs, refused = await self._get_chunk(chunk, found)
            for refusal in refused:
                log.warning(
                    "peer would not send an entry",
                    extra={
                        "store": self._name,
                        "entry_id": refusal.entry_id[:200],
                        "reason": refusal.reason,
                    },
                )
            self.refusals.extend(refused)
            settled = {e for e in chunk if e in found} | {r.entry_id for r in refused}
            # The peer answers a prefix that fits its byte budget: continue after the last id it
            # settled (sent or refused); ids it does not have are skipped with the whole chunk.
            if pairs and len(settled) < len(chunk):
                last = max(chunk.index(entry_id) for entry_id in settled if entry_id in chunk)
                position += last + 1
            else:
                position += len(chunk)
        return [found[i] for i in wanted if i in found]

    async def _get_chunk(
        self, chunk: list[str], found: dict[str, StoreEntry]
    ) -> tuple[list[tuple[Any, bytes]], list[Refusal]]:
        """One ``get`` (packed when the peer knows it); the entries go into ``found``."""
        if self._packs:
            try:
                answer = await ask(self._requester, GetPacked(self._db, self._kind, tuple(chunk)))
            except RequestError as exc:
                if exc.code is not ErrorCode.UNKNOWN_OPERATION:
                    raise
                self._packs = False  # an older peer: full metadata from now on
            else:
                authors, pairs, refused = packed_answer_from_wire(answer)
                for meta_wire, sealed in pairs:
                    entry = entry_from_packed(
                        meta_wire, self._requester.open_payload(sealed), authors
                    )
                    found[entry.id] = entry
                return pairs, refused
        answer = await ask(self._requester, GetEntries(self._db, self._kind, tuple(chunk)))
        pairs, refused = entries_answer_from_wire(answer)
        for meta_wire, sealed in pairs:
            entry = entry_from_parts(meta_wire, self._requester.open_payload(sealed))
            found[entry.id] = entry
        return pairs, refused

    async def get_metadata(self, ids: Sequence[str]) -> list[EntryMetadata]:
        out: list[EntryMetadata] = []
        for start in range(0, len(ids), ID_BATCH):
            part = tuple(ids[start : start + ID_BATCH])
            out.extend(
                metadata_list_from_wire(
                    await ask(self._requester, GetMetadata(self._db, self._kind, part))
                )
            )
        return out

    async def has_entries(self, ids: Sequence[str]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(ids), ID_BATCH):
            part = tuple(ids[start : start + ID_BATCH])
            out.extend(
                ids_from_wire(await ask(self._requester, HasEntries(self._db, self._kind, part)))
            )
        return out

    async def _all_metadata(self, filters: ScanFilters | None = None) -> list[EntryMetadata]:
        out: list[EntryMetadata] = []
        cursor: ScanCursor | None = None
        while True:
            page = await self.scan_entries_since(cursor, MAX_SCAN_PAGE, filters)
            out.extend(page.entries)
            cursor = page.next_cursor
            if not page.has_more:
                return out

    async def get_all_ids(self) -> list[str]:
        return [meta.id for meta in await self._all_metadata()]

    async def find_new_entries(self, known_ids: Iterable[str]) -> list[EntryMetadata]:
        known = set(known_ids)
        return [meta for meta in await self._all_metadata() if meta.id not in known]

    async def find_new_entries_for_doc(
        self, known_ids: Iterable[str], doc_id: str
    ) -> list[EntryMetadata]:
        known = set(known_ids)
        found = await self._all_metadata(ScanFilters(doc_id=doc_id))
        return [meta for meta in found if meta.id not in known]

    async def find_entries(
        self, entry_type: EntryType, created_from: int | None, created_until: int | None
    ) -> list[EntryMetadata]:
        request = FindEntries(self._db, self._kind, entry_type, created_from, created_until)
        return metadata_list_from_wire(await ask(self._requester, request))

    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        limit = max(1, min(limit, MAX_SCAN_PAGE))
        request = ScanEntries(self._db, self._kind, cursor, limit, filters)
        return page_from_wire(await ask(self._requester, request))

    async def scan_ids_since(
        self, cursor: ScanCursor | None, limit: int = 1000, *, scanner_epoch: str | None = None
    ) -> IdPage:
        limit = max(1, min(limit, MAX_SCAN_PAGE))
        if self._scans_ids:
            request = ScanIds(self._db, self._kind, cursor, limit, scanner_epoch)
            try:
                return id_page_from_wire(await ask(self._requester, request), limit)
            except RequestError as exc:
                if exc.code is not ErrorCode.UNKNOWN_OPERATION:
                    raise
                self._scans_ids = False  # an older peer: full metadata pages from now on
        return await super().scan_ids_since(cursor, limit, scanner_epoch=scanner_epoch)

    async def get_store_head(self) -> StoreHead:
        return head_from_wire(await ask(self._requester, GetHead(self._db, self._kind)))

    async def subscribe(self) -> StoreHead:
        """Ask the peer to send a ``changed`` notification whenever this store grows."""
        return head_from_wire(await ask(self._requester, Subscribe(self._db, self._kind)))

    async def get_id_bloom_summary(self) -> BloomSummary:
        try:
            return BloomSummary.from_wire(
                await ask(self._requester, GetBloom(self._db, self._kind))
            )
        except EntryFormatError as exc:
            raise RemoteProtocolError(ErrorCode.MALFORMED, str(exc)) from exc

    async def resolve_dependencies(
        self, start_id: str, options: ResolveOptions | None = None
    ) -> list[str]:
        request = ResolveDependencies(self._db, self._kind, start_id, options)
        return list(ids_from_wire(await ask(self._requester, request)))

    async def purge_doc_history(self, doc_id: str) -> int:
        raise RequestError(ErrorCode.REFUSED, "a peer's history cannot be purged remotely")

    async def clear_all_local_data(self) -> None:
        raise RequestError(ErrorCode.REFUSED, "a peer's store cannot be cleared remotely")
