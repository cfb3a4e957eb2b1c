"""Time travel: documents as they were at a timestamp, and every version of a document in turn.

"As of T" means: the entries created strictly before T (reference ``creationDateUntil``), planned
like a current read (best snapshot whose heads are all visible, then the rest parents first).
``created_at`` is the author's clock; entries stamped in the same millisecond are ordered
causally, because the plan only ever breaks ties between entries that are ready together.

History replays one change at a time into one Automerge document (``history_order``) instead of
materialising each version from scratch, and fetches payloads in small batches as it goes, so
stopping early reads nothing more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from mindood.crypto import decrypt_with_any
from mindood.db.attachments import parse_attachments
from mindood.db.doc import ATTACHMENTS_FIELD, MindooDoc, user_data
from mindood.db.errors import ReadOnlyDatabaseError
from mindood.db.plan import history_order, lifecycle_key
from mindood.db.reader import DocReader, no_key
from mindood.db.trust import TrustPolicy
from mindood.document import AutomergeDoc
from mindood.errors import (
    CorruptDocumentError,
    DecryptionError,
    DocumentNotFoundError,
    MindoodError,
)
from store.entry import EntryMetadata, EntryType
from store.ids import parse_doc_entry_id

#: A point in time: milliseconds since the epoch, a ``datetime`` (naive = UTC) or ISO 8601 text.
Timestamp = int | float | datetime | str


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(timestamp: Timestamp) -> int:
    """Milliseconds since the Unix epoch for any accepted form of timestamp."""
    if isinstance(timestamp, bool):
        raise TypeError("a timestamp is a number of milliseconds, a datetime or ISO 8601 text")
    if isinstance(timestamp, int | float):
        return int(timestamp)
    if isinstance(timestamp, str):
        try:
            timestamp = datetime.fromisoformat(timestamp)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 timestamp: {timestamp!r}") from exc
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=UTC)
        # Integer arithmetic: the float product seconds * 1000 can land 1 ms early.
        return (timestamp - _EPOCH) // timedelta(milliseconds=1)
    raise TypeError("a timestamp is a number of milliseconds, a datetime or ISO 8601 text")


@dataclass(frozen=True, slots=True)
class DocumentVersion:
    """One version of a document: its state right after one change, and who made it when."""

    doc: MindooDoc
    change_entry_id: str
    change_created_at: int
    change_created_by_public_key: str
    change_dependency_ids: tuple[str, ...]
    change_type: EntryType


async def document_at(
    reader: DocReader, trust: TrustPolicy, doc_id: str, at: int
) -> MindooDoc | None:
    """The document as of ``at`` (exclusive); None if it did not exist yet."""
    try:
        state = await reader.materialize(doc_id, trust, until=at)
    except DocumentNotFoundError:
        return None
    return reader.view(state)


class _Lifecycle:
    """Created/modified/deleted facts of a document, updated one applied entry at a time."""

    def __init__(self) -> None:
        self.create: EntryMetadata | None = None
        self.last_modified = 0
        self.newest_event: EntryMetadata | None = None

    def apply(self, meta: EntryMetadata) -> None:
        self.last_modified = max(self.last_modified, meta.created_at)
        if meta.entry_type is EntryType.DOC_CREATE and (
            self.create is None or lifecycle_key(meta) < lifecycle_key(self.create)
        ):
            self.create = meta
        if meta.entry_type in (EntryType.DOC_DELETE, EntryType.DOC_UNDELETE) and (
            self.newest_event is None or lifecycle_key(meta) > lifecycle_key(self.newest_event)
        ):
            self.newest_event = meta

    @property
    def deleted(self) -> bool:
        return self.newest_event is not None and (
            self.newest_event.entry_type is EntryType.DOC_DELETE
        )


async def iterate_history(
    reader: DocReader,
    trust: TrustPolicy,
    doc_id: str,
    *,
    until: int | None = None,
    batch_size: int = 64,
) -> AsyncIterator[DocumentVersion]:
    """Every version of a document, oldest first (nothing if it has no applicable change)."""
    metas = await reader.store.find_new_entries_for_doc([], doc_id)
    ordered = history_order(doc_id, metas, trust.applies, until)
    if not ordered:
        return
    creates = [m for m in ordered if m.entry_type is EntryType.DOC_CREATE]
    key_id = (creates or ordered)[0].decryption_key_id
    keys = reader.keys.keys_for(key_id)
    am = AutomergeDoc.new(reader.actor)
    facts = _Lifecycle()
    for index in range(0, len(ordered), batch_size):
        part = ordered[index : index + batch_size]
        entries = await reader.entries(part)
        for meta in part:
            try:
                chunk = decrypt_with_any(keys, entries[meta.id].encrypted_data)
            except DecryptionError as exc:
                raise no_key(doc_id, facts.create or meta) from exc
            try:
                am.apply_changes([chunk], [parse_doc_entry_id(meta.id).automerge_hash])
            except MindoodError as exc:
                raise CorruptDocumentError(f"document {doc_id!r}: {exc}") from exc
            facts.apply(meta)
            yield DocumentVersion(
                _version_doc(reader, doc_id, key_id, am.to_python(), facts),
                meta.id,
                meta.created_at,
                meta.created_by_public_key,
                meta.dependency_ids,
                meta.entry_type,
            )


def _version_doc(
    reader: DocReader, doc_id: str, key_id: str, data: dict[str, Any], facts: _Lifecycle
) -> MindooDoc:
    return MindooDoc(
        doc_id,
        user_data(data),
        key_id=key_id,
        created_at=facts.create.created_at if facts.create else 0,
        last_modified=facts.last_modified,
        deleted=facts.deleted,
        attachments=parse_attachments(data.get(ATTACHMENTS_FIELD)),
        files=reader.files,
    )


class TimeTravelDB:
    """A read-only view of a database as it was just before ``timestamp``.

    Reads go straight to the store (no cache), so entries synced later that were *created*
    before the timestamp show up too: the view answers "what had been written by then", as far
    as this node knows now. Every write raises ``ReadOnlyDatabaseError``.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        db_id: str,
        reader: DocReader,
        trust: Callable[[], TrustPolicy],
        timestamp: int,
        history_batch_size: int = 64,
    ) -> None:
        self.tenant_id = tenant_id
        self.db_id = db_id
        self._reader = reader
        self._trust = trust
        self._at = timestamp
        self._batch = history_batch_size

    @property
    def timestamp(self) -> int:
        """The cutoff in milliseconds: entries created at or after it are invisible."""
        return self._at

    async def get_document(self, doc_id: str) -> MindooDoc:
        doc = await self.find_document(doc_id)
        if doc is None:
            raise DocumentNotFoundError(f"no document {doc_id!r} in {self.db_id!r} at {self._at}")
        return doc

    async def find_document(self, doc_id: str) -> MindooDoc | None:
        return await document_at(self._reader, self._trust(), doc_id, self._at)

    async def get_all_document_ids(self) -> list[str]:
        return await self._reader.document_ids(self._trust(), self._at)

    async def iterate_document_history(self, doc_id: str) -> AsyncIterator[DocumentVersion]:
        """The versions of a document up to this view's timestamp."""
        versions = iterate_history(
            self._reader, self._trust(), doc_id, until=self._at, batch_size=self._batch
        )
        async for version in versions:
            yield version

    # -- every write is refused --------------------------------------------------------------
    def _refuse(self, what: str) -> NoReturn:
        raise ReadOnlyDatabaseError(
            f"{what}: database {self.db_id!r} is opened read-only at timestamp {self._at}"
        )

    async def create_document(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("create_document")

    async def create_encrypted_document(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("create_encrypted_document")

    async def change_doc(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("change_doc")

    async def delete_document(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("delete_document")

    async def pull_changes_from(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("pull_changes_from")

    async def push_changes_to(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._refuse("push_changes_to")
