"""A peer's store, seen through an authenticated session, as a ``ContentAddressedStore``.

``store.replicate`` and ``MindooDB.pull_changes_from`` take it like any local store; that is what
makes mesh, relay and store chaining the same code. Reads of large results are paged so no single
response crosses the message limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from protocol.errors import ErrorCode, RemoteProtocolError, RequestError
from protocol.store_ops import (
    MAX_SCAN_PAGE,
    Op,
    StoreKind,
    cursor_to_wire,
    entry_from_parts,
    filters_to_wire,
    head_from_wire,
    ids_from_wire,
    metadata_list_from_wire,
    page_from_wire,
    resolve_options_to_wire,
    sealed_entries_from_wire,
    sealed_entry_to_wire,
)
from store.base import (
    ContentAddressedStore,
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


class RemoteStore(ContentAddressedStore):
    """One store (docs or attachments of one database) of a connected peer."""

    def __init__(
        self, requester: Requester, db: str, kind: StoreKind, peer_name: str = "peer"
    ) -> None:
        self._requester = requester
        self._db = db
        self._kind = kind
        self._name = f"{peer_name}/{db}/{kind}"

    def get_id(self) -> str:
        return self._name

    async def _call(self, op: Op, *args: Any) -> Any:
        return await self._requester.call(op.value, [self._db, self._kind.value, *args])

    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        stored: list[str] = []
        existing: list[str] = []
        rejected: list[tuple[str, str]] = []
        batch: list[Any] = []
        size = 0
        for entry in [*entries, None]:
            if entry is not None:
                batch.append(
                    sealed_entry_to_wire(entry, self._requester.seal(entry.encrypted_data))
                )
                size += len(entry.encrypted_data) + 1024
            if batch and (entry is None or size >= PUT_BATCH_BYTES):
                result = await self._call(Op.PUT, batch)
                if not isinstance(result, list) or len(result) != 3:
                    raise RemoteProtocolError(
                        ErrorCode.MALFORMED, "put answers [stored, existing, rejected]"
                    )
                stored.extend(ids_from_wire(result[0]))
                existing.extend(ids_from_wire(result[1]))
                for pair in result[2] if isinstance(result[2], list) else []:
                    if isinstance(pair, list) and len(pair) == 2:
                        rejected.append((str(pair[0])[:512], str(pair[1])[:1024]))
                batch, size = [], 0
        return PutResult(tuple(stored), tuple(existing), tuple(rejected))

    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        wanted = list(ids)
        found: dict[str, StoreEntry] = {}
        position = 0
        while position < len(wanted):
            chunk = wanted[position : position + ID_BATCH]
            result = await self._call(Op.GET, chunk)
            pairs = sealed_entries_from_wire(result)
            for meta_wire, sealed in pairs:
                entry = entry_from_parts(meta_wire, self._requester.open_payload(sealed))
                found[entry.id] = entry
            answered = {e for e in chunk if e in found}
            # The peer returns a prefix that fits its byte budget: continue after the last
            # entry it returned; ids it does not have are skipped by the whole-chunk advance.
            if pairs and len(answered) < len(chunk):
                last = max(chunk.index(entry_id) for entry_id in answered)
                position += last + 1
            else:
                position += len(chunk)
        return [found[i] for i in wanted if i in found]

    async def get_metadata(self, ids: Sequence[str]) -> list[EntryMetadata]:
        out: list[EntryMetadata] = []
        for start in range(0, len(ids), ID_BATCH):
            out.extend(
                metadata_list_from_wire(
                    await self._call(Op.METADATA, list(ids[start : start + ID_BATCH]))
                )
            )
        return out

    async def has_entries(self, ids: Sequence[str]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(ids), ID_BATCH):
            out.extend(ids_from_wire(await self._call(Op.HAS, list(ids[start : start + ID_BATCH]))))
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
        return metadata_list_from_wire(
            await self._call(Op.FIND, str(entry_type), created_from, created_until)
        )

    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        limit = max(1, min(limit, MAX_SCAN_PAGE))
        result = await self._call(Op.SCAN, cursor_to_wire(cursor), limit, filters_to_wire(filters))
        return page_from_wire(result)

    async def get_store_head(self) -> StoreHead:
        return head_from_wire(await self._call(Op.HEAD))

    async def subscribe(self) -> StoreHead:
        """Ask the peer to send a ``changed`` notification whenever this store grows."""
        return head_from_wire(await self._call(Op.SUBSCRIBE))

    async def get_id_bloom_summary(self) -> BloomSummary:
        try:
            return BloomSummary.from_wire(await self._call(Op.BLOOM))
        except EntryFormatError as exc:
            raise RemoteProtocolError(ErrorCode.MALFORMED, str(exc)) from exc

    async def resolve_dependencies(
        self, start_id: str, options: ResolveOptions | None = None
    ) -> list[str]:
        return list(
            ids_from_wire(await self._call(Op.RESOLVE, start_id, resolve_options_to_wire(options)))
        )

    async def purge_doc_history(self, doc_id: str) -> int:
        raise RequestError(ErrorCode.REFUSED, "a peer's history cannot be purged remotely")

    async def clear_all_local_data(self) -> None:
        raise RequestError(ErrorCode.REFUSED, "a peer's store cannot be cleared remotely")
