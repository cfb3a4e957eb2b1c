"""Key distributions: who holds which versions of a symmetric key (accesscontrol.md §13).

One admin-signed, ``$publicinfos``-encrypted directory document per key id,
``acl_keydistribution_<encoded keyId>``, always written as the full desired state::

    {form: "accesscontrol", type: "keydistribution", keyId,
     keyVersions: [{createdAt, fingerprint: sha256hex(raw key)}],
     preparedByPublicKey: signing PEM of whoever wrapped the material,
     title_encrypted, title_encrypted_key: "default", comment_encrypted?, comment_encrypted_key?,
     pushto_users_hashes: [v3 username hash], pushto_users_encrypted, pushto_users_encrypted_key,
     pushto_users_keys: {"<usernamehash>|<RSA key fingerprint>": {"<version fp>": wrap}},
     pullfrom_users_hashes: [...], pullfrom_users_encrypted, pullfrom_users_encrypted_key}

``wrap`` is base64 of a *hybrid* RSA blob (:func:`mindood.crypto.rsa.encrypt`) of the raw key,
addressed to the person's User-Key (or, for a person without one, to each device key). The
``*_encrypted`` fields are payload-encrypted (:mod:`mindood.crypto.aead`) under ``default``,
base64: the title as UTF-8 text, the name lists as JSON arrays, so a relay holding only
``$publicinfos`` sees hashes and wraps but no names.

A recipient trusts nothing it unwraps until the bytes hash to the manifest's fingerprint;
``pullfrom`` wins over ``pushto`` (a revoked person drops the whole key id).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from mindood.crypto import rsa
from mindood.crypto._codec import b64decode, b64encode, dumps_json, loads_json, utf8
from mindood.crypto.aead import decrypt_with_any, encrypt_payload
from mindood.crypto.fingerprint import key_version_fingerprint, rsa_key_fingerprint
from mindood.errors import CryptoError, InvalidKeyDistributionError, KeyFormatError
from mindood.keybag import KeyVersion
from mindood.tenant.grants import int_or_none, string_list, text_or_none
from mindood.tenant.hashing import encode_id_component

log = logging.getLogger("mindood.tenant.keydistribution")

KEY_DISTRIBUTION_FORM = "accesscontrol"
KEY_DISTRIBUTION_TYPE = "keydistribution"
KEY_DISTRIBUTION_PREFIX = "acl_keydistribution_"
#: Key ids no distribution may govern (every member and the server must keep them).
PROTECTED_KEY_IDS = frozenset({"$publicinfos"})
#: Key id the display fields are encrypted with.
FIELD_KEY_ID = "default"
ENTRY_SEPARATOR = "|"

#: version fingerprint -> base64 wrap, for one recipient key.
WrappedVersions = Mapping[str, str]


def key_distribution_doc_id(key_id: str) -> str:
    """The singleton directory document governing ``key_id``."""
    return KEY_DISTRIBUTION_PREFIX + encode_id_component(key_id)


def is_key_distribution_doc_id(doc_id: str) -> bool:
    """True for a key-distribution document id."""
    return doc_id.startswith(KEY_DISTRIBUTION_PREFIX)


@dataclass(frozen=True, slots=True)
class KeyVersionRef:
    """One distributed version in the manifest: when it was made, and the hash of its bytes."""

    created_at: int
    fingerprint: str

    def to_json(self) -> dict[str, Any]:
        """The manifest item."""
        return {"createdAt": self.created_at, "fingerprint": self.fingerprint}


def key_version_refs(versions: Sequence[KeyVersion]) -> list[KeyVersionRef]:
    """The manifest of KeyBag versions (a missing ``createdAt`` counts as 0, as the reference)."""
    return [KeyVersionRef(v.created_at or 0, key_version_fingerprint(v.key)) for v in versions]


def wrap_key_versions(
    versions: Sequence[KeyVersion], public_key: str | RSAPublicKey
) -> dict[str, str]:
    """Every version hybrid-RSA-wrapped to ``public_key``: ``{version fingerprint: base64}``."""
    return {
        key_version_fingerprint(v.key): rsa.encrypt_to_base64(v.key, public_key) for v in versions
    }


@dataclass(frozen=True, slots=True)
class PushRecipient:
    """A person who receives the key, with wraps per recipient key fingerprint."""

    username: str
    username_hash: str
    devices: Mapping[str, WrappedVersions]


@dataclass(frozen=True, slots=True)
class PullRecipient:
    """A person whose KeyBag must drop the key."""

    username: str
    username_hash: str


def wrap_for_user_key(
    username: str, username_hash: str, user_public_key: str, versions: Sequence[KeyVersion]
) -> PushRecipient:
    """Wrap every version to the person's User-Key (one entry per person).

    The entry is named by the fingerprint of the PEM actually wrapped to, never by a document's
    ``fingerprint`` field, so the recipient's key always opens the entry that carries its name.
    """
    wraps = wrap_key_versions(versions, user_public_key)
    return PushRecipient(username, username_hash, {rsa_key_fingerprint(user_public_key): wraps})


def wrap_for_devices(
    username: str,
    username_hash: str,
    device_public_keys: Iterable[str],
    versions: Sequence[KeyVersion],
) -> PushRecipient:
    """Wrap every version to each device key: for a person without a User-Key."""
    devices = {
        rsa_key_fingerprint(pem): wrap_key_versions(versions, pem) for pem in device_public_keys
    }
    if not devices:
        raise InvalidKeyDistributionError(f"{username!r} has no device to wrap the key to")
    return PushRecipient(username, username_hash, devices)


def fold_pushto(pushto: Sequence[PushRecipient]) -> dict[str, dict[str, str]]:
    """The flat ``pushto_users_keys`` map: ``"<hash>|<fingerprint>" -> wraps``."""
    return {
        f"{p.username_hash}{ENTRY_SEPARATOR}{fp}": dict(wraps)
        for p in pushto
        for fp, wraps in p.devices.items()
    }


def validate_key_distribution(
    key_id: str,
    key_versions: Sequence[KeyVersionRef],
    pushto_users_hashes: Sequence[str],
    pullfrom_users_hashes: Sequence[str],
    pushto_users_keys: Mapping[str, WrappedVersions],
) -> None:
    """The structural invariants a distribution must hold before it is published.

    Non-empty, unprotected key id; a non-empty manifest without duplicates; disjoint push and
    pull sets; every wrap entry covering exactly the manifest's versions (so a recipient can
    read data under any distributed version). Raises :class:`InvalidKeyDistributionError`.
    """
    if not isinstance(key_id, str) or not key_id:
        raise InvalidKeyDistributionError("a key distribution needs a non-empty key id")
    if key_id in PROTECTED_KEY_IDS:
        raise InvalidKeyDistributionError(f"the key id {key_id!r} cannot be distributed")
    fingerprints = [v.fingerprint for v in key_versions]
    if not fingerprints:
        raise InvalidKeyDistributionError("a key distribution needs at least one key version")
    if any(not fp for fp in fingerprints):
        raise InvalidKeyDistributionError("every key version needs a fingerprint")
    manifest = set(fingerprints)
    if len(manifest) != len(fingerprints):
        raise InvalidKeyDistributionError("the key version manifest lists a version twice")
    if set(pushto_users_hashes) & set(pullfrom_users_hashes):
        raise InvalidKeyDistributionError("a person cannot be both in pushto and in pullfrom")
    for entry, wraps in pushto_users_keys.items():
        if set(wraps) != manifest:
            raise InvalidKeyDistributionError(
                f"wrap entry {entry!r} covers {len(wraps)} version(s), not exactly the "
                f"{len(manifest)} of the manifest"
            )


def encrypt_text_field(key: bytes, text: str) -> str:
    """A ``*_encrypted`` value: payload encryption of the UTF-8 text, base64."""
    return b64encode(encrypt_payload(key, utf8(text)))


def decrypt_text_field(data: Mapping[str, Any], name: str, keys: Sequence[bytes]) -> str | None:
    """The text of ``<name>`` decrypted with ``keys`` (the versions of the companion
    ``<name>_key``, usually ``default``); None when absent or unreadable."""
    blob = data.get(name)
    if not isinstance(blob, str) or not keys:
        return None
    try:
        return decrypt_with_any(keys, b64decode(blob, name)).decode("utf-8", "replace")
    except CryptoError:
        return None


def decrypt_name_list(
    data: Mapping[str, Any], name: str, keys: Sequence[bytes]
) -> list[str] | None:
    """A decrypted ``pushto_users_encrypted``/``pullfrom_users_encrypted`` list, or None."""
    text = decrypt_text_field(data, name, keys)
    if text is None:
        return None
    try:
        value = loads_json(text, name)
    except KeyFormatError:
        return None
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else None


def key_distribution_fields(
    *,
    key_id: str,
    key_versions: Sequence[KeyVersionRef],
    prepared_by_public_key: str,
    pushto: Sequence[PushRecipient],
    pullfrom: Sequence[PullRecipient],
    default_key: bytes,
    title: str | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """Every field of the document, validated, display fields encrypted with ``default_key``.

    ``title`` defaults to the key id, as in the reference. Apply with
    :func:`apply_key_distribution` so a dropped comment is also removed from the document.
    """
    pushto_keys = fold_pushto(pushto)
    push_hashes = [p.username_hash for p in pushto]
    pull_hashes = [p.username_hash for p in pullfrom]
    validate_key_distribution(key_id, key_versions, push_hashes, pull_hashes, pushto_keys)
    fields: dict[str, Any] = {
        "form": KEY_DISTRIBUTION_FORM,
        "type": KEY_DISTRIBUTION_TYPE,
        "keyId": key_id,
        "keyVersions": [v.to_json() for v in key_versions],
        "preparedByPublicKey": prepared_by_public_key,
        "title_encrypted": encrypt_text_field(default_key, key_id if title is None else title),
        "title_encrypted_key": FIELD_KEY_ID,
    }
    if comment:
        fields["comment_encrypted"] = encrypt_text_field(default_key, comment)
        fields["comment_encrypted_key"] = FIELD_KEY_ID
    fields.update(
        {
            "pushto_users_hashes": push_hashes,
            "pushto_users_encrypted": encrypt_text_field(
                default_key, dumps_json([p.username for p in pushto]).decode("ascii")
            ),
            "pushto_users_encrypted_key": FIELD_KEY_ID,
            "pushto_users_keys": pushto_keys,
            "pullfrom_users_hashes": pull_hashes,
            "pullfrom_users_encrypted": encrypt_text_field(
                default_key, dumps_json([p.username for p in pullfrom]).decode("ascii")
            ),
            "pullfrom_users_encrypted_key": FIELD_KEY_ID,
        }
    )
    return fields


def apply_key_distribution(data: MutableMapping[str, Any], fields: Mapping[str, Any]) -> None:
    """Write :func:`key_distribution_fields` into a (live) document: full desired state."""
    for name, value in fields.items():
        data[name] = value
    if "comment_encrypted" not in fields:
        for name in ("comment_encrypted", "comment_encrypted_key"):
            if name in data:
                del data[name]


@dataclass(frozen=True, slots=True)
class KeyDistribution:
    """A parsed key-distribution document (the fields access decisions read)."""

    key_id: str
    key_versions: tuple[KeyVersionRef, ...]
    pushto_users_hashes: tuple[str, ...]
    pullfrom_users_hashes: tuple[str, ...]
    pushto_users_keys: Mapping[str, WrappedVersions]
    prepared_by_public_key: str | None = None

    def entries_for(self, username_hashes: Iterable[str]) -> dict[str, WrappedVersions]:
        """The ``pushto_users_keys`` entries whose hash part is one of ``username_hashes``."""
        mine = set(username_hashes)
        return {
            entry: wraps
            for entry, wraps in self.pushto_users_keys.items()
            if entry.split(ENTRY_SEPARATOR, 1)[0] in mine
        }


def _version_refs(value: object) -> tuple[KeyVersionRef, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    refs = []
    for item in value:
        if isinstance(item, Mapping) and isinstance(item.get("fingerprint"), str):
            refs.append(KeyVersionRef(int_or_none(item.get("createdAt")) or 0, item["fingerprint"]))
    return tuple(refs)


def _wrap_map(value: object) -> dict[str, dict[str, str]]:
    if not isinstance(value, Mapping):
        return {}
    out: dict[str, dict[str, str]] = {}
    for entry, wraps in value.items():
        if isinstance(wraps, Mapping):
            out[str(entry)] = {str(k): v for k, v in wraps.items() if isinstance(v, str)}
    return out


def parse_key_distribution(data: Mapping[str, Any]) -> KeyDistribution | None:
    """The distribution in ``data``, or None for another kind of document.

    Lenient like the reference's directory cache: damaged manifest items, hashes and wraps are
    dropped, never fatal, so one bad field does not cost everyone the key.
    """
    if data.get("type") != KEY_DISTRIBUTION_TYPE:
        return None
    key_id = text_or_none(data.get("keyId"))
    if key_id is None:
        return None
    return KeyDistribution(
        key_id=key_id,
        key_versions=_version_refs(data.get("keyVersions")),
        pushto_users_hashes=tuple(string_list(data.get("pushto_users_hashes"))),
        pullfrom_users_hashes=tuple(string_list(data.get("pullfrom_users_hashes"))),
        pushto_users_keys=_wrap_map(data.get("pushto_users_keys")),
        prepared_by_public_key=text_or_none(data.get("preparedByPublicKey")),
    )


@dataclass(frozen=True, slots=True)
class DeliveredVersion:
    """A key version unwrapped and checked against the manifest."""

    key: bytes = field(repr=False)
    created_at: int
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one distribution means for one person."""

    key_id: str
    #: In ``pullfrom``: the KeyBag must drop this key id (wins over ``pushto``).
    revoked: bool
    #: In ``pushto``.
    addressed: bool
    #: The versions that opened and matched the manifest, in manifest order.
    versions: tuple[DeliveredVersion, ...] = ()
    #: Why versions addressed to the person could not be delivered (empty when all were).
    problems: tuple[str, ...] = ()


