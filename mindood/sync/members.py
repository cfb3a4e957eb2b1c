"""Who a tenant's peers are, in the forms discovery and WebRTC negotiation need.

``node_id`` is a short, stable handle for a signing key (SHA-256 of the whitespace-free PEM,
first 16 bytes): discovery carries it masked, and both ends compare them to decide who dials.
``discovery_key`` is the tag key for mDNS: derived from ``$publicinfos``, which every member and
every relay of the tenant holds and no stranger does, so a member can recognise another member's
advertisement while the tenant stays invisible to everyone else.
"""

from __future__ import annotations

import hashlib
import hmac

from mindood.crypto.pem import normalize_pem
from mindood.sync.context import TenantSyncContext

NODE_ID_BYTES = 16
_DISCOVERY_LABEL = b"mindoodb/mdns-tenant-tag/v1\x00"


def node_id(identity_pem: str) -> bytes:
    return hashlib.sha256(normalize_pem(identity_pem).encode()).digest()[:NODE_ID_BYTES]


def node_id_hex(identity_pem: str) -> str:
    """The node id as status, events, logs and cursor files name a peer: one id everywhere."""
    return node_id(identity_pem).hex()


def member_name(context: TenantSyncContext, identity_pem: str) -> str | None:
    """The user name the directory gives this signing key, if this node may read names.

    Names are encrypted with the ``default`` key: a relay, which lacks it, learns none.
    """
    directory = context.tenant.get_directory()
    wanted = normalize_pem(identity_pem)
    for name in directory.get_usernames():
        if any(pair.signing_key_id == wanted for pair in directory.get_user_key_pairs(name)):
            return name
    return None


def discovery_key(context: TenantSyncContext) -> bytes | None:
    """The tenant's mDNS tag key, or None when this node lacks ``$publicinfos``."""
    tenant = context.tenant
    bag = tenant.key_bag
    if not bag.has(context.tenant_id, "$publicinfos"):
        return None
    secret: bytes = bag.get(context.tenant_id, "$publicinfos")
    message = _DISCOVERY_LABEL + context.tenant_id.encode()
    return hmac.new(secret, message, hashlib.sha256).digest()


def member_identities(context: TenantSyncContext) -> list[str]:
    """Every signing key the directory currently grants, plus the admin's (PEM, as stored)."""
    tenant = context.tenant
    found = {normalize_pem(tenant.admin_signing_public_key): tenant.admin_signing_public_key}
    for grant in tenant.get_directory().index.grants():
        for pair in grant.active:
            found.setdefault(pair.signing_key_id, pair.signing_public_key)
    return list(found.values())


def identity_for(context: TenantSyncContext, wanted: bytes) -> str | None:
    """The granted signing key whose node id is ``wanted``, if the directory lists one."""
    for pem in member_identities(context):
        if node_id(pem) == wanted:
            return pem
    return None


def dials_first(ours: bytes, theirs: bytes) -> bool:
    """Of two members that found each other, the lower node id dials; the other waits."""
    return ours < theirs
