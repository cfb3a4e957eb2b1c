"""User-Key documents: a person's RSA key, published in ``userdirectory`` (docs/userkeys.md).

A person (not a device) owns one User-Key. Key distributions wrap ``default`` to it once, and
each of the person's devices gets the User-Key private half wrapped to that device's encryption
key, so a new device needs one wrap, not one per distributed key. The document lives in the
``userdirectory`` database, id ``userkey_<encoded grant doc id>``, key ``$publicinfos``::

    {form: "userdirectory", type: "userkey", schemaVersion: 1,
     username_hash, username_hash_v: 3,
     userKeys: {"<epoch>": {publicKey, fingerprint, createdAt, retiredAt?,
                            deviceWraps: {"<device enc key fingerprint>":
                                {wrappedKey, label?, approvedAt, approvedBySigningPublicKey}}}},
     rejectedDevices?: {"<fingerprint>":
                            {signingPublicKey?, rejectedAt, rejectedBySigningPublicKey}}}

The current generation is the highest numeric epoch. A *pending* document (written by the admin
at join approval) has no device wraps at all. ``wrappedKey`` is the hybrid RSA blob
(:func:`mindood.crypto.rsa.encrypt`) of the User-Key's PKCS#8 DER, base64.

Pure functions only: parsing, building, wrapping; the directory applies writes in ``change_doc``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from mindood.crypto import rsa
from mindood.crypto.fingerprint import rsa_key_fingerprint
from mindood.errors import CryptoError, UserKeyError
from mindood.identity import load_user_key
from mindood.tenant.grants import int_or_none, plain, text_or_none
from mindood.tenant.hashing import USERNAME_HASH_VERSION, encode_id_component

log = logging.getLogger("mindood.tenant.userkeys")

USER_DIRECTORY_DB_ID = "userdirectory"
USERKEY_FORM = "userdirectory"
USERKEY_TYPE = "userkey"
USERKEY_SCHEMA_VERSION = 1
USERKEY_DOC_ID_PREFIX = "userkey_"
FIRST_EPOCH = "1"


def user_key_document_id(grant_doc_id: str) -> str:
    """``userkey_`` + the grant's doc id, encoded so mixed-case legacy ids stay valid ids."""
    return USERKEY_DOC_ID_PREFIX + encode_id_component(grant_doc_id)


def _epoch_number(epoch: str) -> int | None:
    return int(epoch) if epoch.isascii() and epoch.isdigit() else None


@dataclass(frozen=True, slots=True)
class DeviceWrap:
    """The User-Key private half sealed to one device's encryption key."""

    wrapped_key: str
    approved_at: int | None = None
    approved_by_signing_public_key: str | None = None
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored object; unset optional fields are left out, as the reference does."""
        out: dict[str, Any] = {"wrappedKey": self.wrapped_key}
        if self.approved_at is not None:
            out["approvedAt"] = self.approved_at
        if self.approved_by_signing_public_key is not None:
            out["approvedBySigningPublicKey"] = self.approved_by_signing_public_key
        if self.label:
            out["label"] = self.label
        return out

    @classmethod
    def from_json(cls, raw: object) -> DeviceWrap | None:
        """One wrap; None when it has no usable ``wrappedKey`` (a damaged item is skipped)."""
        if not isinstance(raw, Mapping):
            return None
        wrapped = text_or_none(raw.get("wrappedKey"))
        if wrapped is None:
            return None
        return cls(
            wrapped_key=wrapped,
            approved_at=int_or_none(raw.get("approvedAt")),
            approved_by_signing_public_key=text_or_none(raw.get("approvedBySigningPublicKey")),
            label=text_or_none(raw.get("label")),
        )


@dataclass(frozen=True, slots=True)
class UserKeyGeneration:
    """One epoch of a person's User-Key: its public half and the devices that hold it."""

    epoch: str
    public_key: str
    fingerprint: str
    created_at: int | None
    device_wraps: Mapping[str, DeviceWrap] = field(default_factory=dict)
    retired_at: int | None = None

    def wrap_for(self, device_fingerprint: str) -> DeviceWrap | None:
        """The wrap addressed to a device, by its encryption key fingerprint."""
        return self.device_wraps.get(device_fingerprint)


