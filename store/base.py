"""The one async interface every store implements (spec §4, in snake_case).

In-memory, on-disk, chained and remote (a sync session's view of a peer) stores all implement
``ContentAddressedStore``, so sync code takes any of them. Entries are immutable; puts are
idempotent and deduplicate by id (an existing id is never overwritten). Attachment chunks are
deduplicated by content hash as well (their IV is deterministic, so equal chunks are equal
ciphertext, kept once however many entries point to it); other payloads use random IVs and
never repeat, so a store may keep them per entry.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from store.bloom import BloomSummary
from store.entry import EntryMetadata, EntryType, StoreEntry


@dataclass(frozen=True, slots=True, order=True)
class ScanCursor:
    """Exclusive position in a store's ``(receipt_order, id)`` order; ids compare by code point."""

    receipt_order: int
    id: str


@dataclass(frozen=True, slots=True)
class ScanFilters:
    """Narrows a cursor scan; ``created_from`` is inclusive, ``created_until`` exclusive."""

    doc_id: str | None = None
    entry_types: frozenset[EntryType] | None = None
    created_from: int | None = None
    created_until: int | None = None

    def matches(self, meta: EntryMetadata) -> bool:
        if self.doc_id is not None and meta.doc_id != self.doc_id:
            return False
        if self.entry_types is not None and meta.entry_type not in self.entry_types:
            return False
        if self.created_from is not None and meta.created_at < self.created_from:
            return False
        return not (self.created_until is not None and meta.created_at >= self.created_until)


@dataclass(frozen=True, slots=True)
class ScanPage:
    """One page of a cursor scan. ``next_cursor`` is the last entry returned (or the input)."""

    entries: tuple[EntryMetadata, ...]
    next_cursor: ScanCursor | None
    has_more: bool


#: A position ``(receipt_order, id)`` as an id scan lists it.
OrderKey = tuple[int, str]


@dataclass(frozen=True, slots=True)
class IdPage:
    """One page of an id scan: positions only, for a peer that only asks which ids it lacks.

    ``next_cursor`` may lie past the last key (a source left out entries the scanner gave it);
    it is always safe to resume from. ``has_more`` may be true when nothing follows.
    """

    keys: tuple[OrderKey, ...]
    next_cursor: ScanCursor | None
    has_more: bool


@dataclass(frozen=True, slots=True)
class StoreHead:
    """Where a store's change feed stands. A new epoch means receipt orders were reset."""

    epoch: str
    max_receipt_order: int


@dataclass(frozen=True, slots=True)
class ResolveOptions:
    """How far ``resolve_dependencies`` walks the DAG from its start entry."""

    stop_at_entry_type: EntryType | None = None
    max_depth: int | None = None
    include_start: bool = True


class IndexPhase(StrEnum):
    IDLE = "idle"
    BUILDING = "building"
    READY = "ready"


@dataclass(frozen=True, slots=True)
class IndexBuildStatus:
    phase: IndexPhase
    indexing_enabled: bool
    progress01: float


@dataclass(frozen=True, slots=True)
class CompactionStatus:
    enabled: bool
    compaction_min_files: int
    compaction_max_bytes: int
    total_compactions: int = 0
    total_compacted_files: int = 0
    total_compacted_bytes: int = 0
    total_compaction_duration_ms: float = 0.0
    last_compaction_at: int | None = None
    last_compacted_files: int = 0
    last_compacted_bytes: int = 0
    last_compaction_duration_ms: float = 0.0


class StoreState(StrEnum):
    """Whether a store can serve: ``failed`` stays until the store is reopened or repaired."""

    OK = "ok"
    CHECKING = "checking"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class StoreHealth:
    """What a store can tell an operator about itself (shown in node status).

    ``problem`` says why a store failed; ``recovered`` what an open had to repair (a lost
    write-ahead log, say) and what it cost; ``quarantined`` counts entries set aside because
    their stored bytes were damaged (they are no longer listed, so peers send them again), and
    ``quarantined_ids`` names the most recent of them, so an operator can tell which.
    """

    state: StoreState = StoreState.OK
    problem: str | None = None
    recovered: str | None = None
    quarantined: int = 0
    checked_at: int | None = None
    quarantined_ids: tuple[str, ...] = ()

    @property
    def needs_attention(self) -> bool:
        """A failure, a recovery or a quarantine: news for status (a running check is not)."""
        return self.state is StoreState.FAILED or bool(self.recovered or self.quarantined)


@dataclass(frozen=True, slots=True)
class PutResult:
    """What a put did: ids newly stored, ids already present (idempotent), ids refused and why."""

    stored: tuple[str, ...] = ()
    existing: tuple[str, ...] = ()
    rejected: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    #: The receipt order each ``stored`` id was given, in the same order; empty when the store
    #: does not say (a remote one). Saves a replication reading back what it just stored.
    orders: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DocEntries:
    """Documents' entries as ``find_entries_for_docs`` lists them, with the payloads sent along.

    ``payloads`` (by entry id) may hold any of the listed entries' payloads, checked as in
    ``get_entries``; a reader asks ``get_payloads`` for the ones it needs and did not get.
    """

    metadata: dict[str, list[EntryMetadata]]
    payloads: dict[str, bytes] = field(default_factory=dict)


