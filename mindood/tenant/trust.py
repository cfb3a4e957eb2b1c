"""``DirectoryTrust``: whose entries count in an application database (§6, reference §6.6).

Decisions, per entry, from its author key and ``created_at``:

* the administrator's signing key is the root of trust and always counts;
* a key active in any grant counts;
* a revoked key counts for entries created before its ``revokedAt`` (history written while the
  device was trusted stays readable) and is *refused* for later ones, so a sync never even stores
  a revoked device's new work;
* any other key is unknown: its entries are stored (a grant may arrive later, e.g. the directory
  is still syncing) but not applied. When the directory changes, ``generation`` moves on and the
  database re-plans, so those entries appear once their author is granted.

Only ``$publicinfos`` fields feed this (key pairs, ``revokedAt``), so a keyless relay enforces the
same rule as a member, and the default policy's ``requireMetadataSignatureSince`` (the floor
from which entries must carry a ``metadataSignature``; until a policy is known, every entry must).

``created_at`` is claimed by the author; a revoked user could backdate entries. The reference's
protection is a trusted time (``entryTrustedTime``): a witness receipt's ``receivedAt``, else
"now" for a versioned entry, which cannot claim a past slot. Without witnesses that judges every
versioned entry of a revoked key as made after its revocation: a node syncing after a revocation
would refuse the device's whole history and every document others built on it would break there
(the reference, whose access control is off by default, stops counting a revoked key's entries
altogether). mindood keeps judging by ``created_at`` until it keeps witness receipts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from mindood.crypto.pem import normalize_pem
from mindood.tenant.grants import Grant
from store.entry import EntryMetadata
from store.signing import REQUIRED_SINCE_ALWAYS

#: Author keys whose standing is remembered by their raw text (an entry's
#: ``createdByPublicKey``); past it the memory starts over, so a stranger's many keys cost
#: lookups, never memory.
MAX_REMEMBERED_KEYS = 1024


class Verdict(Enum):
    """What a trust decision says about one entry."""

    ADMIN = "admin"
    ACTIVE = "active"
    BEFORE_REVOCATION = "before-revocation"
    REVOKED = "revoked"
    UNKNOWN = "unknown"

    @property
    def applies(self) -> bool:
        return self in (Verdict.ADMIN, Verdict.ACTIVE, Verdict.BEFORE_REVOCATION)


@dataclass(frozen=True, slots=True)
class KeyStates:
    """The signing keys the directory knows, in whitespace-free PEM form.

    ``revoked`` maps a key to the earliest ``revokedAt`` any grant records for it (None: revoked
    at an unknown time, so nothing it signed counts). A key active anywhere is not in ``revoked``.
    """

    active: frozenset[str] = frozenset()
    revoked: tuple[tuple[str, int | None], ...] = ()

    @classmethod
    def from_grants(cls, grants: Iterable[Grant]) -> KeyStates:
        active: set[str] = set()
        revoked: dict[str, int | None] = {}
        for grant in grants:
            active.update(p.signing_key_id for p in grant.active)
            for pair in grant.revoked:
                key = pair.signing_key_id
                if key in revoked:
                    previous = revoked[key]
                    if previous is None or pair.revoked_at is None:
                        revoked[key] = None
                    else:
                        revoked[key] = min(previous, pair.revoked_at)
                else:
                    revoked[key] = pair.revoked_at
        return cls(
            frozenset(active),
            tuple(sorted((k, v) for k, v in revoked.items() if k not in active)),
        )

    def fingerprint(self, admin: str) -> str:
        """A stable digest of these states (same answers, same digest, in every process)."""
        canonical = json.dumps(
            [admin, sorted(self.active), [[k, at] for k, at in self.revoked]],
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def revoked_at(self, key: str) -> tuple[bool, int | None]:
        for revoked_key, at in self.revoked:
            if revoked_key == key:
                return True, at
        return False, None


class DirectoryTrust:
    """A live :class:`~mindood.db.trust.TrustPolicy` fed by the directory's grants."""

    def __init__(self, admin_signing_public_key: str) -> None:
        self._admin = normalize_pem(admin_signing_public_key)
        self._states = KeyStates()
        self._revoked: dict[str, int | None] = {}
        self._generation = 0
        self._fingerprint = self._states.fingerprint(self._admin)
        self._signature_floor: int | None = REQUIRED_SINCE_ALWAYS
        #: Raw key text -> (ADMIN, ACTIVE, REVOKED or UNKNOWN, revokedAt): every entry of a
        #: sync asks, and normalising the PEM costs more than the rest of the decision.
        self._standing: dict[str, tuple[Verdict, int | None]] = {}

    @property
    def signature_floor(self) -> int | None:
        """The ``required_since`` for :func:`store.signing.check_entry` (None: not required)."""
        return self._signature_floor

    def set_signature_floor(self, floor: int | None) -> None:
        """Adopt the policy's ``requireMetadataSignatureSince`` (None: the policy sets none).

        It only decides what a sync admits; every stored entry passed, so the generation stays.
        """
        self._signature_floor = floor

    @property
    def generation(self) -> int:
        """Moves on whenever :meth:`update` changes any answer."""
        return self._generation

    @property
    def fingerprint(self) -> str:
        """Names the current answers across processes (change feed cursors keep it)."""
        return self._fingerprint

    @property
    def states(self) -> KeyStates:
        return self._states

    def update(self, states: KeyStates) -> bool:
        """Adopt new key states; returns True (and bumps ``generation``) if they differ."""
        if states == self._states:
            return False
        self._states = states
        self._revoked = dict(states.revoked)
        self._generation += 1
        self._fingerprint = states.fingerprint(self._admin)
        self._standing = {}
        return True

    def _standing_of(self, author_pem: str) -> tuple[Verdict, int | None]:
        standing = self._standing.get(author_pem)
        if standing is None:
            key = normalize_pem(author_pem)
            if key == self._admin:
                standing = (Verdict.ADMIN, None)
            elif key in self._states.active:
                standing = (Verdict.ACTIVE, None)
            elif key in self._revoked:
                standing = (Verdict.REVOKED, self._revoked[key])
            else:
                standing = (Verdict.UNKNOWN, None)
            if len(self._standing) >= MAX_REMEMBERED_KEYS:
                self._standing = {}
            self._standing[author_pem] = standing
        return standing

    def verdict(self, author_pem: str, created_at: int) -> Verdict:
        standing, revoked_at = self._standing_of(author_pem)
        if standing is Verdict.REVOKED and revoked_at is not None and created_at < revoked_at:
            return Verdict.BEFORE_REVOCATION
        return standing

    def applies(self, meta: EntryMetadata) -> bool:
        return self.verdict(meta.created_by_public_key, meta.created_at).applies

    def refusal(self, meta: EntryMetadata) -> str | None:
        if self.verdict(meta.created_by_public_key, meta.created_at) is Verdict.REVOKED:
            return "the author's key was revoked before this entry was created"
        return None
