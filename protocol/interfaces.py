"""What the node hands the protocol: who we are, whom we trust, how to wrap payloads.

``protocol/`` holds no private key. The node (``mindood/``) implements these small interfaces
with its tenant's identity, directory and crypto, and a relay implements them with the few keys
it has (its node identity and ``$publicinfos``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Sealer(Protocol):
    """Symmetric payload encryption under one session key (spec layer 2)."""

    def seal(self, data: bytes) -> bytes: ...

    def open(self, blob: bytes) -> bytes:
        """Raise ``ValueError`` when the blob was not sealed under this key."""
        ...


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A peer the tenant directory trusts, and the RSA key that payloads to it are wrapped for.

    ``provisional``: a peer we dialed whose key our directory does not know yet (a device that
    just joined has an empty directory). It may only serve us the directory, whose entries all
    carry the admin's signature; once that is in, the node checks the peer again.
    """

    identity: str
    encryption_public_key: str
    label: str = ""
    provisional: bool = False


class TenantContext(Protocol):
    """One tenant as seen by one node."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def identity(self) -> str:
        """Our Ed25519 public key PEM, the identity we authenticate as."""
        ...

    @property
    def encryption_key(self) -> str:
        """Our RSA public key PEM, which peers wrap their session keys to."""
        ...

    def sign(self, data: bytes) -> bytes: ...

    def check_peer(self, identity: str, encryption_key: str, *, dialed: bool) -> PeerInfo:
        """Raise ``PeerRefused`` unless ``identity`` is granted and not revoked in the tenant.

        A peer we ``dialed`` that the directory does not know (yet) may be admitted
        provisionally; one that is revoked never is.
        """
        ...

    def new_outgoing_key(self, peer: PeerInfo) -> tuple[bytes, Sealer]:
        """A fresh key for what we send: its RSA wrap for ``peer``, and the sealer."""
        ...

    def open_incoming_key(self, wrapped: bytes) -> Sealer:
        """Unwrap the peer's key with our RSA key; raise ``ValueError`` if it is not for us."""
        ...


class TenantResolver(Protocol):
    """A listening node may host several tenants; the peer's HELLO names the one it wants."""

    def lookup(self, tenant_id: str) -> TenantContext | None: ...


class PeerRefused(Exception):
    """The directory does not (or no longer) trust a peer identity."""

    def __init__(self, message: str, *, revoked: bool = False) -> None:
        super().__init__(message)
        self.revoked = revoked
