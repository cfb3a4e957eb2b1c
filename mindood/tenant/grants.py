"""Grant documents: who may write, as fields of a ``$publicinfos`` directory document (§6.1, §6.2).

A grant names a user only by hash and lists the user's device key pairs: ``userKeyPairs`` (active)
and ``revokedUserKeyPairs`` (with ``revokedAt`` in ms). Revocation moves pairs from the first list
to the second, so the document keeps the full history a later trust decision may need (entries a
key signed before its revocation still count).

Everything trust needs (hashes, key pairs, ``revokedAt``) is readable with ``$publicinfos``; the
username itself is only in ``user_details_encrypted`` under the ``default`` key.

This module is pure: it turns document data into :class:`Grant` records and computes the field
updates for grant, append and revoke; the directory applies them inside ``change_doc``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from dataclasses import dataclass, field
from typing import Any

from mindood.crypto.pem import normalize_pem
from mindood.identity import PublicUserId
from mindood.tenant.hashing import USERNAME_HASH_VERSION, identity_hashes, username_hash

FORM = "useroperation"
TYPE_GRANT = "grantaccess"
DOC_ID_PREFIX = "grant_"
DEFAULT_KEY_ID = "default"


def grant_doc_id(v3_hash: str) -> str:
    """Deterministic doc id, so admins granting the same user offline converge on one document."""
    return DOC_ID_PREFIX + v3_hash


def plain(value: Any) -> Any:
    """A plain JSON-like copy of a (possibly live) document value."""
    if isinstance(value, str | bytes | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class KeyPair:
    """One device of a user: signing and encryption public keys, label, when added / revoked."""

    signing_public_key: str
    encryption_public_key: str | None
    label: str | None = None
    added_at: int | None = None
    revoked_at: int | None = None
    #: The stored object as read, so a rewrite keeps fields we do not interpret.
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def signing_key_id(self) -> str:
        """The signing PEM without whitespace: the form keys are compared in."""
        return normalize_pem(self.signing_public_key)

    @classmethod
    def from_json(cls, raw: object) -> KeyPair | None:
        """Read one pair; None when it has no usable signing key (a damaged item is skipped)."""
        if not isinstance(raw, Mapping):
            return None
        signing = raw.get("signingPublicKey")
        if not isinstance(signing, str) or not signing:
            return None
        encryption = raw.get("encryptionPublicKey")
        label = raw.get("label")
        return cls(
            signing_public_key=signing,
            encryption_public_key=encryption if isinstance(encryption, str) else None,
            label=label if isinstance(label, str) else None,
            added_at=int_or_none(raw.get("addedAt")),
            revoked_at=int_or_none(raw.get("revokedAt")),
            raw=dict(raw),
        )


def int_or_none(value: object) -> int | None:
    """A JSON integer (JS numbers may arrive as integral floats), else None: damage is skipped."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def text_or_none(value: object) -> str | None:
    """A non-empty JSON string, else None (a damaged optional field is skipped)."""
    return value if isinstance(value, str) and value else None