@dataclass(frozen=True, slots=True)
class UserKeyDocument:
    """A parsed ``userkey_*`` document."""

    username_hash: str
    username_hash_version: int
    schema_version: int
    generations: Mapping[str, UserKeyGeneration]
    #: ``rejectedDevices`` as stored (plain JSON), so a rewrite keeps it.
    rejected_devices: Mapping[str, Any] = field(default_factory=dict)

    def epochs_newest_first(self) -> list[str]:
        """The numeric epochs, highest first (non-numeric keys are never current)."""
        numbered = [(n, e) for e in self.generations if (n := _epoch_number(e)) is not None]
        return [e for _, e in sorted(numbered, reverse=True)]

    @property
    def current_epoch(self) -> str | None:
        """The highest numeric epoch, or None when there is none."""
        epochs = self.epochs_newest_first()
        return epochs[0] if epochs else None

    @property
    def current(self) -> UserKeyGeneration | None:
        """The current generation."""
        epoch = self.current_epoch
        return None if epoch is None else self.generations[epoch]

    @property
    def is_pending(self) -> bool:
        """True while no generation has any device wrap: published, but nobody can open it."""
        return all(not gen.device_wraps for gen in self.generations.values())


def _generation(epoch: str, raw: object) -> UserKeyGeneration | None:
    if not isinstance(raw, Mapping):
        return None
    public_key = text_or_none(raw.get("publicKey"))
    if public_key is None:
        return None
    wraps_raw = raw.get("deviceWraps")
    wraps: dict[str, DeviceWrap] = {}
    if isinstance(wraps_raw, Mapping):
        for device, item in wraps_raw.items():
            wrap = DeviceWrap.from_json(item)
            if wrap is not None:
                wraps[str(device)] = wrap
    return UserKeyGeneration(
        epoch=epoch,
        public_key=public_key,
        fingerprint=text_or_none(raw.get("fingerprint")) or "",
        created_at=int_or_none(raw.get("createdAt")),
        device_wraps=wraps,
        retired_at=int_or_none(raw.get("retiredAt")),
    )


def parse_user_key_document(data: Mapping[str, Any]) -> UserKeyDocument | None:
    """The User-Key document in ``data``, or None if it is something else (``asUserKeyPayload``).

    Damaged generations and wraps are skipped rather than failing the whole document. Whether
    the document may be trusted (created by the person or the admin) is the caller's check.
    """
    if data.get("form") != USERKEY_FORM or data.get("type") != USERKEY_TYPE:
        return None
    user_hash = text_or_none(data.get("username_hash"))
    user_keys = data.get("userKeys")
    if user_hash is None or not isinstance(user_keys, Mapping):
        return None
    generations: dict[str, UserKeyGeneration] = {}
    for epoch, raw in user_keys.items():
        gen = _generation(str(epoch), raw)
        if gen is not None:
            generations[gen.epoch] = gen
    rejected = plain(data.get("rejectedDevices"))
    return UserKeyDocument(
        username_hash=user_hash,
        username_hash_version=int_or_none(data.get("username_hash_v")) or 1,
        schema_version=int_or_none(data.get("schemaVersion")) or USERKEY_SCHEMA_VERSION,
        generations=generations,
        rejected_devices=rejected if isinstance(rejected, dict) else {},
    )


def pending_user_key_payload(
    username_hash: str,
    public_key: str,
    created_at: int,
    *,
    username_hash_version: int = USERNAME_HASH_VERSION,
) -> dict[str, Any]:
    """The fields of a new pending document: epoch ``"1"`` with the public key, no wraps.

    ``username_hash``/``username_hash_version`` are copied from the person's grant.
    """
    return {
        "form": USERKEY_FORM,
        "type": USERKEY_TYPE,
        "schemaVersion": USERKEY_SCHEMA_VERSION,
        "username_hash": username_hash,
        "username_hash_v": username_hash_version,
        "userKeys": {
            FIRST_EPOCH: {
                "publicKey": public_key,
                "fingerprint": rsa_key_fingerprint(public_key),
                "createdAt": created_at,
                "deviceWraps": {},
            }
        },
    }


