"""KeyBag: a user's local store of symmetric document keys (reference-formats §1.4, spec §5).

Keys are addressed by ``(tenant_id, key_id)`` and stored under the scoped id
``doc:<tenantId>:<keyId>``. Each id holds several versions (key rotation), ordered newest first by
``createdAt`` (missing counts as 0); on a tie the version added later comes first, so a rotation
within one millisecond still makes the new key current. Identical key bytes are stored once.
``addedAt`` records when this device learned a version; it is local and never compared.

On disk the bag is ``IV(12) || TAG(16) || CIPHERTEXT`` (tag *before* ciphertext, unlike payloads)
of the compact JSON ``[[scopedId, [{key, createdAt?, addedAt?}, ...]], ...]``, sealed with
AES-256-GCM under ``PBKDF2(UTF-8(password + ":key-bag-encryption"),
salt(user encryption key) || UTF-8("key-bag-encryption"), current iteration count)``. The count
is not stored, as in the reference: a bag written with one count only opens with the same count.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mindood.crypto._codec import b64decode, b64encode, dumps_json, loads_json, optional_int, utf8
from mindood.crypto.aead import IV_LENGTH, TAG_LENGTH, gcm_decrypt, gcm_encrypt, new_symmetric_key
from mindood.crypto.kdf import derive_key, pbkdf2_iterations
from mindood.crypto.private_keys import (
    EncryptedPrivateKey,
    decrypt_private_key,
    encrypt_private_key,
)
from mindood.errors import (
    DecryptionError,
    KeyBagError,
    KeyBagFormatError,
    KeyFormatError,
    KeyNotFoundError,
    WrongPasswordError,
)
from mindood.identity import PrivateUserId

KEYBAG_PURPOSE = "key-bag-encryption"
MIN_BLOB_LENGTH = IV_LENGTH + TAG_LENGTH
MAX_KEY_LENGTH = 1_024
MAX_ID_LENGTH = 4_096
FINGERPRINT_VERSION = "v1"

Clock = Callable[[], int]


def _now_ms() -> int:
    return int(time.time() * 1000)


def scoped_key_id(tenant_id: str, key_id: str) -> str:
    """``doc:<tenantId>:<keyId>``; the tenant id may not contain ``:`` (it delimits the id)."""
    if not isinstance(tenant_id, str) or not tenant_id or ":" in tenant_id:
        raise KeyBagError(f"invalid tenant id {tenant_id!r}")
    if not isinstance(key_id, str) or not key_id or len(key_id) > MAX_ID_LENGTH:
        raise KeyBagError(f"invalid key id {key_id!r}")
    return f"doc:{tenant_id}:{key_id}"


def export_salt_string(tenant_id: str, key_id: str) -> str:
    """Salt string for exporting a doc key with a password: ``doc:v2:<tenantId>:<keyId>``."""
    scoped_key_id(tenant_id, key_id)
    return f"doc:v2:{tenant_id}:{key_id}"


def normalize_scoped_key_id(scoped: str) -> str:
    """Map the legacy tenant-key id ``tenant:<tenantId>`` to ``doc:<tenantId>:default``."""
    if scoped.startswith("tenant:") and len(scoped) > len("tenant:"):
        return f"doc:{scoped[len('tenant:') :]}:default"
    return scoped


def derive_keybag_wrapping_key(user: PrivateUserId, password: str) -> bytes:
    """The AES-256 key that seals ``user``'s KeyBag (at the current iteration count)."""
    salt = user.encryption_private_key.salt + utf8(KEYBAG_PURPOSE)
    return derive_key(password + ":" + KEYBAG_PURPOSE, salt, pbkdf2_iterations())


def _js_sort_key(text: str) -> bytes:
    # JavaScript's default sort compares UTF-16 code units; UTF-16-BE bytes order the same way.
    return text.encode("utf-16-be", "surrogatepass")


@dataclass(frozen=True, slots=True)
class KeyVersion:
    """One version of a key: its bytes, when it was created (author) and added (here), in ms."""

    key: bytes
    created_at: int | None = None
    added_at: int | None = None


