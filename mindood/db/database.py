"""``MindooDB``: one database of a tenant, documents in, signed encrypted entries out.

Every ``change_doc`` becomes exactly one Automerge change, encrypted with the document's key and
signed by the current user into one ``doc_change`` entry. Reading a document plans from metadata
(``plan.py``: best trusted snapshot, then the trusted changes after it), decrypts, and applies
(``reader.py``). Materialised documents are cached and dropped when the store shows new entries
for them.

The rest lives in small modules this class delegates to: attachments (``attachments.py``), time
travel (``history.py``), the change feed (``changes.py``) and store replication (``sync.py``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mindood.db import changes, history
from mindood.db.attachments import AttachmentIO
from mindood.db.batch import NAMED_ERRORS, NewDocument, holding, named, new_documents, read_slices
from mindood.db.changes import ChangeCursor
from mindood.db.doc import ATTACHMENTS_FIELD, LAST_MODIFIED_FIELD, MindooDoc
from mindood.db.entries import Clock
from mindood.db.errors import DocumentPurgedError
from mindood.db.history import DocumentVersion, Timestamp, TimeTravelDB, to_ms
from mindood.db.keys import KeyProvider, Signer
from mindood.db.options import DBOptions
from mindood.db.reader import DocReader, DocState
from mindood.db.signpool import EntryBatch
from mindood.db.sync import StorePair, SyncResult, replicate_pairs
from mindood.db.trust import TrustPolicy, trust_fingerprint
from mindood.db.writer import ChangeFn, DocWriter
from mindood.document import AutomergeDoc, change_hash, custom_id_initial_change
from mindood.errors import (
    CorruptDocumentError,
    DatabaseError,
    DocumentDeletedError,
    DocumentExistsError,
    DocumentNotFoundError,
    KeyNotFoundError,
)
from store.base import ContentAddressedStore, ScanCursor
from store.entry import EntryType, StoreEntry
from store.ids import check_doc_id, generate_doc_id, is_custom_doc_id
from store.replicate import ReplicationCursor
from store.signing import REQUIRED_SINCE_ALWAYS
from store.verify import VerifiedBatch, verify_entries

log = logging.getLogger("mindood.db")

__all__ = ["ChangeFn", "DBOptions", "MindooDB", "NewDocument", "SyncResult"]


@dataclass(slots=True)
class _Listeners:
    callbacks: list[Callable[[set[str]], None]] = field(default_factory=list)

    def emit(self, doc_ids: set[str]) -> None:
        for callback in list(self.callbacks):
            try:
                callback(set(doc_ids))
            except Exception:  # a listener's bug must not break the write that notified it
                log.exception("change listener failed")


class MindooDB:
    """A database of Automerge documents stored as signed, encrypted entries."""

    def __init__(
        self,
        *,
        tenant_id: str,
        db_id: str,
        store: ContentAddressedStore,
        signer: Signer,
        keys: KeyProvider,
        trust: TrustPolicy,
        attachment_store: ContentAddressedStore | None = None,
        options: DBOptions | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.db_id = db_id
        self._store = store
        self._attachment_store = attachment_store
        self._signer = signer
        self._keys = keys
        self._trust = trust
        self._options = options = options or DBOptions()
        self._actor = secrets.token_bytes(16)
        self._clock = Clock()
        self._files = AttachmentIO(
            store=attachment_store,
            keys=keys,
            trust=lambda: self._trust,
            signer=signer,
            clock=self._clock,
            chunk_size=options.attachment_chunk_size,
            write_batch_bytes=options.attachment_write_batch_bytes,
            read_batch=options.attachment_read_batch,
        )
        self._reader = DocReader(
            db_id=db_id, store=store, keys=keys, actor=self._actor, files=self._files
        )
        self._writer = DocWriter(
            db_id=db_id,
            store=store,
            signer=signer,
            trust=lambda: self._trust,
            clock=self._clock,
            files=self._files,
            snapshot_every=options.snapshot_every,
        )
        self._cache: OrderedDict[str, DocState] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._cursor: ScanCursor | None = None
        self._epoch: str | None = None
        self._sync_cursors: dict[tuple[str, str], ReplicationCursor] = {}
        self._listeners = _Listeners()
        #: Documents purged on request: doc id -> why, refused on every write and sync.
        self._purged: dict[str, str] = {}

    # -- accessors ---------------------------------------------------------------------------
    def get_store(self) -> ContentAddressedStore:
        return self._store

    def get_attachment_store(self) -> ContentAddressedStore | None:
        return self._attachment_store

    def get_signer(self) -> Signer:
        return self._signer

    @property
    def options(self) -> DBOptions:
        return self._options

    def with_signer(self, signer: Signer) -> MindooDB:
        """A second handle on the same stores, keys and trust that signs as ``signer``.

        The admin writes through one (its key unlocked for that call only); the regular handle
        then takes the new entries in with ``sync_store_changes``.
        """
        return MindooDB(
            tenant_id=self.tenant_id,
            db_id=self.db_id,
            store=self._store,
            attachment_store=self._attachment_store,
            signer=signer,
            keys=self._keys,
            trust=self._trust,
            options=self._options,
        )

    def set_trust(self, trust: TrustPolicy) -> None:
        """Swap the trust rule; cached documents are re-planned on next read."""
        self._trust = trust
        self._cache.clear()

    def on_change(self, listener: Callable[[set[str]], None]) -> Callable[[], None]:
        """Call ``listener`` with the ids of documents that changed; returns an unsubscribe."""
        self._listeners.callbacks.append(listener)
        return lambda: self._listeners.callbacks.remove(listener)

    # -- writing -----------------------------------------------------------------------------
    async def create_document(
        self,
        initial: Mapping[str, Any] | None = None,
        *,
        doc_id: str | None = None,
        key_id: str = "default",
        assume_unique_id: bool = False,
    ) -> MindooDoc:
        """Create a document encrypted with ``key_id``.

        A custom ``doc_id`` (``^[a-z][a-z0-9_]*$``) starts from a fixed first change shared by
        every replica, so two devices creating the same id offline converge on one document.
        With ``assume_unique_id`` the caller promises no other replica creates that id: the
        create carries ``initial`` itself (see ``_build_create``).
        """
        spec = NewDocument(initial or {}, doc_id, key_id, assume_unique_id)
        return (await self._create([spec], name_errors=False))[0]

    async def create_documents(
        self, items: Iterable[NewDocument | Mapping[str, Any] | None]
    ) -> list[MindooDoc]:
        """Create several documents with one durable store write; all of them or none.

        Each item is a ``NewDocument`` (fields, optional custom id and key, as
        ``create_document`` takes them) or just a mapping of fields. Every document still gets
        its own create change, encryption, signature and trust check; a failure for one (a
        taken or malformed id, no such key, an entry over the size limit) stores nothing and
        raises the usual error with ``documents[i] 'id':`` in front of its message.
        """
        return await self._create(new_documents(items), name_errors=True)

    async def _create(self, specs: list[NewDocument], *, name_errors: bool) -> list[MindooDoc]:
        ids: list[str] = []
        custom: list[str] = []
        for index, spec in enumerate(specs):
            try:
                ids.append(self._new_id(spec))
            except NAMED_ERRORS as exc:
                raise (named(exc, index, spec.doc_id or "?") if name_errors else exc) from None
            if spec.doc_id:
                custom.append(ids[-1])
        if len(ids) > 1 and len(set(ids)) != len(ids):
            dup = next(d for d in ids if ids.count(d) > 1)
            raise DatabaseError(f"document {dup!r} appears twice in one create_documents call")
        newest = self._key_lookup()
        async with holding(self._lock, custom):
            existing = await self._store.find_entries_for_docs(custom) if custom else {}
            held = EntryBatch(self._signer.sign, expected=len(specs))
            states: list[DocState] = []
            for index, (doc_id, spec) in enumerate(zip(ids, specs, strict=True)):
                try:
                    if existing.get(doc_id):
                        raise DocumentExistsError(f"document {doc_id!r} already exists")
                    states.append(await self._build_create(doc_id, spec, newest(spec.key_id), held))
                except NAMED_ERRORS as exc:
                    raise (named(exc, index, doc_id) if name_errors else exc) from None
            keyed = [(st, newest(st.key_id)) for st in states]
            self._writer.due_snapshots(keyed, held)
            await self._writer.put_batch(held)
            for state in states:
                self._remember(state)
        self._listeners.emit(set(ids))
        return [self._reader.result(state) for state in states]

    def _new_id(self, spec: NewDocument) -> str:
        """The id a create will use: the checked custom one, or a fresh generated one."""
        doc_id = spec.doc_id
        if doc_id is not None:
            check_doc_id(doc_id)
            if not is_custom_doc_id(doc_id):
                raise DatabaseError(f"custom document ids must match ^[a-z][a-z0-9_]*$: {doc_id!r}")
            self._check_not_purged(doc_id)
            return doc_id
        if spec.assume_unique_id:
            raise DatabaseError("assume_unique_id needs a caller-provided doc_id")
        # A generated ObjectId (time, process randomness, counter) is new by construction:
        # no store lookup is needed to know no document has it.
        return generate_doc_id()

    async def _build_create(
        self, doc_id: str, spec: NewDocument, key: bytes, held: EntryBatch
    ) -> DocState:
        """The entries creating one document, appended to ``held`` (stored by the caller).

        A custom ``doc_id`` (``^[a-z][a-z0-9_]*$``) starts from a fixed first change shared by
        every replica, so two devices creating the same id offline converge on one document.
        With ``assume_unique_id`` the caller promises no other replica creates that id: the
        create carries the fields itself, as a generated id's does (the reference's
        ``assumeUniqueId``; its write rules judge a create by the values in it).
        """
        am = AutomergeDoc.new(self._actor)
        state = DocState(doc_id, am, spec.key_id, 0, 0, False, set(), {}, 0, self._trust.generation)
        state.id_checked = True  # by ``_new_id``, or generated
        values = dict(spec.data)
        if spec.doc_id is not None and not spec.assume_unique_id:
            first = custom_id_initial_change()
            state.am = AutomergeDoc.from_changes([first], self._actor)
            await self._writer.write(
                state, EntryType.DOC_CREATE, first, change_hash(first), [], key, hold=held
            )
            if values:

                def update(d: MindooDoc) -> None:
                    d.get_data().update(values)

                await self._writer.change(state, update, key, hold=held)
        else:

            def seed(d: MindooDoc) -> None:
                d.get_data()[ATTACHMENTS_FIELD] = []
                d.get_data().update(values)

            # Seeded empty unless the fields bring an attachment list of their own.
            none = () if ATTACHMENTS_FIELD not in values else None
            await self._writer.change(
                state, seed, key, entry_type=EntryType.DOC_CREATE, hold=held, attachments=none
            )
        return state

    async def create_encrypted_document(
        self,
        key_id: str,
        initial: Mapping[str, Any] | None = None,
        *,
        doc_id: str | None = None,
        assume_unique_id: bool = False,
    ) -> MindooDoc:
        return await self.create_document(
            initial, doc_id=doc_id, key_id=key_id, assume_unique_id=assume_unique_id
        )

    async def change_doc(self, doc: MindooDoc | str, fn: ChangeFn) -> MindooDoc:
        """Apply ``fn`` to a live view of the document as one signed change.

        ``fn`` may be sync or async; it must be async to use the attachment writers
        (``await d.add_attachment(...)``). If it raises, nothing is written to the document and
        the error propagates.
        """
        doc_id = doc if isinstance(doc, str) else doc.get_id()
        return (await self._change([(doc_id, fn)], name_errors=False))[0]

    async def change_docs(
        self, changes: Iterable[tuple[MindooDoc | str, ChangeFn]]
    ) -> list[MindooDoc]:
        """Apply each ``(document, fn)`` as its own signed change; store all with one write.

        Every document gets its own Automerge change, encryption, signature and trust check,
        exactly as ``change_doc`` gives it, and listeners hear of every document. A document
        may appear more than once (its changes follow each other). If any ``fn`` raises or any
        document cannot be changed, nothing of the batch is stored and the error names the
        document (``documents[i] 'id':`` in front of the message of a library error). Returns
        the documents after the batch, in the order given.
        """
        items = [(d if isinstance(d, str) else d.get_id(), fn) for d, fn in changes]
        return await self._change(items, name_errors=True)

    async def _change(
        self, items: list[tuple[str, ChangeFn]], *, name_errors: bool
    ) -> list[MindooDoc]:
        if not items:
            return []
        ids = [doc_id for doc_id, _ in items]
        newest = self._key_lookup()
        async with holding(self._lock, ids):
            try:
                states = await self._states(ids, name_errors=name_errors)
                held = EntryBatch(self._signer.sign, expected=len(items))
                keyed: list[tuple[DocState, bytes]] = []
                for index, ((doc_id, fn), state) in enumerate(zip(items, states, strict=True)):
                    try:
                        if state.deleted:
                            raise DocumentDeletedError(f"document {doc_id!r} is deleted")
                        key = newest(state.key_id)
                        await self._writer.change(state, fn, key, hold=held)
                    except NAMED_ERRORS as exc:
                        raise (named(exc, index, doc_id) if name_errors else exc) from None
                    keyed.append((state, key))
                self._writer.due_snapshots(keyed, held)
                await self._writer.put_batch(held)
            except BaseException:
                # Changes that committed in Automerge but were not stored (a later document
                # failed, the store refused) must not linger in the cache: re-read next time.
                for doc_id in ids:
                    self._cache.pop(doc_id, None)
                raise
        self._listeners.emit(set(ids))
        return [self._reader.result(state) for state in states]

    async def delete_document(self, doc: MindooDoc | str) -> None:
        """Mark the document deleted; its history stays (time travel, undelete)."""
        doc_id = doc if isinstance(doc, str) else doc.get_id()
        async with self._lock(doc_id):
            state = await self._state(doc_id)
            if state.deleted:
                return
            key = self._newest_key(state.key_id)

            def touch(d: MindooDoc) -> None:
                d.get_data()[LAST_MODIFIED_FIELD] = self._clock.now_ms()

            try:
                await self._writer.change(state, touch, key, entry_type=EntryType.DOC_DELETE)
            except BaseException:
                self._cache.pop(doc_id, None)  # as in change_doc: the change was not stored
                raise
            state.deleted = True
        self._listeners.emit({doc_id})

    # -- reading -----------------------------------------------------------------------------
    async def get_document(self, doc_id: str) -> MindooDoc:
        """The current state; ``DocumentNotFoundError`` or ``KeyNotFoundError`` ("no key")."""
        async with self._lock(doc_id):
            state = await self._state(doc_id)
        return self._reader.view(state)

    async def get_documents(self, doc_ids: Iterable[str]) -> list[MindooDoc]:
        """The current state of each document, in the order asked, read in batches.

        Documents not cached are planned from one metadata query and fetched with one payload
        query per slice of them (``read_slices``), instead of two store round trips each. Raises as
        ``get_document`` does, naming the document (``documents[i] 'id':``).
        """
        ids = list(doc_ids)
        async with holding(self._lock, ids):
            states = await self._states(ids, name_errors=True)
        return [self._reader.view(state, handover=True) for state in states]

    async def _states(self, doc_ids: list[str], *, name_errors: bool) -> list[DocState]:
        """The states of ``doc_ids`` (repeats allowed): cached ones, the rest read in batches.

        The caller holds the documents' locks.
        """
        for index, doc_id in enumerate(doc_ids):
            try:
                self._check_not_purged(doc_id)
            except NAMED_ERRORS as exc:
                raise (named(exc, index, doc_id) if name_errors else exc) from None
        found: dict[str, DocState] = {}
        for doc_id in doc_ids:
            state = self._cache.get(doc_id)
            if state is not None and state.trust_generation == self._trust.generation:
                self._cache.move_to_end(doc_id)
                found[doc_id] = state
        missing = [d for d in dict.fromkeys(doc_ids) if d not in found]
        slices = read_slices(missing)
        done: list[list[str]] = []

        def take(states: list[DocState]) -> None:
            done.append(slices[len(done)])
            for state in states:
                found[state.doc_id] = state
                self._remember(state)

        try:
            await self._reader.materialize_slices(slices, self._trust, take)
        except NAMED_ERRORS as exc:
            if not name_errors:
                raise
            part = slices[len(done)]
            failed = next((d for d in part if repr(d) in str(exc)), part[0])
            raise named(exc, doc_ids.index(failed), failed) from None
        return [found[d] for d in doc_ids]

    async def find_document(self, doc_id: str) -> MindooDoc | None:
        try:
            return await self.get_document(doc_id)
        except DocumentNotFoundError:
            return None

    async def get_all_document_ids(self) -> list[str]:
        """Ids of documents that exist and are not deleted, decided from metadata (no key)."""
        return await self._reader.document_ids(self._trust)

    async def _state(self, doc_id: str) -> DocState:
        self._check_not_purged(doc_id)
        state = self._cache.get(doc_id)
        if state is not None and state.trust_generation == self._trust.generation:
            self._cache.move_to_end(doc_id)
            return state
        state = await self._reader.materialize(doc_id, self._trust)
        self._remember(state)
        return state

    def _remember(self, state: DocState) -> None:
        self._cache[state.doc_id] = state
        self._cache.move_to_end(state.doc_id)
        while len(self._cache) > self._options.cache_size:
            evicted, dropped = self._cache.popitem(last=False)
            dropped.release()  # a result still unread must not keep the whole state alive
            lock = self._locks.get(evicted)
            if lock is not None and not lock.locked():  # a batch may still hold it
                self._locks.pop(evicted, None)

    def _lock(self, doc_id: str) -> asyncio.Lock:
        lock = self._locks.get(doc_id)
        if lock is None:
            lock = self._locks[doc_id] = asyncio.Lock()
        return lock

    def _key_lookup(self) -> Callable[[str], bytes]:
        """``_newest_key`` remembering its answers for one batch (the key bag is asked once)."""
        found: dict[str, bytes] = {}

        def newest(key_id: str) -> bytes:
            key = found.get(key_id)
            if key is None:
                key = found[key_id] = self._newest_key(key_id)
            return key

        return newest

    def _newest_key(self, key_id: str) -> bytes:
        return self._keys.keys_for(key_id)[0]

    # -- time travel -------------------------------------------------------------------------
    async def get_document_at_timestamp(
        self, doc_id: str, timestamp: Timestamp
    ) -> MindooDoc | None:
        """The document as of ``timestamp`` (entries created before it); None before creation.

        A document deleted by then comes back with ``is_deleted()`` true and its last data.
        """
        self._check_not_purged(doc_id)
        return await history.document_at(self._reader, self._trust, doc_id, to_ms(timestamp))

    async def get_all_document_ids_at_timestamp(self, timestamp: Timestamp) -> list[str]:
        """Ids of documents that existed, not deleted, as of ``timestamp``."""
        return await self._reader.document_ids(self._trust, to_ms(timestamp))

    async def iterate_document_history(self, doc_id: str) -> AsyncIterator[DocumentVersion]:
        """Every version of a document, oldest first, each with the change that made it."""
        self._check_not_purged(doc_id)
        versions = history.iterate_history(
            self._reader, self._trust, doc_id, batch_size=self._options.history_batch_size
        )
        async for version in versions:
            yield version

    def at_timestamp(self, timestamp: Timestamp) -> TimeTravelDB:
        """A read-only view of this database as of ``timestamp``."""
        return TimeTravelDB(
            tenant_id=self.tenant_id,
            db_id=self.db_id,
            reader=self._reader,
            trust=lambda: self._trust,
            timestamp=to_ms(timestamp),
            history_batch_size=self._options.history_batch_size,
        )

    # -- change feed -------------------------------------------------------------------------
    async def iterate_changes_since(
        self, cursor: ChangeCursor | None = None
    ) -> AsyncIterator[tuple[MindooDoc, ChangeCursor]]:
        """Documents changed after ``cursor`` (all for None) in modification order.

        Each document comes once, as of now, with the cursor to resume after it. Deleted,
        unreadable and vanished documents come as tombstones (``doc.is_deleted()``). See
        ``changes.py`` for when a cursor is not resumed but everything is emitted again.
        """
        window = await changes.changed_since(
            self._store, self._trust, cursor, self._options.change_scan_page_size
        )
        for position in window.positions:
            cached = self._cache.get(position.doc_id)
            if cached is not None and position.entry_id not in cached.included:
                # Written through another handle on this store since it was cached.
                self._cache.pop(position.doc_id, None)
            yield await self._doc_or_tombstone(position.doc_id), window.cursor_at(position)

    async def count_changes_since(self, cursor: ChangeCursor | None = None) -> int:
        """How many documents ``iterate_changes_since(cursor)`` would yield (metadata only)."""
        window = await changes.changed_since(
            self._store, self._trust, cursor, self._options.change_scan_page_size
        )
        return len(window.positions)

    async def get_latest_change_cursor(self) -> ChangeCursor:
        """A cursor after every change stored so far (start a feed from "now")."""
        head = await self._store.get_store_head()
        token = trust_fingerprint(self._trust)
        return ChangeCursor(head.epoch, head.max_receipt_order, "", token)

    async def _doc_or_tombstone(self, doc_id: str) -> MindooDoc:
        try:
            return await self.get_document(doc_id)
        except (DocumentNotFoundError, KeyNotFoundError, CorruptDocumentError) as exc:
            log.info("change feed yields a tombstone", extra={"doc_id": doc_id, "why": str(exc)})
            return self._reader.tombstone(doc_id)

    # -- purge -------------------------------------------------------------------------------
    def is_purged(self, doc_id: str) -> bool:
        return doc_id in self._purged

    def purged_doc_ids(self) -> frozenset[str]:
        return frozenset(self._purged)

    def refuse_documents(self, doc_ids: Iterable[str], reason: str) -> None:
        """From now on refuse every write and every synced entry of these documents."""
        for doc_id in doc_ids:
            self._purged.setdefault(doc_id, reason)
            self._cache.pop(doc_id, None)

    async def purge_documents(self, doc_ids: Iterable[str], reason: str = "purged") -> int:
        """Erase the documents' whole history (entries and attachment chunks) from this node.

        They are refused first, so a sync running meanwhile cannot bring them back. Returns the
        number of entries removed; listeners hear about the documents.
        """
        ids = sorted(set(doc_ids))
        self.refuse_documents(ids, reason)
        removed = 0
        for doc_id in ids:
            async with self._lock(doc_id):
                removed += await self._store.purge_doc_history(doc_id)
                if self._attachment_store is not None:
                    removed += await self._attachment_store.purge_doc_history(doc_id)
                self._cache.pop(doc_id, None)
        if ids:
            log.info("purged documents", extra={"db": self.db_id, "docs": ids, "entries": removed})
            self._listeners.emit(set(ids))
        return removed

    def _check_not_purged(self, doc_id: str) -> None:
        reason = self._purged.get(doc_id)
        if reason is not None:
            raise DocumentPurgedError(f"document {doc_id!r} was purged: {reason}")

    # -- sync --------------------------------------------------------------------------------
    async def sync_store_changes(self) -> None:
        """Take in entries that reached the store from elsewhere, a page at a time.

        Listeners hear of each page's changed documents as it is read, so taking in a sync of
        a million entries holds no set of every document it touched.
        """
        head = await self._store.get_store_head()
        if head.epoch != self._epoch:
            self._epoch, self._cursor = head.epoch, None
            self._cache.clear()
        while True:
            page = await self._store.scan_entries_since(self._cursor, self._options.sync_page_size)
            touched: set[str] = set()
            for meta in page.entries:
                state = self._cache.get(meta.doc_id)
                if state is not None and meta.id in state.included:
                    continue
                if meta.entry_type is EntryType.DOC_SNAPSHOT:
                    continue
                touched.add(meta.doc_id)
            self._cursor = page.next_cursor
            if touched:
                await self._changed_elsewhere(touched)
            if not page.has_more:
                break

    async def _changed_elsewhere(self, touched: set[str]) -> None:
        """Documents whose entries arrived from elsewhere: re-plan them and tell listeners."""
        smuggled = sorted(d for d in touched if d in self._purged)
        if smuggled:
            # Put by a path that skipped our admission (another handle, a raw store copy).
            log.warning("purged documents reappeared; purging again", extra={"docs": smuggled})
            await self.purge_documents(smuggled, "purged again after reappearing")
            touched.difference_update(smuggled)
        for doc_id in touched:
            self._cache.pop(doc_id, None)
        if touched:
            self._listeners.emit(touched)

    async def pull_changes_from(
        self, source: ContentAddressedStore | MindooDB, *, store_kind: str = "docs"
    ) -> SyncResult:
        """Copy what ``source`` has and this database lacks, then take it in.

        A database source gives both its stores. A store source (``tenant.connect_to_server``,
        a peer's store) fills this database's ``store_kind`` store: ``"docs"`` or
        ``"attachments"``, as the reference's ``storeKind`` option.
        """
        pairs = self._pairs(source, store_kind, pulling=True)
        result = await self._replicate(pairs, self.admit_entries)
        await self.sync_store_changes()
        return result

    async def push_changes_to(
        self, target: ContentAddressedStore | MindooDB, *, store_kind: str = "docs"
    ) -> SyncResult:
        """Copy what this database has and ``target`` lacks (a database target admits).

        ``store_kind`` picks which of this database's stores a store target receives.
        """
        pairs = self._pairs(target, store_kind, pulling=False)
        admit = target.admit_entries if isinstance(target, MindooDB) else self.admit_entries
        result = await self._replicate(pairs, admit)
        if isinstance(target, MindooDB):
            await target.sync_store_changes()
        return result

    def _pairs(
        self, other: ContentAddressedStore | MindooDB, store_kind: str, *, pulling: bool
    ) -> list[StorePair]:
        if store_kind not in ("docs", "attachments"):
            raise ValueError(f"store_kind must be 'docs' or 'attachments', not {store_kind!r}")
        if isinstance(other, MindooDB):
            pairs: list[StorePair] = [(other._store, self._store)]
            if other._attachment_store and self._attachment_store:
                pairs.append((other._attachment_store, self._attachment_store))
        else:
            mine = self._store if store_kind == "docs" else self._attachment_store
            if mine is None:
                raise ValueError("this database keeps no attachment store")
            pairs = [(other, mine)]
        return pairs if pulling else [(target, source) for source, target in pairs]

    async def _replicate(
        self,
        pairs: list[StorePair],
        admit: Callable[[Sequence[StoreEntry]], Awaitable[VerifiedBatch]],
    ) -> SyncResult:
        return await replicate_pairs(
            pairs,
            self._sync_cursors,
            admit,
            page_size=self._options.sync_page_size,
            batch_size=self._options.sync_batch_size,
        )

    async def admit_entries(self, entries: Sequence[StoreEntry]) -> VerifiedBatch:
        """What this database lets into its stores from a peer.

        Signature and integrity first, then the trust rule's outright refusals (a revoked
        author), then documents purged on request. Entries by an author the directory does
        not grant are deferred, not stored: the sync asks for them again once it does. Sync
        code that puts entries into this database's stores itself (the daemon's sessions)
        should pass this as its admission.
        """
        floor = getattr(self._trust, "signature_floor", REQUIRED_SINCE_ALWAYS)
        verified = await verify_entries(entries, required_since=floor)
        accepted: list[StoreEntry] = []
        rejected = list(verified.rejected)
        deferred: list[str] = []
        for entry in verified.accepted:
            reason = self._trust.refusal(entry.metadata)
            purged = self._purged.get(entry.doc_id)
            if reason is None and purged is not None:
                reason = f"document {entry.doc_id!r} was purged: {purged}"
            if reason is not None:
                rejected.append((entry.id, reason))
            elif self._trust.applies(entry.metadata):
                accepted.append(entry)
            else:  # trust before storage: an author the directory has not granted (yet)
                deferred.append(entry.id)
        return VerifiedBatch(tuple(accepted), tuple(rejected), tuple(deferred))


def _store_of(source: ContentAddressedStore | MindooDB) -> ContentAddressedStore:
    return source.get_store() if isinstance(source, MindooDB) else source
