"""Username and group-name hashing for the directory (reference-formats §6.3, §6.4).

The directory never stores a username in clear: grants and group memberships name users by a
SHA-256 hash, so a relay holding only ``$publicinfos`` can check memberships without learning
who anyone is. Three hash versions exist in the wild; we write v3 and match all three:

* v1 ``sha256(lower(username))``
* v2 ``sha256(tenantId + "/" + lower(username))``
* v3 ``sha256(tenantId + "/" + lower(NFKC(username)))`` (written; NFKC makes visually equal
  names, e.g. full-width letters, hash alike)

Lower-casing uses Python's ``str.lower``, which applies the same default Unicode case mapping as
JavaScript's ``toLowerCase``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from mindood.errors import InvalidNameError

#: Hash version written into new grants (``username_hash_v``).
USERNAME_HASH_VERSION = 3
#: Longest username or group name accepted.
MAX_NAME_LENGTH = 4_096

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidNameError(f"{what} must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    return name


def normalize_name(name: str) -> str:
    """NFKC, then lower case: the form that is hashed (v3) and the canonical group name."""
    return unicodedata.normalize("NFKC", _check_name(name, "name")).lower()


def username_hash_v1(username: str) -> str:
    """Legacy v1 hash: no tenant binding, no normalisation."""
    return _sha256_hex(_check_name(username, "username").lower())


def username_hash_v2(tenant_id: str, username: str) -> str:
    """Legacy v2 hash: tenant-bound, no normalisation."""
    return _sha256_hex(f"{tenant_id}/{_check_name(username, 'username').lower()}")


def username_hash(tenant_id: str, username: str) -> str:
    """The v3 hash every new directory document carries."""
    return _sha256_hex(f"{tenant_id}/{normalize_name(username)}")


def is_raw_hash(value: str) -> bool:
    """True for a 64-char lowercase hex string (a caller may pass a hash instead of a name)."""
    return bool(_HEX64.match(value))


def username_hash_candidates(tenant_id: str, username: str) -> frozenset[str]:
    """Every hash a stored grant or membership of ``username`` may carry (v1, v2, v3, raw)."""
    candidates = {
        username_hash_v1(username),
        username_hash_v2(tenant_id, username),
        username_hash(tenant_id, username),
    }
    if is_raw_hash(username):
        candidates.add(username)
    return frozenset(candidates)


def dn_variants(username: str) -> list[str]:
    """A name and its wildcard forms: ``CN=A/OU=B/O=C``, ``*/OU=B/O=C``, ``*/O=C``, ``*``.

    Grants list the hashes of all of them (``identity_hashes``) so an access rule written for a
    whole organisation unit (``*/O=C``) matches without knowing the member's name.
    """
    parts = _check_name(username, "username").split("/")
    variants = [username]
    variants.extend("*/" + "/".join(parts[i:]) for i in range(1, len(parts)))
    variants.append("*")
    return list(dict.fromkeys(variants))


def identity_hashes(tenant_id: str, username: str) -> list[str]:
    """v1, v2 and v3 hashes of every DN variant, deduplicated, in a stable order."""
    out: list[str] = []
    for variant in dn_variants(username):
        out.extend(
            (
                username_hash_v1(variant),
                username_hash_v2(tenant_id, variant),
                username_hash(tenant_id, variant),
            )
        )
    return list(dict.fromkeys(out))


def encode_id_component(value: str) -> str:
    """Make any text safe inside a custom document id (``encodeAclIdComponent``, §6.3).

    ``[a-z0-9]`` stays; every other UTF-8 byte becomes ``_`` + two lowercase hex digits, so the
    mapping is injective and the result fits ``^[a-z0-9_]*$``.
    """
    out: list[str] = []
    for byte in value.encode("utf-8", "surrogatepass"):
        char = chr(byte)
        if "a" <= char <= "z" or "0" <= char <= "9":
            out.append(char)
        else:
            out.append(f"_{byte:02x}")
    return "".join(out)
