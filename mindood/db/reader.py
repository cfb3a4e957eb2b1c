"""Reading documents out of a store: plan from metadata, fetch, decrypt, apply.

Shared by the live database and its read-only views at a past timestamp: both materialise the
same way, the view only cuts the entries off at its timestamp. Nothing here caches; the live
database keeps the ``DocState`` objects this returns.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from mindood.crypto.aead import PayloadKeys
from mindood.db.attachments import AttachmentInfo, AttachmentIO, parse_attachments
from mindood.db.doc import ATTACHMENTS_FIELD, DeferredData, MindooDoc, user_data
from mindood.db.keys import KeyProvider
from mindood.db.plan import DocPlan, lifecycle_key, plan_document
from mindood.db.trust import TrustPolicy
from mindood.document import AutomergeDoc
from mindood.errors import (
    CorruptDocumentError,
    DecryptionError,
    DocumentNotFoundError,
    KeyNotFoundError,
    MindoodError,
    QuarantinedEntryError,
)
from store.base import ContentAddressedStore, DocEntries
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.ids import doc_entry_hash

log = logging.getLogger("mindood.db")


@dataclass(slots=True)
class DocState:
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
    #: ``am.to_python()``, computed once per state when a read needs it.
    data: dict[str, Any] | None = None
    #: The attachments of the current state, read once per state (every write needs them).
    attached: tuple[AttachmentInfo, ...] | None = None
    #: The results of writes whose data is not read yet (``DocReader.result``), held weakly:
    #: those of the current state, and those pinned to an earlier one (``settle``).
    waiting: list[weakref.ref[DeferredData]] = field(default_factory=list)
    pinned: list[weakref.ref[DeferredData]] = field(default_factory=list)
    #: Whether ``doc_id`` is known to pass ``check_doc_id`` (each write's entry id needs it).
    id_checked: bool = False

    def head_entry_ids(self) -> list[str]:
        return [self.entry_of_hash[h.hex()] for h in self.am.heads()]

    def python(self) -> dict[str, Any]:
        if self.data is None:
            self.data = self.am.to_python()
        return self.data

    def own_python(self) -> dict[str, Any]:
        """A plain copy of the data for one caller: the cached one (then forgotten here) or a
        fresh read."""
        data, self.data = self.data, None
        return data if data is not None else self.am.to_python()

    def settle(self) -> None:
        """Before the document changes: the results still waiting for this state's data keep
        reading it as of now (a reader at the current heads, not a copy: most are never read).

        A document whose history has counters cannot read its past cheaply (``read_later``):
        its results read their data now, as all did before.
        """
        if not self.waiting and not self.pinned:
            return
        later = self.am.read_later()
        if later is None:
            self.release()
            return
        pinned = [ref for ref in self.pinned if _unread(ref)]
        for ref in self.waiting:
            deferred = ref()
            if deferred is not None:
                deferred.pin(later)
                pinned.append(ref)
        self.waiting, self.pinned = [], pinned

    def release(self) -> None:
        """Give every result still unread its copy of the data, when the state leaves the
        cache: no result keeps the whole document alive."""
        waiting = self.waiting + self.pinned
        self.waiting, self.pinned = [], []
        for ref in waiting:
            deferred = ref()
            if deferred is not None:
                deferred.take()

    def changed(self) -> None:
        """Forget what was read of the Automerge document after it changed."""
        self.data = None
        self.attached = None

    def attachments(self) -> tuple[AttachmentInfo, ...]:
        if self.attached is None:
            if self.data is not None:
                value = self.data.get(ATTACHMENTS_FIELD)
            else:
                value = self.am.root_value(ATTACHMENTS_FIELD)
            self.attached = parse_attachments(value)
        return self.attached


class DocReader:
    """Materialises documents of one database's store."""

    def __init__(
        self,
        *,
        db_id: str,
        store: ContentAddressedStore,
        keys: KeyProvider,
        actor: bytes,
        files: AttachmentIO,
    ) -> None:
        self.db_id = db_id
        self.store = store
        self.keys = keys
        self.actor = actor
        self.files = files

    async def plan(self, doc_id: str, trust: TrustPolicy, until: int | None = None) -> DocPlan:
        metas = await self.store.find_new_entries_for_doc([], doc_id)
        return plan_document(doc_id, metas, trust.applies, until)

    async def materialize(
        self, doc_id: str, trust: TrustPolicy, until: int | None = None
    ) -> DocState:
        """The document as of now (or as of ``until``, exclusive); raises if it has no create.

        An entry found damaged while reading is quarantined by the store; the document is then
        planned once more without it, so it loads from what is left when it can, and a read that
        still cannot says which entry was lost instead of failing obscurely.
        """
        try:
            return await self._materialize(doc_id, trust, until)
        except QuarantinedEntryError as first:
            log.warning(
                "document lost entries to quarantine; reading it without them",
                extra={"doc_id": doc_id, "db": self.db_id, "entries": first.entry_ids[:3]},
            )
            try:
                return await self._materialize(doc_id, trust, until)
            except DocumentNotFoundError as exc:
                raise first from exc

    async def materialize_slices(
        self,
        slices: Sequence[Sequence[str]],
        trust: TrustPolicy,
        take: Callable[[list[DocState]], None],
    ) -> None:
        """The current state of each document of each slice (distinct ids), handed to ``take``
        slice by slice.

        Per slice, one store query plans every document and brings the payloads of those
        without a snapshot; one more fetches what the plans still need; decrypting and applying
        stay per document. A missing document raises as :meth:`materialize` does; anything
        found damaged meanwhile sends the slice down the one-document path, which knows how to
        read around quarantined entries.

        The next slice's query runs in the store's worker while this thread decrypts and loads
        the current slice, so SQLite's share of a cold read (it steps without the GIL) overlaps
        the rest instead of adding to it. The query read ahead is awaited, never
        left behind, whatever happens to this call.
        """
        ahead: asyncio.Future[DocEntries] | None = None
        try:
            for index, part in enumerate(slices):
                if ahead is None:
                    found = await self.store.read_docs(part)
                else:
                    found, ahead = await ahead, None
                if index + 1 < len(slices):
                    ahead = asyncio.ensure_future(self.store.read_docs(slices[index + 1]))
                take(await self._materialize_found(part, found, trust))
        finally:
            if ahead is not None:
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)

    async def _materialize_found(
        self,
        doc_ids: Sequence[str],
        found: DocEntries,
        trust: TrustPolicy,
    ) -> list[DocState]:
        """One slice of ``materialize_slices``, from the documents' entries, already read."""
        generation = trust.generation
        metadata = found.metadata
        plans = [plan_document(d, metadata.get(d, ()), trust.applies) for d in doc_ids]
        if any(plan.create is None for plan in plans):
            return [await self.materialize(d, trust) for d in doc_ids]
        payloads = found.payloads
        wanted = [m for plan in plans for m in plan.changes if m.id not in payloads]
        wanted += [
            plan.snapshot for plan in plans if plan.snapshot and plan.snapshot.id not in payloads
        ]
        try:
            if wanted:
                payloads = {**payloads, **await self.payloads(wanted)}
        except (QuarantinedEntryError, CorruptDocumentError):
            return [await self.materialize(d, trust) for d in doc_ids]
        unlocked: dict[str, PayloadKeys] = {}

        def keys_for(key_id: str) -> PayloadKeys:
            keys = unlocked.get(key_id)
            if keys is None:
                keys = unlocked[key_id] = PayloadKeys(self.keys.keys_for(key_id))
            return keys

        return [self._state(plan, payloads, generation, keys_for) for plan in plans]

    async def _materialize(self, doc_id: str, trust: TrustPolicy, until: int | None) -> DocState:
        generation = trust.generation
        plan = await self.plan(doc_id, trust, until)
        if plan.create is None:
            lost = self.quarantined_entries_of(doc_id)
            if lost:
                raise self.quarantined(doc_id, lost)
            raise DocumentNotFoundError(f"no document {doc_id!r} in database {self.db_id!r}")
        payloads = await self.payloads(_wanted(plan))
        return self._state(plan, payloads, generation, self._keys_for)

    def _keys_for(self, key_id: str) -> PayloadKeys:
        return PayloadKeys(self.keys.keys_for(key_id))

    def _state(
        self,
        plan: DocPlan,
        payloads: Mapping[str, bytes],
        generation: int,
        keys_for: Callable[[str], PayloadKeys],
    ) -> DocState:
        """The materialised document of ``plan`` from its fetched ``payloads``.

        ``keys_for`` unlocks a key id (a batch asks the key bag once per key, not per doc).
        """
        assert plan.create is not None
        doc_id = plan.doc_id
        key_id = plan.create.decryption_key_id
        hash_of = {i: doc_entry_hash(i) for i in plan.included}
        am = self.apply_plan(plan, payloads, keys_for(key_id), hash_of)
        entry_of_hash = {change: entry_id for entry_id, change in hash_of.items()}
        if plan.blocked:
            log.info(
                "document has entries that cannot be applied yet",
                extra={"doc_id": doc_id, "db": self.db_id, "blocked": len(plan.blocked)},
            )
        return DocState(
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

    async def payloads(self, metas: list[EntryMetadata]) -> dict[str, bytes]:
        """The payloads of ``metas`` (read from this store); all of them, or as ``entries``."""
        ids = [m.id for m in metas]
        found = await self.store.get_payloads(ids)
        if len(found) < len(set(ids)):
            self._lost(metas, [i for i in ids if i not in found])
        return found

    async def entries(self, metas: list[EntryMetadata]) -> dict[str, StoreEntry]:
        """The full entries of ``metas``; all of them, or ``QuarantinedEntryError``.

        Listed entries that do not come back were found damaged by this read (the store set
        them aside and names them in its health) or purged meanwhile.
        """
        ids = [m.id for m in metas]
        found = {e.id: e for e in await self.store.get_entries(ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            self._lost(metas, missing)
        return found

    def _lost(self, metas: list[EntryMetadata], missing: list[str]) -> NoReturn:
        """Why listed entries did not come back: quarantined by this read, or purged."""
        doc_id = metas[0].doc_id
        if set(missing) & set(self.store.health().quarantined_ids):
            raise self.quarantined(doc_id, missing)
        raise CorruptDocumentError(
            f"document {doc_id!r}: entries vanished while reading (purged?): {missing[:3]}"
        )

    def quarantined_entries_of(self, doc_id: str) -> list[str]:
        """Entries of ``doc_id`` the store reports quarantined (its newest few, by id)."""
        prefix = f"{doc_id}_"
        return [i for i in self.store.health().quarantined_ids if i.startswith(prefix)]

    def quarantined(self, doc_id: str, entry_ids: list[str]) -> QuarantinedEntryError:
        """The error for a document whose ``entry_ids`` were damaged on disk."""
        shown = ", ".join(repr(i) for i in entry_ids[:3])
        more = f" and {len(entry_ids) - 3} more" if len(entry_ids) > 3 else ""
        return QuarantinedEntryError(
            f"document {doc_id!r} in database {self.db_id!r}: entry {shown}{more} is damaged "
            "on disk and was quarantined; a peer with a good copy restores it on the next sync",
            entry_ids,
        )

    def apply_plan(
        self,
        plan: DocPlan,
        payloads: Mapping[str, bytes],
        keys: PayloadKeys,
        hash_of: Mapping[str, str],
    ) -> AutomergeDoc:
        """Decrypt the plan's snapshot and changes out of ``payloads`` and build the document.

        ``hash_of`` gives the Automerge hash each included entry's id names (parsed once by
        the caller). Without a snapshot, the changes come in causal order and load at once.
        """
        try:
            saved = None
            if plan.snapshot is not None:
                saved = keys.decrypt(payloads[plan.snapshot.id])
            chunks = [keys.decrypt(payloads[m.id]) for m in plan.changes]
        except DecryptionError as exc:
            raise no_key(plan.doc_id, plan.create) from exc
        try:
            if saved is None:
                expected = [hash_of[m.id] for m in plan.changes]
                return AutomergeDoc.from_ordered_changes(chunks, self.actor, expected)
            am = AutomergeDoc.load(saved, self.actor)
            am.apply_changes(chunks, [hash_of[m.id] for m in plan.changes])
        except MindoodError as exc:
            raise CorruptDocumentError(f"document {plan.doc_id!r}: {exc}") from exc
        return am

    def view(self, state: DocState, *, handover: bool = False) -> MindooDoc:
        """A private, read-only copy of the state for the application.

        With ``handover`` the state's plain data goes to the view uncopied and the state
        forgets it (it is computed afresh when needed): for the results of batch reads, where
        it was just computed, a deep copy per document is pure overhead.
        """
        full = state.python()
        attachments = state.attachments()
        if handover:
            state.data = None
        return self._doc(state, user_data(full, owned=handover), attachments)

    def result(self, state: DocState) -> MindooDoc:
        """The document a write returns: its data is read from the state only when asked.

        The state pins it to its heads before its next change (``settle``), and gives it its
        copy when it leaves the cache (``release``).
        """
        deferred = DeferredData(state.own_python)
        state.waiting.append(weakref.ref(deferred))
        return self._doc(state, deferred, state.attachments())

    def _doc(
        self,
        state: DocState,
        data: dict[str, Any] | DeferredData,
        attachments: tuple[AttachmentInfo, ...],
    ) -> MindooDoc:
        return MindooDoc(
            state.doc_id,
            data,
            key_id=state.key_id,
            created_at=state.created_at,
            last_modified=state.last_modified,
            deleted=state.deleted,
            attachments=attachments,
            files=self.files,
        )

    def tombstone(self, doc_id: str, key_id: str = "", last_modified: int = 0) -> MindooDoc:
        """A data-less deleted document: what change feeds yield for gone or unreadable docs."""
        return MindooDoc(
            doc_id,
            user_data({}),
            key_id=key_id,
            created_at=0,
            last_modified=last_modified,
            deleted=True,
            files=self.files,
        )

    async def document_ids(self, trust: TrustPolicy, until: int | None = None) -> list[str]:
        """Documents that exist and are not deleted (as of ``until``), from metadata alone."""
        applies = trust.applies
        creates = await self.store.find_entries(EntryType.DOC_CREATE, None, until)
        created = {m.doc_id for m in creates if applies(m)}
        events: dict[str, EntryMetadata] = {}
        for kind in (EntryType.DOC_DELETE, EntryType.DOC_UNDELETE):
            for meta in await self.store.find_entries(kind, None, until):
                if not applies(meta):
                    continue
                current = events.get(meta.doc_id)
                if current is None or lifecycle_key(meta) > lifecycle_key(current):
                    events[meta.doc_id] = meta
        deleted = {d for d, m in events.items() if m.entry_type is EntryType.DOC_DELETE}
        return sorted(created - deleted)


def _unread(ref: weakref.ref[DeferredData]) -> bool:
    """Whether the result behind ``ref`` is alive and has not read its data yet."""
    deferred = ref()
    return deferred is not None and not deferred.taken


def _wanted(plan: DocPlan) -> list[EntryMetadata]:
    """The entries a plan reads: its snapshot (if any), then its changes."""
    return ([plan.snapshot] if plan.snapshot else []) + list(plan.changes)


def no_key(doc_id: str, create: EntryMetadata | None) -> KeyNotFoundError:
    key_id = create.decryption_key_id if create else "?"
    return KeyNotFoundError(
        f"document {doc_id!r}: none of the held versions of key {key_id!r} decrypts it"
    )
