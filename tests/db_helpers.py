"""Cheap collaborators for database tests: Ed25519 signers and fixed keys, no RSA, no KDF."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mindood.db import DBOptions, MindooDB, OpenTrust, TrustPolicy
from mindood.errors import KeyNotFoundError
from store.base import ContentAddressedStore, PutResult
from store.entry import EntryMetadata, StoreEntry
from store.memory import InMemoryStore

TENANT = "acme"


class KeySigner:
    """Signs as a fresh Ed25519 key (what ``UserSigner`` does with an unlocked identity)."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_pem = pem.decode("ascii")

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


class CountingStore(InMemoryStore):
    """An in-memory store that records every ``put_entries`` batch it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.puts: list[list[StoreEntry]] = []

    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        self.puts.append(list(entries))
        return await super().put_entries(entries)


class StaticKeys:
    """Fixed key versions by id (newest first)."""

    def __init__(self, **keys: bytes) -> None:
        self._keys = {name: [key] for name, key in keys.items()}

    def keys_for(self, key_id: str) -> list[bytes]:
        if key_id not in self._keys:
            raise KeyNotFoundError(f"no key {key_id!r}")
        return list(self._keys[key_id])


def default_keys() -> StaticKeys:
    return StaticKeys(default=os.urandom(32))


@dataclasses.dataclass
class Allow:
    """Applies entries of listed authors only; ``bump()`` after editing."""

    authors: set[str]
    generation: int = 0

    @property
    def fingerprint(self) -> str:
        return ",".join(sorted(self.authors))

    def applies(self, meta: EntryMetadata) -> bool:
        return meta.created_by_public_key in self.authors

    def refusal(self, meta: EntryMetadata) -> str | None:
        return None

    def bump(self) -> None:
        self.generation += 1


def make_db(
    signer: KeySigner,
    keys: StaticKeys,
    store: ContentAddressedStore | None = None,
    attachments: ContentAddressedStore | None = None,
    *,
    trust: TrustPolicy | None = None,
    options: DBOptions | None = None,
    db_id: str = "todos",
) -> MindooDB:
    return MindooDB(
        tenant_id=TENANT,
        db_id=db_id,
        store=store if store is not None else InMemoryStore(),
        attachment_store=attachments if attachments is not None else InMemoryStore("att"),
        signer=signer,
        keys=keys,
        trust=trust or OpenTrust(),
        options=options,
    )
