"""Join responses: the tenant's public facts and its symmetric keys, sealed for one joiner (§7).

Two versions are written and read:

* **v3** (default): every key version is raw-RSA-OAEP-wrapped to the encryption key of the
  device that asked (``wrappedKey``). Only that device can open it, so the response itself needs
  no second secret and may travel over any channel. A device that cannot unwrap it gets
  :class:`JoinResponseDeviceMismatchError`.
* **v2** (legacy, with a one-time share password): every key version is an
  ``EncryptedPrivateKey`` under ``PBKDF2(sharePassword, salt || "doc:v2:<tenantId>:<keyId>")``,
  the same format as a KeyBag export; the password travels separately (phone, in person).

Object: ``{v, tenantId, adminSigningPublicKey, adminEncryptionPublicKey, username, serverUrl?,
adminUsername?, tenantLabel?, encryptedDocKeys: [{keyId, versions: [{createdAt?, wrappedKey |
encryptedKey}]}]}``. Opening decrypts every key before returning anything, so a bad response
never leaves a half-imported KeyBag behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mindood.crypto import rsa
from mindood.crypto._codec import b64decode, b64encode, optional_int
from mindood.crypto.aead import KEY_LENGTH
from mindood.crypto.pem import load_ed25519_public_pem, load_rsa_public_pem
from mindood.crypto.private_keys import (
    EncryptedPrivateKey,
    decrypt_private_key,
    encrypt_private_key,
)
from mindood.errors import (
    DecryptionError,
    InvalidJoinResponseError,
    JoinResponseDeviceMismatchError,
    KeyFormatError,
    SharePasswordRequiredError,
    UnsupportedUriVersionError,
    WrongPasswordError,
    WrongSharePasswordError,
)
from mindood.identity import UnlockedUserId
from mindood.keybag import KeyVersion, export_salt_string
from mindood.tenant.uri import JOIN_RESPONSE, check_version, decode_uri, encode_uri

PASSWORD_VERSION = 2
WRAPPED_VERSION = 3
MAX_TEXT_CHARS = 4_096
MAX_KEY_IDS = 64
MAX_VERSIONS_PER_KEY = 64
MAX_WRAPPED_KEY_BYTES = 2_048


@dataclass(frozen=True, slots=True)
class SealedKeyVersion:
    """One version of a symmetric key, sealed either for a device (v3) or a password (v2)."""

    created_at: int | None
    wrapped_key: bytes | None = None
    encrypted_key: EncryptedPrivateKey | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created_at is not None:
            out["createdAt"] = self.created_at
        if self.wrapped_key is not None:
            out["wrappedKey"] = b64encode(self.wrapped_key)
        if self.encrypted_key is not None:
            out["encryptedKey"] = self.encrypted_key.to_json()
        return out


@dataclass(frozen=True, slots=True)
class SealedDocKey:
    """Every version of one key id (newest first)."""

    key_id: str
    versions: tuple[SealedKeyVersion, ...]

    def to_json(self) -> dict[str, Any]:
        return {"keyId": self.key_id, "versions": [v.to_json() for v in self.versions]}


@dataclass(frozen=True, slots=True)
class OpenedKey:
    """A key version taken out of a response, ready for ``KeyBag.set``."""

    key_id: str
    key: bytes
    created_at: int | None


def _text(obj: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidJoinResponseError(f"join response {key!r} must be a non-empty string")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidJoinResponseError(f"join response {key!r} is too long")
    return value


def _pem(obj: Mapping[str, Any], key: str, *, signing: bool) -> str:
    value = _text(obj, key)
    assert value is not None
    try:
        if signing:
            load_ed25519_public_pem(value)
        else:
            load_rsa_public_pem(value)
    except KeyFormatError as exc:
        raise InvalidJoinResponseError(f"join response {key!r}: {exc}") from None
    return value


def _list(value: object, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise InvalidJoinResponseError(f"join response {what} must be a non-empty list")
    if len(value) > limit:
        raise InvalidJoinResponseError(f"join response has more than {limit} {what}")
    return value


def _parse_version(raw: object, version: int) -> SealedKeyVersion:
    if not isinstance(raw, Mapping):
        raise InvalidJoinResponseError("join response key version must be an object")
    try:
        created_at = optional_int(raw.get("createdAt"), "join response 'createdAt'")
        if version == WRAPPED_VERSION:
            wrapped = b64decode(raw.get("wrappedKey"), "join response 'wrappedKey'")
            if not 1 <= len(wrapped) <= MAX_WRAPPED_KEY_BYTES:
                raise InvalidJoinResponseError("join response 'wrappedKey' has a bad length")
            return SealedKeyVersion(created_at, wrapped_key=wrapped)
        encrypted = EncryptedPrivateKey.from_json(raw.get("encryptedKey"))
    except KeyFormatError as exc:
        raise InvalidJoinResponseError(str(exc)) from None
    return SealedKeyVersion(created_at, encrypted_key=encrypted)


def _parse_doc_key(raw: object, version: int) -> SealedDocKey:
    if not isinstance(raw, Mapping):
        raise InvalidJoinResponseError("join response 'encryptedDocKeys' items must be objects")
    key_id = _text(raw, "keyId")
    assert key_id is not None
    versions = _list(raw.get("versions"), "key versions", MAX_VERSIONS_PER_KEY)
    return SealedDocKey(key_id, tuple(_parse_version(v, version) for v in versions))


@dataclass(frozen=True, slots=True)
class JoinResponse:
    """An administrator's answer to a join request."""

    version: int
    tenant_id: str
    admin_signing_public_key: str
    admin_encryption_public_key: str
    username: str
    doc_keys: tuple[SealedDocKey, ...]
    server_url: str | None = None
    admin_username: str | None = None
    tenant_label: str | None = None

    def to_object(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "v": self.version,
            "tenantId": self.tenant_id,
            "adminSigningPublicKey": self.admin_signing_public_key,
            "adminEncryptionPublicKey": self.admin_encryption_public_key,
            "username": self.username,
        }
        for key, value in (
            ("serverUrl", self.server_url),
            ("adminUsername", self.admin_username),
            ("tenantLabel", self.tenant_label),
        ):
            if value is not None:
                out[key] = value
        out["encryptedDocKeys"] = [k.to_json() for k in self.doc_keys]
        return out

    def to_uri(self) -> str:
        return encode_uri(JOIN_RESPONSE, self.to_object())

    @classmethod
    def from_object(cls, obj: object) -> JoinResponse:
        if not isinstance(obj, Mapping):
            raise InvalidJoinResponseError("a join response must be a JSON object")
        version = check_version(obj)
        if version not in (PASSWORD_VERSION, WRAPPED_VERSION):
            raise UnsupportedUriVersionError(f"join response version {version} is not supported")
        doc_keys = _list(obj.get("encryptedDocKeys"), "encryptedDocKeys", MAX_KEY_IDS)
        parsed = tuple(_parse_doc_key(k, version) for k in doc_keys)
        if len({k.key_id for k in parsed}) != len(parsed):
            raise InvalidJoinResponseError("join response lists a key id twice")
        tenant_id, username = _text(obj, "tenantId"), _text(obj, "username")
        assert tenant_id is not None and username is not None
        return cls(
            version=version,
            tenant_id=tenant_id,
            admin_signing_public_key=_pem(obj, "adminSigningPublicKey", signing=True),
            admin_encryption_public_key=_pem(obj, "adminEncryptionPublicKey", signing=False),
            username=username,
            doc_keys=parsed,
            server_url=_text(obj, "serverUrl", required=False),
            admin_username=_text(obj, "adminUsername", required=False),
            tenant_label=_text(obj, "tenantLabel", required=False),
        )

    @classmethod
    def from_uri(cls, text: object) -> JoinResponse:
        return cls.from_object(decode_uri(text, expected_type=JOIN_RESPONSE).payload)

    @classmethod
    def parse(cls, value: object) -> JoinResponse:
        """Accept a response as URI text, object, or :class:`JoinResponse`."""
        if isinstance(value, JoinResponse):
            return value
        if isinstance(value, str):
            return cls.from_uri(value)
        return cls.from_object(value)

    def key_ids(self) -> list[str]:
        return [k.key_id for k in self.doc_keys]


