"""What a database needs from its tenant: someone to sign as, and keys to read with.

Both are tiny interfaces so a relay (no content keys) and an admin handle (the admin's signer on
the directory) are the same ``MindooDB`` with different collaborators.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mindood.errors import KeyNotFoundError
from mindood.identity import UnlockedUserId
from mindood.keybag import KeyBag


class Signer(Protocol):
    """An Ed25519 author: the PEM written into entries and the key that signs them.

    ``sign`` must be thread-safe: a batch write signs its entries on worker threads
    (``signpool``).
    """

    @property
    def public_pem(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


class KeyProvider(Protocol):
    """Symmetric key versions by key id, newest first."""

    def keys_for(self, key_id: str) -> list[bytes]:
        """Raise ``KeyNotFoundError`` when no version is held."""
        ...


@dataclass(frozen=True, slots=True)
class UserSigner:
    """Signs as an unlocked user identity."""

    user: UnlockedUserId

    @property
    def public_pem(self) -> str:
        return self.user.private.signing_public_key

    def sign(self, data: bytes) -> bytes:
        return self.user.sign(data)


def signer_for(user: UnlockedUserId) -> Signer:
    return UserSigner(user)


@dataclass(frozen=True, slots=True)
class KeyBagKeys:
    """The keys of one tenant inside a KeyBag."""

    key_bag: KeyBag
    tenant_id: str

    def keys_for(self, key_id: str) -> list[bytes]:
        keys = self.key_bag.get_all(self.tenant_id, key_id)
        if not keys:
            raise KeyNotFoundError(f"no key {key_id!r}: this user cannot read these documents")
        return keys
