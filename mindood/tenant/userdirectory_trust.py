"""``UserDirectoryTrust``: the reference's builtin write rule of the ``userdirectory`` database.

A User-Key document decides where the admin sends the tenant's keys, so who may write it is
fixed (reference ``builtinDbInvariants``), on top of the directory's trust in the author:

* create and undelete: the administrator (a joining person's pending document) or the person
  the document is for;
* change and snapshot: that person only, so nobody (not even the admin) can swap a planted
  public key in after the fact;
* delete: the administrator only.

"The person the document is for" is the grant named by its id (``userkey_<grant doc id>``),
"the signer's person" the grant that lists the signing key; both are ``$publicinfos`` facts, so
a keyless relay applies the rule too. The reference reads the document's hash from the create
payload instead; for every id it writes the two agree. Entries whose owner or signer the
directory does not know yet are deferred (a grant may still be syncing); a write by a known
person on another person's document, and a delete by anyone but the admin, are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from mindood.crypto.pem import normalize_pem
from mindood.tenant.directory_index import DirectoryIndex
from mindood.tenant.trust import DirectoryTrust
from mindood.tenant.userkeys import user_key_document_id
from store.entry import EntryMetadata, EntryType


@dataclass(frozen=True, slots=True)
class _Owners:
    """Username hashes by userkey document id and by signing key, for one trust generation."""

    generation: int
    by_document: dict[str, str]
    by_key: dict[str, str]


class UserDirectoryTrust:
    """A :class:`~mindood.db.trust.TrustPolicy` for ``userdirectory`` (see the module doc)."""

    def __init__(self, base: DirectoryTrust, index: DirectoryIndex, admin_pem: str) -> None:
        self._base = base
        self._index = index
        self._admin = normalize_pem(admin_pem)
        self._owners: _Owners | None = None

    @property
    def generation(self) -> int:
        return self._base.generation

    @property
    def fingerprint(self) -> str:
        return "userdirectory:" + self._base.fingerprint

    @property
    def signature_floor(self) -> int | None:
        return self._base.signature_floor

    def _current(self) -> _Owners:
        owners = self._owners
        if owners is None or owners.generation != self._base.generation:
            by_document: dict[str, str] = {}
            by_key: dict[str, str] = {}
            for grant in self._index.grants():
                by_document[user_key_document_id(grant.doc_id)] = grant.username_hash
                for pair in (*grant.active, *grant.revoked):
                    by_key.setdefault(pair.signing_key_id, grant.username_hash)
            owners = _Owners(self._base.generation, by_document, by_key)
            self._owners = owners
        return owners

    def _judge(self, meta: EntryMetadata) -> tuple[bool, str | None]:
        """``(allowed, refusal)``: a refusal is final, a disallowed entry without one waits."""
        kind = meta.entry_type
        if not kind.is_doc_entry:
            return True, None
        signer = normalize_pem(meta.created_by_public_key)
        is_admin = signer == self._admin
        if kind is EntryType.DOC_DELETE:
            if is_admin:
                return True, None
            return False, "userdirectory: only the administrator deletes User-Key documents"
        owners = self._current()
        owner = owners.by_document.get(meta.doc_id)
        signer_hash = owners.by_key.get(signer)
        if owner is not None and owner == signer_hash:
            return True, None
        if is_admin and kind in (EntryType.DOC_CREATE, EntryType.DOC_UNDELETE):
            return True, None
        if is_admin:
            return False, "userdirectory: the administrator cannot change a person's User-Key"
        if owner is None or signer_hash is None:
            return False, None
        return False, "userdirectory: only the person a User-Key document is for may write it"

    def applies(self, meta: EntryMetadata) -> bool:
        return self._base.applies(meta) and self._judge(meta)[0]

    def refusal(self, meta: EntryMetadata) -> str | None:
        return self._base.refusal(meta) or self._judge(meta)[1]