# -- sealing (admin side) ---------------------------------------------------------------------
KeyVersions = Mapping[str, Sequence[KeyVersion]]


def seal_for_device(keys: KeyVersions, encryption_public_key: str) -> tuple[SealedDocKey, ...]:
    """v3: wrap every version with the joining device's RSA key."""
    public = load_rsa_public_pem(encryption_public_key)
    return tuple(
        SealedDocKey(
            key_id,
            tuple(
                SealedKeyVersion(v.created_at, wrapped_key=rsa.wrap_key(v.key, public))
                for v in versions
            ),
        )
        for key_id, versions in keys.items()
    )


def seal_with_password(
    tenant_id: str, keys: KeyVersions, share_password: str
) -> tuple[SealedDocKey, ...]:
    """v2: seal every version under the share password (one PBKDF2 each: call off-loop)."""
    return tuple(
        SealedDocKey(
            key_id,
            tuple(
                SealedKeyVersion(
                    v.created_at,
                    encrypted_key=encrypt_private_key(
                        v.key,
                        share_password,
                        export_salt_string(tenant_id, key_id),
                        created_at=v.created_at,
                    ),
                )
                for v in versions
            ),
        )
        for key_id, versions in keys.items()
    )


# -- opening (joiner side) --------------------------------------------------------------------
def _check_key(raw: bytes, key_id: str) -> bytes:
    if len(raw) != KEY_LENGTH:
        raise InvalidJoinResponseError(f"key {key_id!r} in the join response is not AES-256")
    return raw