def string_list(value: object) -> list[str]:
    """The non-empty strings of a JSON array (anything else in it, or a non-array, is dropped)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return []
    return [v for v in value if isinstance(v, str) and v]


def _pairs(value: object) -> list[KeyPair]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        return []
    return [p for p in (KeyPair.from_json(v) for v in value) if p is not None]


def read_active_pairs(data: Mapping[str, Any]) -> list[KeyPair]:
    """Active pairs with the reference's precedence: ``userKeyPairs``, parallel lists, scalars.

    A higher form that is present but empty is authoritative (every device revoked), so stale
    mirrors in the lower forms are not resurrected.
    """
    if "userKeyPairs" in data:
        return _pairs(data.get("userKeyPairs"))
    if "userSigningPublicKeys" in data:
        signing = string_list(data.get("userSigningPublicKeys"))
        encryption = string_list(data.get("userEncryptionPublicKeys"))
        return [
            KeyPair(s, encryption[i] if i < len(encryption) else None)
            for i, s in enumerate(signing)
        ]
    scalar = data.get("userSigningPublicKey")
    if isinstance(scalar, str) and scalar:
        enc = data.get("userEncryptionPublicKey")
        return [KeyPair(scalar, enc if isinstance(enc, str) else None)]
    return []


@dataclass(frozen=True, slots=True)
class Grant:
    """A grant document as trust and lookups see it."""

    doc_id: str
    username_hash: str
    identity_hashes: frozenset[str]
    active: tuple[KeyPair, ...]
    revoked: tuple[KeyPair, ...]
    user_details_encrypted: str | None = None

    def names(self, candidates: Iterable[str]) -> bool:
        """True when one of ``candidates`` (a username's possible hashes) is this grant's user."""
        return self.username_hash in set(candidates)


def parse_grant(doc_id: str, data: Mapping[str, Any]) -> Grant | None:
    """The grant in a directory document, or None if the document is something else."""
    if data.get("form") != FORM or data.get("type") != TYPE_GRANT:
        return None
    user_hash = data.get("username_hash")
    if not isinstance(user_hash, str) or not user_hash:
        return None
    details = data.get("user_details_encrypted")
    return Grant(
        doc_id=doc_id,
        username_hash=user_hash,
        identity_hashes=frozenset(string_list(data.get("identity_hashes"))),
        active=tuple(read_active_pairs(data)),
        revoked=tuple(_pairs(data.get("revokedUserKeyPairs"))),
        user_details_encrypted=details if isinstance(details, str) else None,
    )


#: The device's join bootstrap on its key pair (sealed to the device; see ``DeviceJoinBootstrap``).
JOIN_BOOTSTRAP_FIELD = "joinResponseWrapped"


def key_pair_json(
    user: PublicUserId, label: str, now_ms: int, join_bootstrap: str | None = None
) -> dict[str, Any]:
    """A new ``userKeyPairs`` item for ``user``'s device."""
    pair: dict[str, Any] = {
        "signingPublicKey": user.signing_public_key,
        "encryptionPublicKey": user.encryption_public_key,
        "label": label,
        "addedAt": now_ms,
    }
    if join_bootstrap:
        pair[JOIN_BOOTSTRAP_FIELD] = join_bootstrap
    return pair


def new_grant_data(
    tenant_id: str,
    user: PublicUserId,
    label: str,
    details_encrypted: str,
    now_ms: int,
    join_bootstrap: str | None = None,
) -> dict[str, Any]:
    """The fields of a fresh grant document (no username in clear anywhere)."""
    data: dict[str, Any] = {
        "form": FORM,
        "type": TYPE_GRANT,
        "username_hash": username_hash(tenant_id, user.username),
        "username_hash_v": USERNAME_HASH_VERSION,
        "user_details_encrypted": details_encrypted,
        "user_details_encrypted_key": DEFAULT_KEY_ID,
        "identity_hashes": identity_hashes(tenant_id, user.username),
        "identity_hashes_v": 1,
    }
    data.update(key_pair_fields([key_pair_json(user, label, now_ms, join_bootstrap)], []))
    return data


def key_pair_fields(
    active: Sequence[Mapping[str, Any]], revoked: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """``userKeyPairs``, ``revokedUserKeyPairs`` and the mirrors older readers look at."""
    signing = [p["signingPublicKey"] for p in active]
    encryption = [p.get("encryptionPublicKey") for p in active]
    fields: dict[str, Any] = {
        "userKeyPairs": [dict(p) for p in active],
        "revokedUserKeyPairs": [dict(p) for p in revoked],
        "userSigningPublicKeys": signing,
        "userEncryptionPublicKeys": [e for e in encryption if isinstance(e, str)],
    }
    fields["userSigningPublicKey"] = signing[0] if signing else None
    fields["userEncryptionPublicKey"] = encryption[0] if encryption else None
    return fields


def _live_list(data: MutableMapping[str, Any], key: str) -> MutableSequence[Any]:
    """The list stored at ``key``, created empty if missing or not a list.

    Editing it in place (append, delete) rather than assigning a new list lets Automerge merge
    two admins' concurrent edits of one grant instead of keeping only one of the lists.
    """
    value = data.get(key)
    if isinstance(value, MutableSequence):
        return value
    data[key] = []
    stored = data[key]
    assert isinstance(stored, MutableSequence)
    return stored


def _signing_key_of(item: object) -> str | None:
    if isinstance(item, Mapping):
        value = item.get("signingPublicKey")
        if isinstance(value, str):
            return normalize_pem(value)
    return None


def _pair_dict(pair: KeyPair) -> dict[str, Any]:
    out: dict[str, Any] = {"signingPublicKey": pair.signing_public_key}
    if pair.encryption_public_key is not None:
        out["encryptionPublicKey"] = pair.encryption_public_key
    return out


def _active_list(data: MutableMapping[str, Any]) -> MutableSequence[Any]:
    """``userKeyPairs``, first converting a grant that only has the older parallel forms."""
    if "userKeyPairs" not in data:
        data["userKeyPairs"] = [_pair_dict(p) for p in read_active_pairs(data)]
    return _live_list(data, "userKeyPairs")


def _write_mirrors(data: MutableMapping[str, Any]) -> None:
    active = [plain(p) for p in _active_list(data)]
    mirrors = key_pair_fields([p for p in active if _signing_key_of(p)], [])
    del mirrors["userKeyPairs"], mirrors["revokedUserKeyPairs"]
    for key, value in mirrors.items():
        if key not in data or plain(data[key]) != value:
            data[key] = value


def add_key_pair(data: MutableMapping[str, Any], pair: Mapping[str, Any]) -> bool:
    """Append a device to a grant (re-granting a revoked key reactivates it).

    An active device approved again only takes the new join bootstrap, if any. Returns False
    when nothing changes.
    """
    key = normalize_pem(str(pair["signingPublicKey"]))
    active = _active_list(data)
    for item in active:
        if _signing_key_of(item) == key:
            bootstrap = pair.get(JOIN_BOOTSTRAP_FIELD)
            if not bootstrap or item.get(JOIN_BOOTSTRAP_FIELD) == bootstrap:
                return False
            item[JOIN_BOOTSTRAP_FIELD] = bootstrap
            return True
    revoked = _live_list(data, "revokedUserKeyPairs")
    for index in reversed(range(len(revoked))):
        if _signing_key_of(revoked[index]) == key:
            del revoked[index]
    active.append(dict(pair))
    _write_mirrors(data)
    return True


def revoke_key_pairs(
    data: MutableMapping[str, Any], now_ms: int, signing_keys: Iterable[str] | None = None
) -> int:
    """Move active pairs (all, or those with the given signing keys) to the revoked list.

    Returns how many were revoked; 0 means the document needs no change.
    """
    only = None if signing_keys is None else {normalize_pem(k) for k in signing_keys}
    active = _active_list(data)
    moving = [
        i
        for i, item in enumerate(active)
        if _signing_key_of(item) is not None and (only is None or _signing_key_of(item) in only)
    ]
    if not moving:
        return 0
    revoked = _live_list(data, "revokedUserKeyPairs")
    for index in moving:
        revoked.append({**plain(active[index]), "revokedAt": now_ms})
    for index in reversed(moving):
        del active[index]
    _write_mirrors(data)
    return len(moving)
