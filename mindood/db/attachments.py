"""Attachments: files kept as chains of encrypted chunks in a database's attachment store.

Layout (reference §9): a file is cut into chunks (256 KiB by default); each chunk is one
``attachment_chunk`` entry ``<docId>_a_<attachmentId>_<objectId>``, encrypted with the document's
key and a deterministic IV, signed by its author, and chained to the chunk before it through
``dependency_ids``. The document itself only holds a small reference per file in its
``_attachments`` list (name, type, size, the id of the *last* chunk), and every doc entry carries
the signed ``attachment_refs`` of the document, so a node without the key knows which chains are
alive.

Reading walks the chain backwards from ``lastChunkId`` through metadata alone and sums chunk
sizes into offsets; only then are payloads fetched, and only those a range needs. Writing
encrypts chunk by chunk as data arrives and puts them to the store in bounded batches, so a file
much larger than memory passes through with a fixed footprint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mindood.bytesource import DataSource, rechunk
from mindood.crypto import decrypt_attachment_chunk_with_any
from mindood.crypto.aead import MIN_ATTACHMENT_LENGTH
from mindood.db.entries import Clock, build_chunk_entry
from mindood.db.errors import AttachmentUnavailableError
from mindood.db.keys import KeyProvider, Signer
from mindood.db.trust import TrustPolicy
from mindood.errors import AccessRevokedError, DatabaseError, DecryptionError, KeyNotFoundError
from store.base import ContentAddressedStore
from store.entry import AttachmentRef, EntryMetadata, EntryType, StoreEntry
from store.limits import MAX_ENTRY_BYTES

#: Chunk size of new attachments (reference ``AttachmentConfig.chunkSizeBytes``).
DEFAULT_CHUNK_SIZE = 256 * 1024
#: Plaintext bytes collected before one ``put_entries`` call while writing. The reference uses
#: 16 MiB (a network request size); for a local store peak memory while streaming a file in was
#: measured at about six times the batch (ciphertext, the store's records, its joined write
#: buffer, allocator slack), independent of the file's size, so a smaller batch is kept here.
DEFAULT_WRITE_BATCH_BYTES = 4 * 1024 * 1024
#: Chunks fetched per store call while reading.
DEFAULT_READ_BATCH = 4
#: Largest plaintext chunk whose encrypted form (mode byte, IV, tag) fits ``MAX_ENTRY_BYTES``.
MAX_CHUNK_SIZE = MAX_ENTRY_BYTES - MIN_ATTACHMENT_LENGTH
assert DEFAULT_CHUNK_SIZE <= MAX_CHUNK_SIZE


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """One entry of a document's ``_attachments`` list (reference ``AttachmentReference``)."""

    attachment_id: str
    file_name: str
    mime_type: str
    size: int
    last_chunk_id: str
    decryption_key_id: str
    created_at: int
    created_by: str

    def to_fields(self) -> dict[str, Any]:
        """The map stored in the document (the reference's camelCase field names)."""
        return {
            "attachmentId": self.attachment_id,
            "fileName": self.file_name,
            "mimeType": self.mime_type,
            "size": self.size,
            "lastChunkId": self.last_chunk_id,
            "decryptionKeyId": self.decryption_key_id,
            "createdAt": self.created_at,
            "createdBy": self.created_by,
        }

    @classmethod
    def from_fields(cls, value: Any) -> AttachmentInfo | None:
        """Parse one stored map; None for anything malformed (another tool's stray entry)."""
        if not hasattr(value, "get"):
            return None
        texts = [value.get(k) for k in ("attachmentId", "lastChunkId", "decryptionKeyId")]
        size, created_at = value.get("size"), value.get("createdAt", 0)
        if not all(isinstance(t, str) and t for t in texts):
            return None
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return None
        return cls(
            attachment_id=str(texts[0]),
            file_name=_text(value.get("fileName")),
            mime_type=_text(value.get("mimeType")),
            size=size,
            last_chunk_id=str(texts[1]),
            decryption_key_id=str(texts[2]),
            created_at=created_at if isinstance(created_at, int) else 0,
            created_by=_text(value.get("createdBy")),
        )

    def ref(self) -> AttachmentRef:
        return AttachmentRef(self.attachment_id, self.last_chunk_id, self.size)

    def appended(self, last_chunk_id: str, added: int) -> AttachmentInfo:
        return dataclasses.replace(self, last_chunk_id=last_chunk_id, size=self.size + added)


