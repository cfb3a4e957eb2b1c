"""Turning a change callback into one signed, encrypted entry, and snapshots after N of them.

``DocWriter`` holds what every write needs (store, signer, clock, trust, attachment I/O) so the
database keeps only the public API around it: locking, lifecycle checks and notifications.

A write whose entry would exceed the tenant-wide ``MAX_ENTRY_BYTES`` raises
``EntryTooLargeError`` before anything is stored; the caller drops its in-memory state, which
already holds the Automerge change. An automatic snapshot over the limit is skipped with a
warning instead: the user's change was stored, and later reads just replay more changes.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from mindood.crypto.aead import PayloadCipher
from mindood.db.attachments import AttachmentInfo, AttachmentIO, attachment_refs
from mindood.db.doc import ATTACHMENTS_FIELD, LAST_MODIFIED_FIELD, MindooDoc
from mindood.db.entries import Clock, UnsignedEntry, seal_doc_entry, snapshot_hash
from mindood.db.keys import Signer
from mindood.db.reader import DocState
from mindood.db.signpool import EntryBatch
from mindood.db.trust import TrustPolicy
from mindood.errors import (
    AccessRevokedError,
    DatabaseError,
    EntryTooLargeError,
    InvalidChangeError,
)
from store.base import ContentAddressedStore
from store.entry import EntryType, StoreEntry

ChangeFn = Callable[[MindooDoc], Any | Awaitable[Any]]

log = logging.getLogger("mindood.db")

#: Payload ciphers a writer keeps set up (one per key version it writes with).
_CIPHERS_KEPT = 16


class DocWriter:
    """Writes the entries of one database's documents."""

    def __init__(
        self,
        *,
        db_id: str,
        store: ContentAddressedStore,
        signer: Signer,
        trust: Callable[[], TrustPolicy],
        clock: Clock,
        files: AttachmentIO,
        snapshot_every: int,
    ) -> None:
        self._db_id = db_id
        self._store = store
        self._signer = signer
        self._trust = trust
        self._clock = clock
        self._files = files
        self._snapshot_every = snapshot_every
        self._ciphers: dict[bytes, PayloadCipher] = {}

    async def change(
        self,
        state: DocState,
        fn: ChangeFn,
        key: bytes,
        *,
        entry_type: EntryType = EntryType.DOC_CHANGE,
        hold: EntryBatch | None = None,
        attachments: tuple[AttachmentInfo, ...] | None = None,
    ) -> None:
        """Run ``fn`` on a live view inside one Automerge change and write that change.

        The caller holds the document's lock. If ``fn`` raises, the change is rolled back and
        nothing is written; if it changed nothing, no entry is written either. ``hold``: see
        :meth:`write`. ``attachments``: the list the change leaves, when the caller knows it
        (a create seeding an empty one); else it is kept from before when the change did not
        touch it, and read from the document when it did.
        """
        state.settle()  # results of earlier writes keep the data they had before it changes
        attached = state.attached
        pending = state.am.begin_change()
        try:
            view = MindooDoc(
                state.doc_id,
                pending.root,
                key_id=state.key_id,
                created_at=state.created_at,
                last_modified=state.last_modified,
                deleted=state.deleted,
                files=self._files,
                writer=self._files.writer(state.doc_id, state.key_id, key),
            )
            result = fn(view)
            if result is not None and inspect.isawaitable(result):
                await result
        except BaseException:
            pending.rollback()
            raise
        # Every edit carries ``_lastModified``, as the reference's do: its apps show that value
        # (a document last edited here would otherwise show the time of its last JS edit).
        stamp = at = None
        if entry_type is EntryType.DOC_CHANGE:
            at = self._clock.peek_ms()  # taken by the entry only if one is written
            stamp = (LAST_MODIFIED_FIELD, at)
        change = pending.commit(stamp=stamp)
        if change is None:
            if entry_type is EntryType.DOC_CHANGE:
                return  # nothing changed: no entry
            raise InvalidChangeError("a lifecycle change must modify the document")
        if attachments is None and not pending.may_have_changed(ATTACHMENTS_FIELD):
            attachments = attached
        await self.write(
            state,
            entry_type,
            change.bytes,
            change.hash,
            change.deps,
            key,
            hold=hold,
            created_at=at,
            attachments=attachments,
        )

    async def write(
        self,
        state: DocState,
        entry_type: EntryType,
        change_bytes: bytes,
        change_hash: str,
        deps: Sequence[str],
        key: bytes,
        *,
        hold: EntryBatch | None = None,
        created_at: int | None = None,
        attachments: tuple[AttachmentInfo, ...] | None = None,
    ) -> None:
        """Encrypt, sign and store one Automerge change already applied to ``state.am``.

        With ``hold`` the entry is added there, still unsigned, instead of stored (and no
        snapshot is made), so a write of several entries can check them all and sign them
        together before the caller stores them at once (:meth:`put_batch`).
        ``created_at``: the ``peek_ms`` time the change was stamped with (else now).
        ``attachments``: the document's attachment list after the change, if known.
        """
        state.changed()
        state.attached = attachments
        created_at = self._clock.now_ms() if created_at is None else self._clock.take(created_at)
        # Every change carries the document's complete attachment list; a delete releases them.
        attached = () if entry_type is EntryType.DOC_DELETE else state.attachments()
        refs = attachment_refs(attached) if attached else ()
        sign = self._signer.sign if hold is None else hold.sign_now
        entry = seal_doc_entry(
            encrypt=self._cipher(key).encrypt,
            author=self._signer.public_pem,
            entry_type=entry_type,
            doc_id=state.doc_id,
            key_id=state.key_id,
            plaintext=change_bytes,
            automerge_hash=change_hash,
            automerge_deps=deps,
            dependency_ids=[state.entry_of_hash[d] for d in deps],
            created_at=created_at,
            attachment_refs=refs,
            sign=sign,
            doc_id_checked=state.id_checked,
        )
        state.id_checked = True  # sealed: the id was checked, or known good
        reason = self._trust().refusal(entry.metadata)
        if reason is not None:
            raise AccessRevokedError(f"cannot write to {self._db_id!r}: {reason}")
        if hold is None:
            signed = entry if isinstance(entry, StoreEntry) else entry.signed(self._signer.sign)
            await self.put([signed])
        else:
            hold.add(entry)
        entry_id = entry.metadata.id
        state.included.add(entry_id)
        state.entry_of_hash[change_hash] = entry_id
        state.last_modified = created_at
        if entry_type is EntryType.DOC_CREATE:
            state.created_at = created_at
        state.since_snapshot += 1
        due = self._snapshot_every > 0 and state.since_snapshot >= self._snapshot_every
        if due and hold is None:
            await self.snapshot(state, key)

    def _cipher(self, key: bytes) -> PayloadCipher:
        """The payload cipher of ``key``, set up once: that costs more than sealing a change."""
        cipher = self._ciphers.get(key)
        if cipher is None:
            if len(self._ciphers) >= _CIPHERS_KEPT:
                self._ciphers.clear()
            cipher = self._ciphers[key] = PayloadCipher(key)
        return cipher

    async def snapshot(self, state: DocState, key: bytes) -> None:
        """Save the whole document as one ``doc_snapshot`` so later reads replay less.

        A snapshot over the entry size limit is skipped with a warning (and tried again after
        the next ``snapshot_every`` changes): it is an optimisation, and the change that
        triggered it is already stored.
        """
        entry = self._snapshot_or_none(state, key)
        if entry is not None:
            await self.put([entry.signed(self._signer.sign)])

    def due_snapshots(self, states: Iterable[tuple[DocState, bytes]], batch: EntryBatch) -> None:
        """Add the snapshots a batch made due (each document's once) to ``batch``."""
        due: dict[str, tuple[DocState, bytes]] = {}
        for state, key in states:
            if self._snapshot_every > 0 and state.since_snapshot >= self._snapshot_every:
                due[state.doc_id] = (state, key)
        for state, key in due.values():
            entry = self._snapshot_or_none(state, key)
            if entry is not None:
                batch.add(entry)

    def _snapshot_or_none(self, state: DocState, key: bytes) -> UnsignedEntry | None:
        heads = [h.hex() for h in state.am.heads()]
        state.since_snapshot = 0
        try:
            return self._snapshot_entry(state, key, heads)
        except EntryTooLargeError as exc:
            log.warning(
                "document snapshot skipped: too large to sync",
                extra={"db": self._db_id, "doc_id": state.doc_id, "size": exc.size},
            )
            return None

    def _snapshot_entry(self, state: DocState, key: bytes, heads: list[str]) -> UnsignedEntry:
        entry = seal_doc_entry(
            encrypt=self._cipher(key).encrypt,
            author=self._signer.public_pem,
            entry_type=EntryType.DOC_SNAPSHOT,
            doc_id=state.doc_id,
            key_id=state.key_id,
            plaintext=state.am.save(),
            automerge_hash=snapshot_hash(),
            automerge_deps=heads,
            dependency_ids=state.head_entry_ids(),
            created_at=self._clock.now_ms(),
            snapshot_heads=heads,
            doc_id_checked=state.id_checked,
        )
        assert isinstance(entry, UnsignedEntry)  # given no ``sign``
        return entry

    async def put_batch(self, batch: EntryBatch) -> None:
        """Sign the batch's entries (on every core when there are many) and store them."""
        await self.put(await batch.signed())

    async def put(self, entries: list[StoreEntry]) -> None:
        result = await self._store.put_entries(entries)
        if result.rejected:
            raise DatabaseError(f"the store refused a new entry: {result.rejected[0][1]}")
