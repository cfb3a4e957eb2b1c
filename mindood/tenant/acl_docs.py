"""The tenant-wide documents the reference's createTenant writes next to the grants (§6).

* ``acl_defaultpolicy`` (``form: "accesscontrol"``, ``type: "defaultpolicy"``): the tenant's
  access policy. mindood reads one field of it, ``requireMetadataSignatureSince``: the floor
  from which every entry must carry a ``metadataSignature`` (``store.signing``).
* ``tenantsetup``: the tenant's label (``label_encrypted``) and its administrators, each with
  ``username_encrypted`` and ``userKeyPairs``, so a member's app can show who runs the tenant.

Both are ``$publicinfos``-encrypted, admin-signed and have fixed ids, so admin devices working
offline converge on one document each. This module is pure: builders and readers of the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ACCESS_CONTROL_FORM = "accesscontrol"
DEFAULT_POLICY_DOC_ID = "acl_defaultpolicy"
DEFAULT_POLICY_TYPE = "defaultpolicy"
TENANT_SETUP_DOC_ID = "tenantsetup"


@dataclass(frozen=True, slots=True)
class DefaultPolicy:
    """What mindood takes from ``acl_defaultpolicy``; the rest is kept for other readers."""

    doc_id: str
    require_metadata_signature_since: int | None
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TenantSetup:
    """The ``tenantsetup`` document as stored (names stay encrypted under ``default``)."""

    doc_id: str
    data: Mapping[str, Any]


def default_policy_fields(require_metadata_signature_since: int) -> dict[str, Any]:
    """The policy createTenant writes: access checks off, metadata signatures required."""
    return {
        "form": ACCESS_CONTROL_FORM,
        "type": DEFAULT_POLICY_TYPE,
        "disableAllAccessChecksAndPolicies": True,
        "requireMetadataSignatureSince": require_metadata_signature_since,
    }


def parse_default_policy(doc_id: str, data: Mapping[str, Any]) -> DefaultPolicy | None:
    if doc_id != DEFAULT_POLICY_DOC_ID or data.get("form") != ACCESS_CONTROL_FORM:
        return None
    since = data.get("requireMetadataSignatureSince")
    floor = None
    if isinstance(since, int | float) and not isinstance(since, bool) and since >= 0:
        floor = int(since)
    return DefaultPolicy(doc_id, floor, dict(data))


def parse_tenant_setup(doc_id: str, data: Mapping[str, Any]) -> TenantSetup | None:
    if doc_id != TENANT_SETUP_DOC_ID:
        return None
    return TenantSetup(doc_id, dict(data))


def administrator_fields(
    username_encrypted: str,
    signing_public_key: str,
    encryption_public_key: str,
    added_at: int,
) -> dict[str, Any]:
    """One ``administrators`` item: the admin's name under ``default`` and its key pair."""
    return {
        "addedAt": added_at,
        "userKeyPairs": [
            {
                "addedAt": added_at,
                "encryptionPublicKey": encryption_public_key,
                "signingPublicKey": signing_public_key,
            }
        ],
        "username_encrypted": username_encrypted,
        "username_encrypted_key": "default",
    }
