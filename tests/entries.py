"""Signed test entries built with ``cryptography`` directly, so store tests need no ``mindood``."""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from collections.abc import Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from store.entry import AttachmentRef, EntryMetadata, EntryType, StoreEntry, content_hash
from store.ids import attachment_chunk_id, doc_entry_id, generate_doc_id
from store.signing import sign_entry

_counter = itertools.count(1)


class Author:
    """An Ed25519 author that signs entries the way the node does."""

    def __init__(self, key: Ed25519PrivateKey | None = None) -> None:
        self.key = key or Ed25519PrivateKey.generate()
        pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_pem = pem.decode("ascii").rstrip("\n")

    def sign(self, meta: EntryMetadata, data: bytes) -> StoreEntry:
        return sign_entry(meta, data, self.key.sign)

    def entry(
        self,
        doc_id: str | None = None,
        *,
        entry_type: EntryType = EntryType.DOC_CHANGE,
        payload: bytes | None = None,
        deps: Sequence[str] = (),
        created_at: int | None = None,
        key_id: str = "default",
        attachment_refs: Sequence[AttachmentRef] = (),
    ) -> StoreEntry:
        """A signed doc entry; the payload stands in for ciphertext (stores never decrypt)."""
        doc = doc_id or generate_doc_id()
        data = payload if payload is not None else os.urandom(64)
        fake_hash = content_hash(data + next(_counter).to_bytes(8, "big"))
        meta = EntryMetadata(
            entry_type=entry_type,
            id=doc_entry_id(doc, [d.rsplit("_", 1)[-1] for d in deps], fake_hash),
            content_hash=content_hash(data),
            doc_id=doc,
            dependency_ids=tuple(deps),
            created_at=created_at if created_at is not None else time.time_ns() // 1_000_000,
            created_by_public_key=self.public_pem,
            decryption_key_id=key_id,
            original_size=max(0, len(data) - 28),
            encrypted_size=len(data),
            attachment_refs=tuple(attachment_refs),
        )
        return self.sign(meta, data)

    def chunk(
        self, doc_id: str, attachment_id: str, payload: bytes, prev: str | None = None
    ) -> StoreEntry:
        data = payload
        meta = EntryMetadata(
            entry_type=EntryType.ATTACHMENT_CHUNK,
            id=attachment_chunk_id(doc_id, attachment_id, f"c{next(_counter):08d}"),
            content_hash=content_hash(data),
            doc_id=doc_id,
            dependency_ids=(prev,) if prev else (),
            created_at=time.time_ns() // 1_000_000,
            created_by_public_key=self.public_pem,
            decryption_key_id="default",
            original_size=len(data),
            encrypted_size=len(data),
            attachment_id=attachment_id,
        )
        return self.sign(meta, data)


def tampered(entry: StoreEntry, **changes: object) -> StoreEntry:
    """The same entry with metadata fields changed and the old signature kept."""
    return StoreEntry(dataclasses.replace(entry.metadata, **changes), entry.encrypted_data)  # type: ignore[arg-type]
