"""Join requests: a new user's public keys, sent to an administrator (§2, reference §7).

Object form (verbose): ``{v: 1|2, username?, signingPublicKey, encryptionPublicKey, label?,
userPublicKey?}`` with PEM texts; ``v: 1`` requires ``username``.
URI form prefers the compact ``v: 3``: ``{v: 3, s, e, u?, l?, k?}`` where ``s``/``e``/``k`` are
the bare base64 SPKI bodies, which keeps a QR code small. The decoder rebuilds the reference's
64-column PEM text. Because the directory compares PEMs as exact strings, a PEM that the rebuild
would not reproduce byte for byte is never stripped: such a request goes out verbose instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mindood.crypto._codec import b64decode, b64encode
from mindood.crypto.pem import (
    is_canonical_pem,
    load_ed25519_public_pem,
    load_rsa_public_pem,
    pem_to_spki_der,
    spki_der_to_pem,
)
from mindood.errors import InvalidJoinRequestError, KeyFormatError, UnsupportedUriVersionError
from mindood.identity import PrivateUserId, PublicUserId
from mindood.tenant.uri import JOIN_REQUEST, check_version, decode_uri, encode_uri

MAX_USERNAME_CHARS = 512
MAX_LABEL_CHARS = 256
MAX_KEY_BODY_CHARS = 8_192
COMPACT_VERSION = 3

_KEY_BODY = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def _optional_text(obj: Mapping[str, Any], key: str, limit: int) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidJoinRequestError(f"join request {key!r} must be a non-empty string")
    if len(value) > limit:
        raise InvalidJoinRequestError(f"join request {key!r} is longer than {limit} characters")
    return value


def _check_pem(value: object, key: str, *, signing: bool) -> str:
    if not isinstance(value, str):
        raise InvalidJoinRequestError(f"join request {key!r} must be a PEM string")
    try:
        if signing:
            load_ed25519_public_pem(value)
        else:
            load_rsa_public_pem(value)
    except KeyFormatError as exc:
        raise InvalidJoinRequestError(f"join request {key!r}: {exc}") from None
    return value


def _pem_from_body(value: object, key: str, *, signing: bool) -> str:
    if not isinstance(value, str) or not _KEY_BODY.match(value):
        raise InvalidJoinRequestError(f"join request {key!r} must be bare base64 key material")
    if len(value) > MAX_KEY_BODY_CHARS:
        raise InvalidJoinRequestError(f"join request {key!r} is too long")
    try:
        der = b64decode(value, f"join request {key!r}")
    except KeyFormatError as exc:
        raise InvalidJoinRequestError(str(exc)) from None
    if b64encode(der) != value:
        raise InvalidJoinRequestError(f"join request {key!r} is not canonical base64")
    return _check_pem(spki_der_to_pem(der), key, signing=signing)


def _body_of(pem: str) -> str:
    return b64encode(pem_to_spki_der(pem))


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """What a joining device sends: its two public keys, and optionally name and device label."""

    signing_public_key: str
    encryption_public_key: str
    username: str | None = None
    label: str | None = None
    user_public_key: str | None = None

    @classmethod
    def for_user(
        cls,
        user: PublicUserId,
        *,
        label: str | None = None,
        user_public_key: str | None = None,
    ) -> JoinRequest:
        """The request of ``user``'s device (no secrets in it), with its User-Key if given."""
        request = cls(
            user.signing_public_key,
            user.encryption_public_key,
            user.username,
            label,
            user_public_key,
        )
        return cls.from_object(request.to_object())  # validates limits once, the same way

    @classmethod
    def for_identity(cls, user: PrivateUserId, *, label: str | None = None) -> JoinRequest:
        """The request of this device, as the reference's ``createJoinRequest`` builds it.

        It carries the identity's User-Key public half when there is one (the approver
        publishes it and wraps ``default`` to it); a new person's first device needs one, so
        call :func:`mindood.identity.ensure_user_key_pair` first.
        """
        trimmed = label.strip() if label is not None else ""
        return cls.for_user(
            user.public, label=trimmed or None, user_public_key=user.user_key_public_key
        )

    # -- object (verbose) form ---------------------------------------------------------------
    def to_object(self) -> dict[str, Any]:
        """The verbose JSON object: ``v: 1`` with a username, ``v: 2`` without."""
        out: dict[str, Any] = {"v": 1 if self.username is not None else 2}
        if self.username is not None:
            out["username"] = self.username
        out["signingPublicKey"] = self.signing_public_key
        out["encryptionPublicKey"] = self.encryption_public_key
        if self.label is not None:
            out["label"] = self.label
        if self.user_public_key is not None:
            out["userPublicKey"] = self.user_public_key
        return out

    @classmethod
    def from_object(cls, obj: object) -> JoinRequest:
        """Validate a request object of any supported version (1, 2 or compact 3)."""
        if not isinstance(obj, Mapping):
            raise InvalidJoinRequestError("a join request must be a JSON object")
        version = check_version(obj)
        if version == COMPACT_VERSION:
            return cls._from_compact(obj)
        if version not in (1, 2):
            raise UnsupportedUriVersionError(f"join request version {version} is not supported")
        username = _optional_text(obj, "username", MAX_USERNAME_CHARS)
        if version == 1 and username is None:
            raise InvalidJoinRequestError("a version 1 join request needs a 'username'")
        user_key = obj.get("userPublicKey")
        return cls(
            signing_public_key=_check_pem(
                obj.get("signingPublicKey"), "signingPublicKey", signing=True
            ),
            encryption_public_key=_check_pem(
                obj.get("encryptionPublicKey"), "encryptionPublicKey", signing=False
            ),
            username=username,
            label=_optional_text(obj, "label", MAX_LABEL_CHARS),
            user_public_key=None
            if user_key is None
            else _check_pem(user_key, "userPublicKey", signing=False),
        )

    # -- compact (v3) form -------------------------------------------------------------------
    def compactable(self) -> bool:
        """True when every PEM survives the bare-body round trip byte for byte."""
        pems = [self.signing_public_key, self.encryption_public_key, self.user_public_key]
        return all(p is None or is_canonical_pem(p) for p in pems)

    def to_compact(self) -> dict[str, Any]:
        """The ``v: 3`` object; only valid when :meth:`compactable`."""
        out: dict[str, Any] = {
            "v": COMPACT_VERSION,
            "s": _body_of(self.signing_public_key),
            "e": _body_of(self.encryption_public_key),
        }
        if self.username is not None:
            out["u"] = self.username
        if self.label is not None:
            out["l"] = self.label
        if self.user_public_key is not None:
            out["k"] = _body_of(self.user_public_key)
        return out

    @classmethod
    def _from_compact(cls, obj: Mapping[str, Any]) -> JoinRequest:
        user_key = obj.get("k")
        return cls(
            signing_public_key=_pem_from_body(obj.get("s"), "s", signing=True),
            encryption_public_key=_pem_from_body(obj.get("e"), "e", signing=False),
            username=_optional_text(obj, "u", MAX_USERNAME_CHARS),
            label=_optional_text(obj, "l", MAX_LABEL_CHARS),
            user_public_key=None
            if user_key is None
            else _pem_from_body(user_key, "k", signing=False),
        )

    # -- URI form ----------------------------------------------------------------------------
    def to_uri(self) -> str:
        """``mdb://join-request/...``: compact when lossless, verbose otherwise."""
        payload = self.to_compact() if self.compactable() else self.to_object()
        return encode_uri(JOIN_REQUEST, payload)

    @classmethod
    def from_uri(cls, text: object) -> JoinRequest:
        """Decode a ``mdb://join-request/...`` URI (any supported version)."""
        return cls.from_object(decode_uri(text, expected_type=JOIN_REQUEST).payload)

    @classmethod
    def parse(cls, value: object) -> JoinRequest:
        """Accept a request as URI text, object, or :class:`JoinRequest`."""
        if isinstance(value, JoinRequest):
            return value
        if isinstance(value, str):
            return cls.from_uri(value)
        return cls.from_object(value)

    def public_user(self, username: str | None = None) -> PublicUserId:
        """This device as a :class:`PublicUserId`; ``username`` overrides the request's."""
        name = username or self.username
        if not name:
            raise InvalidJoinRequestError("the join request carries no username; pass one")
        return PublicUserId(name, self.signing_public_key, self.encryption_public_key)


__all__ = ["COMPACT_VERSION", "JoinRequest"]