def open_keys(
    response: JoinResponse, user: UnlockedUserId, share_password: str | None
) -> list[OpenedKey]:
    """Every key version in the response, decrypted (PBKDF2/RSA heavy: call off-loop)."""
    opened: list[OpenedKey] = []
    for doc_key in response.doc_keys:
        for version in doc_key.versions:
            raw = _open_version(response, doc_key.key_id, version, user, share_password)
            opened.append(
                OpenedKey(doc_key.key_id, _check_key(raw, doc_key.key_id), version.created_at)
            )
    return opened


def _open_version(
    response: JoinResponse,
    key_id: str,
    version: SealedKeyVersion,
    user: UnlockedUserId,
    share_password: str | None,
) -> bytes:
    if version.wrapped_key is not None:
        try:
            return user.unwrap_key(version.wrapped_key)
        except DecryptionError:
            raise JoinResponseDeviceMismatchError(
                "this join response is bound to a different device: its keys were wrapped for "
                "another encryption key than this user's"
            ) from None
    assert version.encrypted_key is not None
    if share_password is None:
        raise SharePasswordRequiredError("this join response needs the one-time share password")
    try:
        return decrypt_private_key(
            version.encrypted_key, share_password, export_salt_string(response.tenant_id, key_id)
        )
    except WrongPasswordError:
        raise WrongSharePasswordError(
            "the share password does not open this join response (wrong password, or the "
            "response was altered)"
        ) from None


def versions_by_key(
    key_ids: Iterable[str], versions_of: Callable[[str], Sequence[KeyVersion]]
) -> dict[str, list[KeyVersion]]:
    """``{key_id: versions}`` for the ids that have any, via ``versions_of(key_id)``."""
    out: dict[str, list[KeyVersion]] = {}
    for key_id in key_ids:
        versions = list(versions_of(key_id))
        if versions:
            out[key_id] = versions
    return out


@dataclass(frozen=True, slots=True)
class DeviceJoinBootstrap:
    """What a device needs to rebuild its join without the response: the grant keeps it,
    hybrid-RSA-sealed to the device (the reference's ``userKeyPairs[].joinResponseWrapped``,
    forwarded by its server's device discovery)."""

    username: str
    tenant_label: str | None = None
    admin_username: str | None = None

    def seal(self, encryption_public_key: str) -> str:
        body: dict[str, str] = {"username": self.username.strip()}
        for key, value in (
            ("tenantLabel", self.tenant_label),
            ("adminUsername", self.admin_username),
        ):
            if value and value.strip():
                body[key] = value.strip()
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        return rsa.encrypt_to_base64(text.encode("utf-8"), encryption_public_key)

    @classmethod
    def open(cls, wrapped: str, user: UnlockedUserId) -> DeviceJoinBootstrap:
        try:
            parsed = json.loads(rsa.decrypt_from_base64(wrapped, user.encryption_key))
        except (DecryptionError, KeyFormatError, ValueError) as exc:
            raise InvalidJoinResponseError(
                f"the device join bootstrap does not open: {exc}"
            ) from exc
        if not isinstance(parsed, dict):
            raise InvalidJoinResponseError("the device join bootstrap is not a JSON object")
        username = _text(parsed, "username")
        assert username is not None
        return cls(
            username=username.strip(),
            tenant_label=_text(parsed, "tenantLabel", required=False),
            admin_username=_text(parsed, "adminUsername", required=False),
        )
