"""``MindooDB``: one database of a tenant, documents in, signed encrypted entries out.

Every ``change_doc`` becomes exactly one Automerge change, encrypted with the document's key and
signed by the current user into one ``doc_change`` entry. Reading a document plans from metadata
(``plan.py``: best trusted snapshot, then the trusted changes after it), decrypts, and applies.
Materialised documents are cached and dropped when the store shows new entries for them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mindood.crypto import decrypt_with_any
from mindood.db.doc import MindooDoc, user_data
from mindood.db.entries import Clock, build_doc_entry, snapshot_hash
from mindood.db.keys import KeyProvider, Signer
from mindood.db.plan import DocPlan, plan_document
from mindood.db.trust import TrustPolicy
from mindood.document import AutomergeDoc, change_hash, custom_id_initial_change
from mindood.errors import (
    AccessRevokedError,
    CorruptDocumentError,
    DatabaseError,
    DecryptionError,
    DocumentDeletedError,
    DocumentNotFoundError,
    InvalidChangeError,
    KeyNotFoundError,
    MindoodError,
)
from store.base import ContentAddressedStore, ScanCursor
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.ids import check_doc_id, generate_doc_id, is_custom_doc_id, parse_doc_entry_id
from store.replicate import ReplicationCursor, replicate
from store.verify import VerifiedBatch, verify_entries

log = logging.getLogger("mindood.db")

ChangeFn = Callable[[MindooDoc], Any | Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class DBOptions:
    """Tunables of one database handle."""

    #: Write a ``doc_snapshot`` after this many changes since the last one (0 = never).
    snapshot_every: int = 100
    #: Materialised documents kept in memory.
    cache_size: int = 1000
    sync_page_size: int = 1000
    sync_batch_size: int = 250


@dataclass(frozen=True, slots=True)
class SyncResult:
    transferred: int
    transferred_bytes: int
    scanned: int
    rejected: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class _DocState:
    """A materialised document and how its Automerge history maps onto entries."""

    doc_id: str
    am: AutomergeDoc
    key_id: str
    created_at: int
    last_modified: int
    deleted: bool
    included: set[str]
    entry_of_hash: dict[str, str]
    since_snapshot: int
    trust_generation: int

    def head_entry_ids(self) -> list[str]:
        return [self.entry_of_hash[h.hex()] for h in self.am.heads()]


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
        self._options = options or DBOptions()
        self._actor = secrets.token_bytes(16)
        self._clock = Clock()
        self._cache: OrderedDict[str, _DocState] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._cursor: ScanCursor | None = None
        self._epoch: str | None = None
        self._sync_cursors: dict[tuple[str, str], ReplicationCursor] = {}
        self._listeners = _Listeners()

    # -- accessors ---------------------------------------------------------------------------
    def get_store(self) -> ContentAddressedStore:
        return self._store

    def get_attachment_store(self) -> ContentAddressedStore | None:
        return self._attachment_store

    def get_signer(self) -> Signer:
        return self._signer

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
    ) -> MindooDoc:
        """Create a document encrypted with ``key_id``.

        A custom ``doc_id`` (``^[a-z][a-z0-9_]*$``) starts from a fixed first change shared by
        every replica, so two devices creating the same id offline converge on one document.
        """
        key = self._newest_key(key_id)
        if doc_id is not None:
            check_doc_id(doc_id)
            if not is_custom_doc_id(doc_id):
                raise DatabaseError(f"custom document ids must match ^[a-z][a-z0-9_]*$: {doc_id!r}")
        custom = doc_id is not None
        if doc_id is None:
            doc_id = generate_doc_id()
        async with self._lock(doc_id):
            if await self._store.find_new_entries_for_doc([], doc_id):
                raise DatabaseError(f"document {doc_id!r} already exists")
            am = AutomergeDoc.new(self._actor)
            state = _DocState(doc_id, am, key_id, 0, 0, False, set(), {}, 0, self._trust.generation)
            if custom:
                first = custom_id_initial_change()
                state.am = AutomergeDoc.from_changes([first], self._actor)
                await self._write(state, EntryType.DOC_CREATE, first, change_hash(first), [], key)
                if initial:
                    values = dict(initial)
                    await self._change_locked(state, lambda d: d.get_data().update(values), key)
            else:

                def seed(d: MindooDoc) -> None:
                    d.get_data()["_attachments"] = []
                    d.get_data().update(initial or {})

                await self._change_locked(state, seed, key, entry_type=EntryType.DOC_CREATE)
            self._remember(state)
        self._listeners.emit({doc_id})
        return self._view(state)

    async def create_encrypted_document(
        self, key_id: str, initial: Mapping[str, Any] | None = None, *, doc_id: str | None = None
    ) -> MindooDoc:
        return await self.create_document(initial, doc_id=doc_id, key_id=key_id)

    async def change_doc(self, doc: MindooDoc | str, fn: ChangeFn) -> MindooDoc:
        """Apply ``fn`` to a live view of the document as one signed change.

        ``fn`` may be sync or async. If it raises, nothing is written and the error propagates.
        """
        doc_id = doc if isinstance(doc, str) else doc.get_id()
        async with self._lock(doc_id):
            state = await self._state(doc_id)
            if state.deleted:
                raise DocumentDeletedError(f"document {doc_id!r} is deleted")
            key = self._newest_key(state.key_id)
            await self._change_locked(state, fn, key)
        self._listeners.emit({doc_id})
        return self._view(state)

    async def delete_document(self, doc: MindooDoc | str) -> None:
        """Mark the document deleted; its history stays (time travel, undelete)."""
        doc_id = doc if isinstance(doc, str) else doc.get_id()
        async with self._lock(doc_id):
            state = await self._state(doc_id)
            if state.deleted:
                return
            key = self._newest_key(state.key_id)

            def touch(d: MindooDoc) -> None:
                d.get_data()["_lastModified"] = self._clock.now_ms()

            await self._change_locked(state, touch, key, entry_type=EntryType.DOC_DELETE)
            state.deleted = True
        self._listeners.emit({doc_id})

    async def _change_locked(
        self,
        state: _DocState,
        fn: ChangeFn,
        key: bytes,
        *,
        entry_type: EntryType = EntryType.DOC_CHANGE,
    ) -> None:
        pending = state.am.begin_change()
        try:
            view = MindooDoc(
                state.doc_id,
                pending.root,
                key_id=state.key_id,
                created_at=state.created_at,
                last_modified=state.last_modified,
                deleted=state.deleted,
            )
            result = fn(view)
            if inspect.isawaitable(result):
                await result
        except BaseException:
            pending.rollback()
            raise
        change = pending.commit()
        if change is None:
            if entry_type is EntryType.DOC_CHANGE:
                return  # nothing changed: no entry
            raise InvalidChangeError("a lifecycle change must modify the document")
        await self._write(state, entry_type, change.bytes, change.hash, change.deps, key)

    async def _write(
        self,
        state: _DocState,
        entry_type: EntryType,
        change_bytes: bytes,
        change_hash: str,
        deps: Sequence[str],
        key: bytes,
    ) -> None:
        created_at = self._clock.now_ms()
        entry = build_doc_entry(
            signer=self._signer,
            entry_type=entry_type,
            doc_id=state.doc_id,
            key_id=state.key_id,
            key=key,
            plaintext=change_bytes,
            automerge_hash=change_hash,
            automerge_deps=deps,
            dependency_ids=[state.entry_of_hash[d] for d in deps],
            created_at=created_at,
        )
        reason = self._trust.refusal(entry.metadata)
        if reason is not None:
            raise AccessRevokedError(f"cannot write to {self.db_id!r}: {reason}")
        await self._put([entry])
        state.included.add(entry.id)
        state.entry_of_hash[change_hash] = entry.id
        state.last_modified = created_at
        if entry_type is EntryType.DOC_CREATE:
            state.created_at = created_at
        state.since_snapshot += 1
        every = self._options.snapshot_every
        if every > 0 and state.since_snapshot >= every:
            await self._write_snapshot(state, key)

    async def _write_snapshot(self, state: _DocState, key: bytes) -> None:
        heads = [h.hex() for h in state.am.heads()]
        entry = build_doc_entry(
            signer=self._signer,
            entry_type=EntryType.DOC_SNAPSHOT,
            doc_id=state.doc_id,
            key_id=state.key_id,
            key=key,
            plaintext=state.am.save(),
            automerge_hash=snapshot_hash(),
            automerge_deps=heads,
            dependency_ids=state.head_entry_ids(),
            created_at=self._clock.now_ms(),
            snapshot_heads=heads,
        )
        await self._put([entry])
        state.since_snapshot = 0

    async def _put(self, entries: list[StoreEntry]) -> None:
        result = await self._store.put_entries(entries)
        if result.rejected:
            raise DatabaseError(f"the store refused a new entry: {result.rejected[0][1]}")

    # -- reading -----------------------------------------------------------------------------
    async def get_document(self, doc_id: str) -> MindooDoc:
        """The current state; ``DocumentNotFoundError`` or ``KeyNotFoundError`` ("no key")."""
        async with self._lock(doc_id):
            state = await self._state(doc_id)
        return self._view(state)

    async def find_document(self, doc_id: str) -> MindooDoc | None:
        try:
            return await self.get_document(doc_id)
        except DocumentNotFoundError:
            return None

    async def get_all_document_ids(self) -> list[str]:
        """Ids of documents that exist and are not deleted, decided from metadata (no key)."""
        applies = self._trust.applies
        creates = await self._store.find_entries(EntryType.DOC_CREATE, None, None)
        created = {m.doc_id for m in creates if applies(m)}
        events: dict[str, EntryMetadata] = {}
        for kind in (EntryType.DOC_DELETE, EntryType.DOC_UNDELETE):
            for meta in await self._store.find_entries(kind, None, None):
                if not applies(meta):
                    continue
                current = events.get(meta.doc_id)
                if current is None or (meta.created_at, meta.id) > (current.created_at, current.id):
                    events[meta.doc_id] = meta
        deleted = {d for d, m in events.items() if m.entry_type is EntryType.DOC_DELETE}
        return sorted(created - deleted)

    async def _state(self, doc_id: str) -> _DocState:
        state = self._cache.get(doc_id)
        if state is not None and state.trust_generation == self._trust.generation:
            self._cache.move_to_end(doc_id)
            return state
        state = await self._materialize(doc_id)
        self._remember(state)
        return state

    async def _materialize(self, doc_id: str) -> _DocState:
        metas = await self._store.find_new_entries_for_doc([], doc_id)
        generation = self._trust.generation
        plan = plan_document(doc_id, metas, self._trust.applies)
        if plan.create is None:
            raise DocumentNotFoundError(f"no document {doc_id!r} in database {self.db_id!r}")
        key_id = plan.create.decryption_key_id
        keys = self._keys.keys_for(key_id)
        am = await self._load_automerge(plan, keys)
        entry_of_hash = {
            parse_doc_entry_id(entry_id).automerge_hash: entry_id for entry_id in plan.included
        }
        if plan.blocked:
            log.info(
                "document has entries that cannot be applied yet",
                extra={"doc_id": doc_id, "db": self.db_id, "blocked": len(plan.blocked)},
            )
        return _DocState(
            doc_id,
            am,
            key_id,
            plan.create.created_at,
            plan.last_modified,
            plan.deleted,
            set(plan.included),
            entry_of_hash,
            len(plan.changes),
            generation,
        )

    async def _load_automerge(self, plan: DocPlan, keys: list[bytes]) -> AutomergeDoc:
        ids = ([plan.snapshot.id] if plan.snapshot else []) + [m.id for m in plan.changes]
        entries = {e.id: e for e in await self._store.get_entries(ids)}
        missing = [i for i in ids if i not in entries]
        if missing:
            raise CorruptDocumentError(f"entries vanished while reading: {missing[:3]}")
        try:
            if plan.snapshot is not None:
                saved = decrypt_with_any(keys, entries[plan.snapshot.id].encrypted_data)
                am = AutomergeDoc.load(saved, self._actor)
            else:
                am = AutomergeDoc.new(self._actor)
            chunks = [decrypt_with_any(keys, entries[m.id].encrypted_data) for m in plan.changes]
        except DecryptionError as exc:
            raise KeyNotFoundError(
                f"document {plan.doc_id!r}: none of the held versions of key "
                f"{plan.create.decryption_key_id if plan.create else '?'!r} decrypts it"
            ) from exc
        expected = [parse_doc_entry_id(m.id).automerge_hash for m in plan.changes]
        try:
            am.apply_changes(chunks, expected)
        except MindoodError as exc:
            raise CorruptDocumentError(f"document {plan.doc_id!r}: {exc}") from exc
        return am

    def _view(self, state: _DocState) -> MindooDoc:
        return MindooDoc(
            state.doc_id,
            user_data(state.am.to_python()),
            key_id=state.key_id,
            created_at=state.created_at,
            last_modified=state.last_modified,
            deleted=state.deleted,
        )

    def _remember(self, state: _DocState) -> None:
        self._cache[state.doc_id] = state
        self._cache.move_to_end(state.doc_id)
        while len(self._cache) > self._options.cache_size:
            evicted, _ = self._cache.popitem(last=False)
            self._locks.pop(evicted, None)

    def _lock(self, doc_id: str) -> asyncio.Lock:
        lock = self._locks.get(doc_id)
        if lock is None:
            lock = self._locks[doc_id] = asyncio.Lock()
        return lock

    def _newest_key(self, key_id: str) -> bytes:
        return self._keys.keys_for(key_id)[0]

    # -- sync --------------------------------------------------------------------------------
    async def sync_store_changes(self) -> set[str]:
        """Take in entries that reached the store from elsewhere; returns the changed doc ids."""
        head = await self._store.get_store_head()
        if head.epoch != self._epoch:
            self._epoch, self._cursor = head.epoch, None
            self._cache.clear()
        touched: set[str] = set()
        while True:
            page = await self._store.scan_entries_since(self._cursor, self._options.sync_page_size)
            for meta in page.entries:
                state = self._cache.get(meta.doc_id)
                if state is not None and meta.id in state.included:
                    continue
                if meta.entry_type is EntryType.DOC_SNAPSHOT:
                    continue
                touched.add(meta.doc_id)
            self._cursor = page.next_cursor
            if not page.has_more:
                break
        for doc_id in touched:
            self._cache.pop(doc_id, None)
        if touched:
            self._listeners.emit(touched)
        return touched

    async def pull_changes_from(self, source: ContentAddressedStore | MindooDB) -> SyncResult:
        """Copy what ``source`` has and this database lacks, then take it in."""
        pairs = [(_store_of(source), self._store)]
        if isinstance(source, MindooDB) and source._attachment_store and self._attachment_store:
            pairs.append((source._attachment_store, self._attachment_store))
        result = await self._replicate(pairs)
        await self.sync_store_changes()
        return result

    async def push_changes_to(self, target: ContentAddressedStore | MindooDB) -> SyncResult:
        """Copy what this database has and ``target`` lacks."""
        pairs = [(self._store, _store_of(target))]
        if isinstance(target, MindooDB) and target._attachment_store and self._attachment_store:
            pairs.append((self._attachment_store, target._attachment_store))
        result = await self._replicate(pairs)
        if isinstance(target, MindooDB):
            await target.sync_store_changes()
        return result

    async def _replicate(
        self, pairs: list[tuple[ContentAddressedStore, ContentAddressedStore]]
    ) -> SyncResult:
        transferred = transferred_bytes = scanned = 0
        rejected: list[tuple[str, str]] = []
        for source, target in pairs:
            key = (source.get_id() + f"@{id(source)}", target.get_id() + f"@{id(target)}")
            result = await replicate(
                source,
                target,
                self._sync_cursors.get(key),
                admit=self._admit,
                page_size=self._options.sync_page_size,
                batch_size=self._options.sync_batch_size,
            )
            self._sync_cursors[key] = result.state
            transferred += result.transferred
            transferred_bytes += result.transferred_bytes
            scanned += result.scanned
            rejected.extend(result.rejected)
        return SyncResult(transferred, transferred_bytes, scanned, tuple(rejected))

    async def _admit(self, entries: Sequence[StoreEntry]) -> VerifiedBatch:
        """Signature and integrity first, then what the trust rule refuses outright."""
        verified = await verify_entries(entries)
        accepted: list[StoreEntry] = []
        rejected = list(verified.rejected)
        for entry in verified.accepted:
            reason = self._trust.refusal(entry.metadata)
            if reason is None:
                accepted.append(entry)
            else:
                rejected.append((entry.id, reason))
        return VerifiedBatch(tuple(accepted), tuple(rejected))


def _store_of(source: ContentAddressedStore | MindooDB) -> ContentAddressedStore:
    return source.get_store() if isinstance(source, MindooDB) else source