def _try_keys(
    wrapped: str, keys: Sequence[RSAPrivateKey], addressed_to: str
) -> tuple[bytes | None, str]:
    # The entry names the key it is for; try that one first, then the rest (the name may lie).
    ordered = sorted(keys, key=lambda k: rsa_key_fingerprint(k) != addressed_to)
    reasons = []
    for key in ordered:
        try:
            return rsa.decrypt_from_base64(wrapped, key), ""
        except CryptoError as exc:
            reasons.append(str(exc))
    return None, "; ".join(reasons) or "no private key to try"


def keys_for_recipient(
    dist: KeyDistribution,
    username_hashes: Iterable[str],
    private_keys: Sequence[RSAPrivateKey],
) -> Delivery:
    """The key versions ``dist`` delivers to the person with these hash candidates.

    ``private_keys`` are the person's unlocked keys that wraps may be addressed to: every
    User-Key generation this device holds, and the device encryption key. Each unwrapped key
    must hash to its manifest fingerprint; a mismatch is skipped and logged.
    """
    mine = set(username_hashes)
    if dist.key_id in PROTECTED_KEY_IDS:
        return Delivery(dist.key_id, False, False, problems=("protected key id",))
    if mine & set(dist.pullfrom_users_hashes):
        return Delivery(dist.key_id, revoked=True, addressed=False)
    if not mine & set(dist.pushto_users_hashes):
        return Delivery(dist.key_id, revoked=False, addressed=False)
    entries = dist.entries_for(mine)
    problems: list[str] = []
    if not entries:
        problems.append("listed in pushto but no wrap entry carries the person's hash")
    collected: dict[str, DeliveredVersion] = {}
    for entry, wraps in entries.items():
        addressed_to = entry.split(ENTRY_SEPARATOR, 1)[-1]
        for ref in dist.key_versions:
            if ref.fingerprint in collected:
                continue
            wrapped = wraps.get(ref.fingerprint)
            if wrapped is None:
                problems.append(f"{entry}: no wrap for version {ref.fingerprint}")
                continue
            raw, reason = _try_keys(wrapped, private_keys, addressed_to)
            if raw is None:
                problems.append(f"{entry}: version {ref.fingerprint} does not open: {reason}")
                continue
            actual = key_version_fingerprint(raw)
            if actual != ref.fingerprint:
                reason = f"{entry}: version {ref.fingerprint} unwraps to key {actual}; rejected"
                log.warning("key distribution %s: %s", dist.key_id, reason)
                problems.append(reason)
                continue
            collected[ref.fingerprint] = DeliveredVersion(raw, ref.created_at, actual)
    versions = tuple(
        collected[r.fingerprint] for r in dist.key_versions if r.fingerprint in collected
    )
    if not versions:
        log.warning("key distribution %s: nothing delivered: %s", dist.key_id, " | ".join(problems))
    return Delivery(dist.key_id, False, True, versions, tuple(problems))


__all__ = [
    "KEY_DISTRIBUTION_FORM",
    "KEY_DISTRIBUTION_PREFIX",
    "KEY_DISTRIBUTION_TYPE",
    "PROTECTED_KEY_IDS",
    "DeliveredVersion",
    "Delivery",
    "KeyDistribution",
    "KeyVersionRef",
    "PullRecipient",
    "PushRecipient",
    "apply_key_distribution",
    "decrypt_name_list",
    "decrypt_text_field",
    "encrypt_text_field",
    "fold_pushto",
    "is_key_distribution_doc_id",
    "key_distribution_doc_id",
    "key_distribution_fields",
    "key_version_refs",
    "keys_for_recipient",
    "parse_key_distribution",
    "validate_key_distribution",
    "wrap_for_devices",
    "wrap_for_user_key",
    "wrap_key_versions",
]