def add_device_wrap(
    data: MutableMapping[str, Any], epoch: str, device_fingerprint: str, wrap: DeviceWrap
) -> bool:
    """Record ``wrap`` for a device in ``data`` (a live document or a plain dict), in place.

    As the reference: an existing wrap for the device is kept (only a missing label is filled
    in). Returns False when nothing changed. Editing the nested map, rather than replacing
    ``userKeys``, lets two devices' concurrent wraps merge. Raises :class:`UserKeyError` when
    the epoch does not exist: a wrap for a generation without a public key helps no one.
    """
    user_keys = data.get("userKeys")
    gen = user_keys.get(epoch) if isinstance(user_keys, MutableMapping) else None
    if not isinstance(gen, MutableMapping):
        raise UserKeyError(f"the User-Key document has no generation {epoch!r}")
    wraps = gen.get("deviceWraps")
    if not isinstance(wraps, MutableMapping):
        gen["deviceWraps"] = {}
        wraps = gen["deviceWraps"]
    existing = DeviceWrap.from_json(wraps.get(device_fingerprint))
    if existing is not None:
        if existing.label is None and wrap.label:
            wraps[device_fingerprint]["label"] = wrap.label
            return True
        return False
    wraps[device_fingerprint] = wrap.to_json()
    return True


def wrap_user_key_for_device(
    user_key_pkcs8: bytes, device_encryption_public_key: str | RSAPublicKey
) -> str:
    """The ``wrappedKey`` for a device: hybrid RSA of the User-Key's PKCS#8 DER, base64."""
    return rsa.encrypt_to_base64(bytes(user_key_pkcs8), device_encryption_public_key)


def unwrap_user_key_from_device(
    wrapped_key: str, device_private_key: RSAPrivateKey, public_key: str
) -> RSAPrivateKey:
    """Open a device wrap and check that it holds the private half of ``public_key``.

    Raises :class:`~mindood.errors.DecryptionError` when the wrap is not for this device or is
    damaged, :class:`~mindood.errors.KeyFormatError`/:class:`~mindood.errors.KeyMismatchError`
    when it holds something else than that User-Key.
    """
    pkcs8 = rsa.decrypt_from_base64(wrapped_key, device_private_key)
    return load_user_key(pkcs8, public_key)


@dataclass(frozen=True, slots=True, eq=False)
class OpenedUserKey:
    """A User-Key generation this device could open."""

    epoch: str
    public_key: str
    fingerprint: str
    private_key: RSAPrivateKey = field(repr=False)


def open_own_device_wraps(
    doc: UserKeyDocument,
    device_private_key: RSAPrivateKey,
    *,
    held: Collection[str] = (),
    cache: MutableMapping[tuple[str, str], RSAPrivateKey] | None = None,
) -> list[OpenedUserKey]:
    """Every generation whose wrap for this device opens, newest first.

    Key distributions may still address a retired generation, so callers try them all. The
    device is found by the fingerprint of ``device_private_key``'s public half; a wrap that
    fails to open or holds a foreign key is skipped with a logged reason.

    Opening a wrap costs an RSA decryption and a validated RSA key load, so a generation whose
    key fingerprint is in ``held`` (keys the caller has already) is skipped, and keys opened
    before are taken from ``cache`` (by wrapped key and public key) and added to it.
    """
    device = rsa_key_fingerprint(device_private_key)
    opened: list[OpenedUserKey] = []
    for epoch in doc.epochs_newest_first():
        gen = doc.generations[epoch]
        wrap = gen.wrap_for(device)
        if wrap is None or rsa_key_fingerprint(gen.public_key) in held:
            continue
        slot = (wrap.wrapped_key, gen.public_key)
        key = None if cache is None else cache.get(slot)
        if key is None:
            try:
                key = unwrap_user_key_from_device(
                    wrap.wrapped_key, device_private_key, gen.public_key
                )
            except CryptoError as exc:
                log.warning(
                    "User-Key epoch %s: wrap for device %s does not open: %s", epoch, device, exc
                )
                continue
            if cache is not None:
                cache[slot] = key
        opened.append(OpenedUserKey(epoch, gen.public_key, rsa_key_fingerprint(key), key))
    return opened


__all__ = [
    "USERKEY_DOC_ID_PREFIX",
    "USERKEY_FORM",
    "USERKEY_SCHEMA_VERSION",
    "USERKEY_TYPE",
    "USER_DIRECTORY_DB_ID",
    "DeviceWrap",
    "OpenedUserKey",
    "UserKeyDocument",
    "UserKeyGeneration",
    "add_device_wrap",
    "open_own_device_wraps",
    "parse_user_key_document",
    "pending_user_key_payload",
    "unwrap_user_key_from_device",
    "user_key_document_id",
    "wrap_user_key_for_device",
]
