"""A tenant, as the sync protocol needs it: our identity, the directory's trust, payload keys.

Peers authenticate with a signing key the directory grants: a user's device, a relay's or edge
cache's node identity (registered like a user), or the admin. Payloads to a peer are sealed with
a fresh AES-256-GCM session key, RSA-wrapped to the encryption key the directory lists for that
peer's signing key (spec layer 2, on top of TLS/DTLS).
"""

from __future__ import annotations

from mindood.crypto import rsa
from mindood.crypto.aead import PayloadCipher, new_symmetric_key
from mindood.crypto.pem import normalize_pem
from mindood.errors import CryptoError
from mindood.tenant import Tenant
from mindood.tenant.trust import Verdict
from protocol.interfaces import PeerInfo, PeerRefused, Sealer


class AesSealer:
    """Seals with one session key; ``open`` raises ``ValueError`` for anything else."""

    __slots__ = ("_cipher", "key")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._cipher = PayloadCipher(key)

    def seal(self, data: bytes) -> bytes:
        return self._cipher.encrypt(data)

    def open(self, blob: bytes) -> bytes:
        try:
            return self._cipher.decrypt(blob)
        except CryptoError as exc:
            raise ValueError(str(exc)) from exc


class TenantSyncContext:
    """Implements ``protocol.interfaces.TenantContext`` for one open tenant."""

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant

    @property
    def tenant(self) -> Tenant:
        return self._tenant

    @property
    def tenant_id(self) -> str:
        return self._tenant.tenant_id

    @property
    def identity(self) -> str:
        return self._tenant.user.private.signing_public_key

    def sign(self, data: bytes) -> bytes:
        return self._tenant.user.sign(data)

    @property
    def encryption_key(self) -> str:
        return self._tenant.user.private.encryption_public_key

    def check_peer(self, identity: str, encryption_key: str, *, dialed: bool) -> PeerInfo:
        tenant = self._tenant
        if normalize_pem(identity) == normalize_pem(tenant.admin_signing_public_key):
            return PeerInfo(identity, tenant.admin_encryption_public_key, "admin")
        directory = tenant.get_directory()
        verdict = directory.trust.verdict(identity, 2**62)
        if verdict is Verdict.REVOKED or verdict is Verdict.BEFORE_REVOCATION:
            raise PeerRefused("this key was revoked in the tenant directory", revoked=True)
        if verdict is Verdict.ACTIVE:
            wanted = normalize_pem(identity)
            for grant in directory.index.grants():
                for pair in grant.active:
                    if pair.signing_key_id == wanted and pair.encryption_public_key:
                        return PeerInfo(identity, pair.encryption_public_key, pair.label or "")
            raise PeerRefused("the directory lists no encryption key for this signing key")
        if dialed:
            # We chose to dial this address; its directory may be all we lack (a new device).
            return PeerInfo(identity, encryption_key, "unverified", provisional=True)
        raise PeerRefused("this key is not granted in the tenant directory")

    def new_outgoing_key(self, peer: PeerInfo) -> tuple[bytes, Sealer]:
        key = new_symmetric_key()
        return rsa.wrap_key(key, peer.encryption_public_key), AesSealer(key)

    def open_incoming_key(self, wrapped: bytes) -> Sealer:
        try:
            key = self._tenant.user.unwrap_key(wrapped)
        except CryptoError as exc:
            raise ValueError(str(exc)) from exc
        if len(key) != 32:
            raise ValueError("session key must be 32 bytes")
        return AesSealer(key)


class TenantRegistry:
    """``protocol.interfaces.TenantResolver`` over the tenants a node has unlocked."""

    def __init__(self) -> None:
        self._contexts: dict[str, TenantSyncContext] = {}

    def add(self, tenant: Tenant) -> TenantSyncContext:
        context = TenantSyncContext(tenant)
        self._contexts[tenant.tenant_id] = context
        return context

    def remove(self, tenant_id: str) -> None:
        self._contexts.pop(tenant_id, None)

    def lookup(self, tenant_id: str) -> TenantSyncContext | None:
        return self._contexts.get(tenant_id)

    def contexts(self) -> list[TenantSyncContext]:
        return list(self._contexts.values())