class KeyBag:
    """Versions of symmetric keys per ``(tenant_id, key_id)``, sealed with a wrapping key."""

    def __init__(self, wrapping_key: bytes, *, clock: Clock | None = None) -> None:
        """A bag sealed with ``wrapping_key`` (32 bytes); see :meth:`for_user` for the usual way."""
        if not isinstance(wrapping_key, bytes) or len(wrapping_key) != 32:
            raise KeyBagError("KeyBag wrapping key must be 32 bytes")
        self._wrapping_key = wrapping_key
        self._clock: Clock = clock or _now_ms
        self._entries: dict[str, list[KeyVersion]] = {}

    @classmethod
    def for_user(cls, user: PrivateUserId, password: str, *, clock: Clock | None = None) -> KeyBag:
        """An empty bag sealed with the key derived from ``user`` and ``password``."""
        return cls(derive_keybag_wrapping_key(user, password), clock=clock)

    @classmethod
    def load(
        cls, blob: bytes, user: PrivateUserId, password: str, *, clock: Clock | None = None
    ) -> KeyBag:
        """Open a saved bag; wrong password raises :class:`WrongPasswordError`."""
        return cls.load_with_wrapping_key(
            blob, derive_keybag_wrapping_key(user, password), clock=clock
        )

    @classmethod
    def load_with_wrapping_key(
        cls, blob: bytes, wrapping_key: bytes, *, clock: Clock | None = None
    ) -> KeyBag:
        """Open a saved bag with an already derived wrapping key."""
        bag = cls(wrapping_key, clock=clock)
        if len(blob) < MIN_BLOB_LENGTH:
            raise KeyBagFormatError(f"KeyBag blob of {len(blob)} bytes is shorter than IV + tag")
        iv = blob[:IV_LENGTH]
        tag = blob[IV_LENGTH:MIN_BLOB_LENGTH]
        try:
            plain = gcm_decrypt(wrapping_key, iv, blob[MIN_BLOB_LENGTH:] + tag)
        except DecryptionError:
            raise WrongPasswordError(
                "cannot open the KeyBag: wrong password, or the KeyBag file is damaged"
            ) from None
        try:
            bag._load_json(loads_json(plain, "KeyBag contents"))
        except KeyBagFormatError:
            raise
        except KeyFormatError as exc:
            raise KeyBagFormatError(str(exc)) from None
        return bag

    def _load_json(self, data: object) -> None:
        if not isinstance(data, list):
            raise KeyBagFormatError("KeyBag contents must be a JSON array")
        for item in data:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
                raise KeyBagFormatError("KeyBag entry must be [scopedKeyId, [versions]]")
            scoped, versions = item
            if not isinstance(scoped, str) or not scoped or len(scoped) > MAX_ID_LENGTH:
                raise KeyBagFormatError("KeyBag scoped key id must be a non-empty string")
            scoped = normalize_scoped_key_id(scoped)
            for raw in versions:
                self._merge_loaded(scoped, _parse_version(raw))
        for scoped, versions in self._entries.items():
            self._entries[scoped] = _sorted(versions)

    def _merge_loaded(self, scoped: str, version: KeyVersion) -> None:
        # Duplicates collapse: newest createdAt, oldest addedAt (first sighting wins on ties).
        versions = self._entries.setdefault(scoped, [])
        for i, old in enumerate(versions):
            if old.key == version.key:
                versions[i] = KeyVersion(
                    key=old.key,
                    created_at=_max_opt(old.created_at, version.created_at),
                    added_at=_min_opt(old.added_at, version.added_at),
                )
                return
        versions.append(version)

    def save(self) -> bytes:
        """The sealed bag: ``IV(12) || TAG(16) || CIPHERTEXT``, fresh IV each time."""
        plain = dumps_json(
            [
                [scoped, [_version_json(v) for v in versions]]
                for scoped, versions in self._entries.items()
            ]
        )
        iv = os.urandom(IV_LENGTH)
        sealed = gcm_encrypt(self._wrapping_key, iv, plain)
        return iv + sealed[-TAG_LENGTH:] + sealed[:-TAG_LENGTH]

    def versions(self, tenant_id: str, key_id: str) -> list[KeyVersion]:
        """All versions of a key, newest first (empty list if none)."""
        return list(self._entries.get(scoped_key_id(tenant_id, key_id), ()))

    def get(self, tenant_id: str, key_id: str) -> bytes:
        """The newest version of a key; :class:`KeyNotFoundError` if there is none."""
        versions = self._entries.get(scoped_key_id(tenant_id, key_id))
        if not versions:
            raise KeyNotFoundError(f"no key {key_id!r} for tenant {tenant_id!r} in the KeyBag")
        return versions[0].key

    def get_all(self, tenant_id: str, key_id: str) -> list[bytes]:
        """Every version's bytes, newest first, for trying each on decryption."""
        return [v.key for v in self.versions(tenant_id, key_id)]

    def has(self, tenant_id: str, key_id: str) -> bool:
        """True if at least one version of the key is stored."""
        return bool(self._entries.get(scoped_key_id(tenant_id, key_id)))

    def set(self, tenant_id: str, key_id: str, key: bytes, created_at: int | None = None) -> bool:
        """Add a version; returns False (and changes nothing) if these bytes are already stored."""
        scoped = scoped_key_id(tenant_id, key_id)
        if not isinstance(key, bytes | bytearray) or not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise KeyBagError(f"key must be 1..{MAX_KEY_LENGTH} bytes")
        if created_at is not None and (
            isinstance(created_at, bool) or not isinstance(created_at, int)
        ):
            raise KeyBagError("created_at must be an int (ms) or None")
        versions = self._entries.setdefault(scoped, [])
        if any(v.key == key for v in versions):
            return False
        version = KeyVersion(key=bytes(key), created_at=created_at, added_at=self._clock())
        self._entries[scoped] = _sorted([version, *versions])
        return True

    def delete(self, tenant_id: str, key_id: str) -> bool:
        """Remove every version of a key; returns whether anything was removed."""
        return self._entries.pop(scoped_key_id(tenant_id, key_id), None) is not None

    def list_keys(self, tenant_id: str) -> list[str]:
        """Key ids stored for ``tenant_id``, sorted."""
        prefix = scoped_key_id(tenant_id, "x")[:-1]
        return sorted(s[len(prefix) :] for s in self._entries if s.startswith(prefix))

    def list_scoped_key_ids(self) -> list[str]:
        """Every scoped id in the bag (including ids of unknown forms kept from a loaded file)."""
        return list(self._entries)

    def create_and_store_symmetric_key(self, tenant_id: str, key_id: str) -> bytes:
        """Create a fresh AES-256 key as the newest version of ``key_id`` and return it."""
        key = new_symmetric_key()
        self.set(tenant_id, key_id, key, created_at=self._clock())
        return key

    def encrypt_and_export_key(
        self, tenant_id: str, key_id: str, password: str
    ) -> EncryptedPrivateKey:
        """The newest version sealed under ``password`` (salt ``doc:v2:<tenant>:<key>``)."""
        scoped = scoped_key_id(tenant_id, key_id)
        versions = self._entries.get(scoped)
        if not versions:
            raise KeyNotFoundError(f"no key {key_id!r} for tenant {tenant_id!r} in the KeyBag")
        newest = versions[0]
        return encrypt_private_key(
            newest.key,
            password,
            export_salt_string(tenant_id, key_id),
            created_at=newest.created_at,
        )

    def decrypt_and_import_key(
        self,
        tenant_id: str,
        key_id: str,
        exported: EncryptedPrivateKey | Mapping[str, object],
        password: str,
    ) -> bytes:
        """Open an exported key and store it (keeping its ``createdAt``); returns the bytes."""
        blob = EncryptedPrivateKey.from_json(exported)
        key = decrypt_private_key(blob, password, export_salt_string(tenant_id, key_id))
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise KeyBagFormatError("imported key has an invalid length")
        self.set(tenant_id, key_id, key, created_at=blob.created_at)
        return key

    def get_doc_key_fingerprint(self, tenant_id: str) -> str:
        """``"v1:"`` + the tenant's scoped ids sorted (JS order) and joined by ``"|"``."""
        prefix = scoped_key_id(tenant_id, "x")[:-1]
        ids = sorted((s for s in self._entries if s.startswith(prefix)), key=_js_sort_key)
        return f"{FINGERPRINT_VERSION}:" + "|".join(ids)


def _sorted(versions: list[KeyVersion]) -> list[KeyVersion]:
    # Stable sort: equal createdAt keeps the given order (newest-added first for set()).
    return sorted(versions, key=lambda v: -(v.created_at or 0))


def _max_opt(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _min_opt(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _parse_version(raw: object) -> KeyVersion:
    if not isinstance(raw, Mapping):
        raise KeyBagFormatError("KeyBag key version must be a JSON object")
    key = b64decode(raw.get("key"), "KeyBag 'key'")
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise KeyBagFormatError("KeyBag 'key' has an invalid length")
    return KeyVersion(
        key=key,
        created_at=optional_int(raw.get("createdAt"), "KeyBag 'createdAt'"),
        added_at=optional_int(raw.get("addedAt"), "KeyBag 'addedAt'"),
    )


def _version_json(version: KeyVersion) -> dict[str, Any]:
    out: dict[str, Any] = {"key": b64encode(version.key)}
    if version.created_at is not None:
        out["createdAt"] = version.created_at
    if version.added_at is not None:
        out["addedAt"] = version.added_at
    return out
