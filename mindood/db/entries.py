"""Turning an Automerge change, a save or an attachment chunk into a signed, encrypted entry.

Order matters and mirrors the reference: encrypt the payload, hash the ciphertext, derive the
id (from the Automerge hashes, or the attachment and a fresh chunk id), then sign the full
metadata (``store.signing``), so every field a relay sees is covered by the author's signature.
Right after encrypting, the payload is held against the tenant-wide ``MAX_ENTRY_BYTES``: an
entry over it could be stored here but would stop every sync of its database, so it is never
built.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mindood.crypto import encrypt_attachment_chunk
from mindood.db.keys import Signer
from mindood.errors import EntryTooLargeError
from store.entry import AttachmentRef, EntryMetadata, EntryType, StoreEntry, content_hash
from store.ids import attachment_chunk_id, doc_entry_id, generate_object_id, uuid7
from store.limits import MAX_ENTRY_BYTES, format_mib
from store.signing import sign_entry, signing_bytes_of


class Clock:
    """Milliseconds that never go backwards within one database handle.

    Entries of one author are ordered by ``created_at`` in time travel and lifecycle decisions;
    a wall clock stepping back (NTP) must not reorder an author's own changes.
    """

    def __init__(self) -> None:
        self._last = 0

    def now_ms(self) -> int:
        self._last = self.peek_ms()
        return self._last

    def peek_ms(self) -> int:
        """What ``now_ms`` would answer, without taking it (the next entry's time)."""
        return max(time.time_ns() // 1_000_000, self._last + 1)

    def take(self, ms: int) -> int:
        """Take a time ``peek_ms`` gave earlier, so an entry gets the time its change was stamped
        with even when the wall clock moved on while the change was committed."""
        if ms <= self._last:  # taken meanwhile: order wins over the stamp
            return self.now_ms()
        self._last = ms
        return ms


#: What an entry of each type is to the person whose write it refuses.
_WHAT = {
    EntryType.DOC_CREATE: "new document",
    EntryType.DOC_CHANGE: "document change",
    EntryType.DOC_SNAPSHOT: "document snapshot",
    EntryType.DOC_DELETE: "document deletion",
    EntryType.DOC_UNDELETE: "document undeletion",
    EntryType.ATTACHMENT_CHUNK: "attachment chunk",
}


def check_entry_size(entry_type: EntryType, size: int) -> None:
    """Refuse a payload of ``size`` bytes over ``MAX_ENTRY_BYTES``, saying what to do instead."""
    if size <= MAX_ENTRY_BYTES:
        return
    what = _WHAT.get(entry_type, f"{entry_type.value} entry")
    raise EntryTooLargeError(
        f"{what} of {format_mib(size)} exceeds the tenant-wide limit of "
        f"{format_mib(MAX_ENTRY_BYTES)} per entry; store large content as an attachment, "
        "which is split into chunks",
        size=size,
        limit=MAX_ENTRY_BYTES,
    )


@dataclass(frozen=True, slots=True)
class UnsignedEntry:
    """An entry complete but for its two signatures (``store.signing``).

    A batch builds all of its entries first and signs them together, on every core
    (``signpool``); the signatures cover nothing a trust check reads, so the entry is judged
    before it is signed.
    """

    metadata: EntryMetadata
    encrypted_data: bytes

    def signed(self, sign: Callable[[bytes], bytes]) -> StoreEntry:
        return sign_entry(self.metadata, self.encrypted_data, sign)


def seal_doc_entry(
    *,
    encrypt: Callable[[bytes], bytes],
    author: str,
    entry_type: EntryType,
    doc_id: str,
    key_id: str,
    plaintext: bytes,
    automerge_hash: str,
    automerge_deps: Sequence[str],
    dependency_ids: Sequence[str],
    created_at: int,
    snapshot_heads: Sequence[str] = (),
    attachment_refs: Sequence[AttachmentRef] = (),
    sign: Callable[[bytes], bytes] | None = None,
    doc_id_checked: bool = False,
) -> UnsignedEntry | StoreEntry:
    """One encrypted doc entry for a change (or, with ``snapshot_heads``, a snapshot), ready to
    be signed (``UnsignedEntry.signed``), or signed already when ``sign`` is given: the same
    entry ``signed(sign)`` gives, with its metadata built once instead of twice.

    ``encrypt`` is the payload cipher of the document's key (``encrypt_payload`` bound to it, or
    a ``PayloadCipher`` set up once per key), ``author`` the signer's PEM, ``automerge_hash``
    the hex hash of a change this node's Automerge made (or ``snapshot_hash()``); with
    ``doc_id_checked`` (an earlier entry of ``doc_id`` was sealed, or the caller checked it)
    the entry id is not checked (``doc_entry_id``'s ``checked``). ``attachment_refs``
    is the document's full list of live attachments after the change; it is signed, so a node
    without the key still knows which chunk chains are in use. Raises
    ``EntryTooLargeError`` for a payload over ``MAX_ENTRY_BYTES``.
    """
    data = encrypt(plaintext)
    check_entry_size(entry_type, len(data))
    if len(attachment_refs) > 1:
        attachment_refs = sorted(attachment_refs, key=lambda r: r.attachment_id)
    dependencies = tuple(dependency_ids)
    entry_id = doc_entry_id(doc_id, automerge_deps, automerge_hash, checked=doc_id_checked)
    digest = content_hash(data)
    refs = tuple(attachment_refs)
    metadata_signature = signature = b""
    if sign is not None:  # as sign_entry signs: the metadata's bytes, then the ciphertext
        metadata_signature = sign(
            signing_bytes_of(
                entry_type, entry_id, doc_id, key_id, created_at, dependencies, digest, author, refs
            )
        )
        signature = sign(data)
    meta = EntryMetadata(  # positional, in field order: keywords cost a third more here
        entry_type,
        entry_id,
        digest,
        doc_id,
        dependencies,
        created_at,
        author,
        key_id,
        len(plaintext),
        len(data),
        signature,
        metadata_signature,
        tuple(snapshot_heads),
        dependencies if snapshot_heads else (),
        None,  # attachment_id: chunks only
        refs,
    )
    return UnsignedEntry(meta, data) if sign is None else StoreEntry(meta, data)


def build_chunk_entry(
    *,
    signer: Signer,
    doc_id: str,
    attachment_id: str,
    key_id: str,
    key: bytes,
    plaintext: bytes,
    previous: str | None,
    created_at: int,
) -> StoreEntry:
    """One attachment chunk, chained onto ``previous`` (the chunk before it, if any).

    The deterministic IV (reference §1.6) makes equal plaintext under one key equal ciphertext,
    hence one content hash, so a store keeps a chunk shared by many files once.
    """
    data = encrypt_attachment_chunk(key, plaintext, deterministic=True)
    check_entry_size(EntryType.ATTACHMENT_CHUNK, len(data))  # chunk sizes are checked up front
    meta = EntryMetadata(
        entry_type=EntryType.ATTACHMENT_CHUNK,
        id=attachment_chunk_id(doc_id, attachment_id, generate_object_id()),
        content_hash=content_hash(data),
        doc_id=doc_id,
        dependency_ids=(previous,) if previous else (),
        created_at=created_at,
        created_by_public_key=signer.public_pem,
        decryption_key_id=key_id,
        original_size=len(plaintext),
        encrypted_size=len(data),
        attachment_id=attachment_id,
    )
    return sign_entry(meta, data, signer.sign)


def snapshot_hash() -> str:
    """The id suffix of a snapshot: unique, and never mistaken for an Automerge change hash."""
    return f"snapshot-{uuid7()}"
