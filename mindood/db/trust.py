"""Whose entries count: the trust rule a database applies to every entry it materialises.

A policy decides which entries are *applied*, and which a sync must refuse outright (directory
entries not signed by the admin, a revoked author's later entries). Sync stores only entries
that apply: one by an author the directory does not grant yet is deferred and fetched again
once a directory change grants it, so strangers cannot fill a member's store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

from store.entry import EntryMetadata


class TrustPolicy(Protocol):
    """Decides per entry; ``generation`` changes whenever the answers may have changed."""

    @property
    def generation(self) -> int: ...

    def applies(self, meta: EntryMetadata) -> bool:
        """Whether the entry's change counts when reading documents."""
        ...

    def refusal(self, meta: EntryMetadata) -> str | None:
        """Why a sync must never store this entry, or None if it may (once it applies)."""
        ...


def trust_fingerprint(trust: TrustPolicy) -> str:
    """A process-independent name for the trust picture a policy currently answers with.

    Change feeds store it in their cursors: a cursor taken under another picture may have
    skipped documents whose visibility changed since, so it is not resumed. Policies expose a
    ``fingerprint`` attribute; for one that does not, the (process-local) generation is used,
    which errs on the side of re-emitting after a restart.
    """
    fingerprint = getattr(trust, "fingerprint", None)
    if isinstance(fingerprint, str):
        return fingerprint
    return f"generation:{trust.generation}"


@dataclass(frozen=True, slots=True)
class OpenTrust:
    """Every validly signed entry counts: local-only databases with no directory."""

    generation: int = 0

    @property
    def fingerprint(self) -> str:
        return "open"

    def applies(self, meta: EntryMetadata) -> bool:
        return True

    def refusal(self, meta: EntryMetadata) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class AdminOnlyTrust:
    """The directory: only the administrator's signing key writes it (the root of trust)."""

    admin_signing_public_key: str
    generation: int = 0

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.admin_signing_public_key.encode("utf-8")).hexdigest()
        return f"admin:{digest[:32]}"

    def applies(self, meta: EntryMetadata) -> bool:
        return meta.created_by_public_key == self.admin_signing_public_key

    def refusal(self, meta: EntryMetadata) -> str | None:
        if self.applies(meta):
            return None
        return "directory entries must be signed by the tenant administrator"