def _text(value: Any) -> str:
    return str(value) if value is not None else ""


def parse_attachments(value: Any) -> tuple[AttachmentInfo, ...]:
    """The attachments in an ``_attachments`` value (live or plain list); skips malformed ones."""
    if not value:  # the usual case, read on every write: no need for the ABC check below
        return ()
    if value is None or isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return ()
    parsed = (AttachmentInfo.from_fields(item) for item in value)
    return tuple(info for info in parsed if info is not None)


def attachment_refs(infos: Iterable[AttachmentInfo]) -> tuple[AttachmentRef, ...]:
    """Signed refs for a doc entry: one per attachment id (the last listed wins), sorted."""
    by_id = {info.attachment_id: info.ref() for info in infos}
    return tuple(by_id[k] for k in sorted(by_id))


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    """Where one chunk's plaintext lies in the file."""

    meta: EntryMetadata
    start: int

    @property
    def end(self) -> int:
        return self.start + self.meta.original_size


class AttachmentIO:
    """Reads and writes the chunk chains of one database's attachment store."""

    def __init__(
        self,
        *,
        store: ContentAddressedStore | None,
        keys: KeyProvider,
        trust: Callable[[], TrustPolicy],
        signer: Signer,
        clock: Clock,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        write_batch_bytes: int = DEFAULT_WRITE_BATCH_BYTES,
        read_batch: int = DEFAULT_READ_BATCH,
    ) -> None:
        if chunk_size < 1 or read_batch < 1:
            raise ValueError("attachment chunk size and read batch must be positive")
        if chunk_size > MAX_CHUNK_SIZE:
            raise ValueError(
                f"attachment chunk size {chunk_size} is over {MAX_CHUNK_SIZE}: an encrypted "
                "chunk must stay within the tenant-wide entry size limit to sync"
            )
        self._store = store
        self._keys = keys
        self._trust = trust
        self._signer = signer
        self._clock = clock
        self.chunk_size = chunk_size
        self._write_batch_bytes = write_batch_bytes
        self._read_batch = read_batch

    def _require_store(self) -> ContentAddressedStore:
        if self._store is None:
            raise DatabaseError("this database has no attachment store")
        return self._store

    def writer(self, doc_id: str, key_id: str, key: bytes) -> ChunkWriter:
        """A writer for one change of one document (chunks use the document's key)."""
        return ChunkWriter(self, doc_id, key_id, key)

    # -- reading -----------------------------------------------------------------------------
    async def spans(self, doc_id: str, info: AttachmentInfo) -> list[ChunkSpan]:
        """The chunks of a file in order with their offsets, from metadata alone."""
        store = self._require_store()
        ids = await store.resolve_dependencies(info.last_chunk_id)
        metas = {m.id: m for m in await store.get_metadata(ids)}
        trust = self._trust()
        chain: list[EntryMetadata] = []
        seen: set[str] = set()
        current: str | None = info.last_chunk_id
        while current is not None:
            meta = metas.get(current)
            if meta is None:
                raise AttachmentUnavailableError(
                    f"chunk {current!r} of attachment {info.attachment_id!r} is not in this store"
                    " (not synced yet?)"
                )
            if current in seen or not _belongs(meta, doc_id, info.attachment_id):
                raise AttachmentUnavailableError(
                    f"entry {current!r} is not a chunk of attachment {info.attachment_id!r}"
                )
            if not trust.applies(meta):
                raise AttachmentUnavailableError(
                    f"chunk {current!r} was written by an author this database does not trust"
                )
            seen.add(current)
            chain.append(meta)
            current = meta.dependency_ids[0] if meta.dependency_ids else None
        chain.reverse()
        spans: list[ChunkSpan] = []
        offset = 0
        for meta in chain:
            spans.append(ChunkSpan(meta, offset))
            offset += meta.original_size
        if offset != info.size:
            raise AttachmentUnavailableError(
                f"attachment {info.attachment_id!r}: chunks hold {offset} bytes, "
                f"the document says {info.size}"
            )
        return spans

    async def stream(
        self, doc_id: str, info: AttachmentInfo, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` of a file, one chunk (or part of one) at a time.

        Only the chunks overlapping the range are fetched, ``read_batch`` per store call, so
        memory holds a few chunks however large the file is.
        """
        begin, stop = _clamp(start, end, info.size)
        if begin >= stop:
            return
        wanted = [s for s in await self.spans(doc_id, info) if s.end > begin and s.start < stop]
        store = self._require_store()
        for index in range(0, len(wanted), self._read_batch):
            batch = wanted[index : index + self._read_batch]
            found = {e.id: e for e in await store.get_entries([s.meta.id for s in batch])}
            for span in batch:
                entry = found.get(span.meta.id)
                if entry is None:
                    raise AttachmentUnavailableError(f"chunk {span.meta.id!r} vanished while read")
                plain = self._decrypt(entry)
                low, high = max(begin - span.start, 0), min(stop, span.end) - span.start
                yield plain if (low, high) == (0, len(plain)) else plain[low:high]

    async def read(
        self, doc_id: str, info: AttachmentInfo, start: int = 0, end: int | None = None
    ) -> bytes:
        """The bytes ``[start, end)`` of a file in one piece."""
        return b"".join([piece async for piece in self.stream(doc_id, info, start, end)])

    def _decrypt(self, entry: StoreEntry) -> bytes:
        meta = entry.metadata
        keys = self._keys.keys_for(meta.decryption_key_id)
        try:
            plain = decrypt_attachment_chunk_with_any(keys, entry.encrypted_data)
        except DecryptionError as exc:
            raise KeyNotFoundError(
                f"chunk {meta.id!r}: none of the held versions of key "
                f"{meta.decryption_key_id!r} decrypts it"
            ) from exc
        if len(plain) != meta.original_size:
            raise AttachmentUnavailableError(f"chunk {meta.id!r} does not have its signed size")
        return plain

    # -- writing (through ChunkWriter) -------------------------------------------------------
    async def _put(self, entries: Sequence[StoreEntry]) -> None:
        result = await self._require_store().put_entries(entries)
        if result.rejected:
            raise DatabaseError(f"the attachment store refused a chunk: {result.rejected[0][1]}")


def _belongs(meta: EntryMetadata, doc_id: str, attachment_id: str) -> bool:
    return (
        meta.entry_type is EntryType.ATTACHMENT_CHUNK
        and meta.doc_id == doc_id
        and meta.attachment_id == attachment_id
        and len(meta.dependency_ids) <= 1
    )


def _clamp(start: int, end: int | None, size: int) -> tuple[int, int]:
    if start < 0 or (end is not None and end < 0):
        raise ValueError("attachment ranges take non-negative offsets")
    return min(start, size), size if end is None else min(end, size)


class ChunkWriter:
    """Writes chunk chains for one change of one document, under the document's key."""

    def __init__(self, io: AttachmentIO, doc_id: str, key_id: str, key: bytes) -> None:
        self._io = io
        self.doc_id = doc_id
        self.key_id = key_id
        self._key = key
        self._checked = False

    @property
    def author(self) -> str:
        return self._io._signer.public_pem

    def now(self) -> int:
        return self._io._clock.now_ms()

    async def write(
        self, attachment_id: str, source: DataSource, previous: str | None
    ) -> tuple[str, int]:
        """Chunk, encrypt, sign and store ``source`` after chunk ``previous``.

        Returns the new last chunk id (``previous`` if the source was empty) and the number of
        bytes written. A new, empty file still gets one empty chunk, so every attachment has a
        chain to point at.
        """
        io = self._io
        io._require_store()
        batch: list[StoreEntry] = []
        batch_bytes = total = 0
        last = previous
        async for chunk in rechunk(source, io.chunk_size):
            last = self._append(batch, attachment_id, chunk, last)
            total += len(chunk)
            batch_bytes += len(chunk)
            if batch_bytes >= io._write_batch_bytes:
                await io._put(batch)
                batch, batch_bytes = [], 0
        if last is None:
            last = self._append(batch, attachment_id, b"", None)
        if batch:
            await io._put(batch)
        return last, total

    def _append(
        self, batch: list[StoreEntry], attachment_id: str, chunk: bytes, previous: str | None
    ) -> str:
        entry = build_chunk_entry(
            signer=self._io._signer,
            doc_id=self.doc_id,
            attachment_id=attachment_id,
            key_id=self.key_id,
            key=self._key,
            plaintext=chunk,
            previous=previous,
            created_at=self.now(),
        )
        if not self._checked:
            reason = self._io._trust().refusal(entry.metadata)
            if reason is not None:
                raise AccessRevokedError(f"cannot write attachments: {reason}")
            self._checked = True
        batch.append(entry)
        return entry.id