class ContentAddressedStore(abc.ABC):
    """An append-only, content-addressed store of signed, encrypted entries."""

    #: Every call is a network round trip (a server's store): a sync into it pre-filters ids
    #: with its Bloom summary before asking which ones it has.
    remote_checks_cost: ClassVar[bool] = False

    @abc.abstractmethod
    def get_id(self) -> str:
        """A name for logs and cursors (typically the database id and store kind)."""

    # -- write -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        """Store entries not yet present; ignores their ``receipt_order`` and assigns a new one.

        Durable stores return only once the batch is on stable storage.
        """

    # -- read --------------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        """The entries among ``ids`` that exist, in the order asked; missing ids are skipped."""

    @abc.abstractmethod
    async def get_metadata(self, ids: Sequence[str]) -> list[EntryMetadata]:
        """Like ``get_entries`` without reading payloads."""

    async def get_payloads(self, ids: Sequence[str]) -> dict[str, bytes]:
        """The encrypted payloads of the entries among ``ids`` that exist, by id.

        For a reader that already holds the metadata (a batch read plans from
        ``find_entries_for_docs`` first): a store that keeps metadata apart answers without
        decoding it again. Payloads are checked against their content hash as in
        ``get_entries``; missing and damaged entries are left out.
        """
        return {entry.id: entry.encrypted_data for entry in await self.get_entries(ids)}

    @abc.abstractmethod
    async def has_entries(self, ids: Sequence[str]) -> list[str]:
        """The subset of ``ids`` present, in the order asked."""

    @abc.abstractmethod
    async def get_all_ids(self) -> list[str]:
        """Every id, in ``(receipt_order, id)`` order."""

    # -- sync --------------------------------------------------------------------------------
    @abc.abstractmethod
    async def find_new_entries(self, known_ids: Iterable[str]) -> list[EntryMetadata]:
        """Metadata of entries whose id is not in ``known_ids``, in receipt order."""

    @abc.abstractmethod
    async def find_new_entries_for_doc(
        self, known_ids: Iterable[str], doc_id: str
    ) -> list[EntryMetadata]:
        """``find_new_entries`` restricted to one document."""

    async def find_entries_for_docs(self, doc_ids: Sequence[str]) -> dict[str, list[EntryMetadata]]:
        """Every entry's metadata of each of ``doc_ids``, in receipt order, by document.

        A batch read plans many documents from one call; this default asks per document,
        stores with an index answer in one query.
        """
        return {d: await self.find_new_entries_for_doc((), d) for d in dict.fromkeys(doc_ids)}

    async def read_docs(self, doc_ids: Sequence[str]) -> DocEntries:
        """``find_entries_for_docs``, and payloads a reader of these documents will want.

        A cold batch read plans each document from its metadata, then fetches the snapshot
        and the changes its plan replays. A document without a snapshot replays every entry,
        so a store that can fetch those payloads in the same query sends them along (one
        round trip instead of two); this default sends none.
        """
        return DocEntries(await self.find_entries_for_docs(doc_ids))

    @abc.abstractmethod
    async def find_entries(
        self, entry_type: EntryType, created_from: int | None, created_until: int | None
    ) -> list[EntryMetadata]:
        """Entries of one type with ``created_from <= created_at < created_until`` (None = open)."""

    @abc.abstractmethod
    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        """Up to ``limit`` metadata strictly after ``cursor`` in ``(receipt_order, id)`` order."""

    async def scan_ids_since(
        self, cursor: ScanCursor | None, limit: int = 1000, *, scanner_epoch: str | None = None
    ) -> IdPage:
        """``scan_entries_since`` without the metadata: ``(receipt_order, id)`` per entry.

        ``scanner_epoch`` is the scanning store's epoch: a peer's store that recorded which of
        its entries it took from that store (under that epoch) leaves them out, so a reconnect
        does not list back what just came from the scanner. Local stores list everything.
        """
        page = await self.scan_entries_since(cursor, limit)
        keys = tuple((meta.receipt_order, meta.id) for meta in page.entries)
        last = ScanCursor(*keys[-1]) if keys else cursor
        return IdPage(keys, last, page.has_more)

    @abc.abstractmethod
    async def get_store_head(self) -> StoreHead:
        """``(epoch, max_receipt_order)``; an idle peer compares it to its cursor and stops."""

    @abc.abstractmethod
    async def get_id_bloom_summary(self) -> BloomSummary:
        """A Bloom filter of every stored id: a pre-filter, never the last word on presence."""

    # -- DAG ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def resolve_dependencies(
        self, start_id: str, options: ResolveOptions | None = None
    ) -> list[str]:
        """Ids reachable from ``start_id`` through ``dependency_ids``, start first (if included).

        The walk does not go past an entry of ``stop_at_entry_type`` (that entry is included)
        nor deeper than ``max_depth`` edges; ids not in the store are skipped.
        """

    # -- lifecycle ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def purge_doc_history(self, doc_id: str) -> int:
        """Remove every entry of a document and payloads no other entry uses; return the count.

        The only deletion a store allows (GDPR). ``max_receipt_order`` never goes back.
        """

    @abc.abstractmethod
    async def clear_all_local_data(self) -> None:
        """Forget everything and start a new epoch."""

    async def await_index_ready(self) -> IndexBuildStatus:
        """Wait until indexes are built (bound it with ``asyncio.timeout``); default: ready."""
        return self.get_index_build_status()

    def get_index_build_status(self) -> IndexBuildStatus:
        return IndexBuildStatus(IndexPhase.READY, indexing_enabled=True, progress01=1.0)

    async def get_compaction_status(self) -> CompactionStatus:
        return CompactionStatus(enabled=False, compaction_min_files=0, compaction_max_bytes=0)

    def health(self) -> StoreHealth:
        """The store's health; stores that keep nothing on disk are always ok."""
        return StoreHealth()

    async def quarantined_ids(self) -> list[str]:
        """Ids set aside as damaged: sync fetches them again from a peer with a good copy, and
        storing a good copy lifts the quarantine. Stores that keep nothing on disk have none."""
        return []

    async def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release files and locks; the store is unusable afterwards."""
