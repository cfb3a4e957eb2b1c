"""An in-memory index of the directory database's documents, and the answers built from it.

The directory is small and read constantly (every trust decision), so it is parsed once into
records here and updated per changed document. Everything is synchronous and pure: the async
``Directory`` feeds it documents, tests feed it plain dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mindood.tenant.acl_docs import (
    DefaultPolicy,
    TenantSetup,
    parse_default_policy,
    parse_tenant_setup,
)
from mindood.tenant.grants import Grant, KeyPair, parse_grant, plain
from mindood.tenant.groups import (
    Group,
    GroupDoc,
    groups_of,
    merge_groups,
    parse_group,
    resolve_members,
)
from mindood.tenant.hashing import (
    dn_variants,
    encode_id_component,
    normalize_name,
    username_hash,
    username_hash_candidates,
)
from mindood.tenant.keydistribution import KeyDistribution, parse_key_distribution
from mindood.tenant.purge import PurgeRequest, parse_purge
from mindood.tenant.trust import KeyStates

TENANT_SETTINGS_FORM = "tenantsettings"
DB_SETTINGS_FORM = "dbsettings"
TENANT_SETTINGS_DOC_ID = "tenantsettings"


def db_settings_doc_id(db_id: str) -> str:
    """Deterministic doc id of a database's settings (any db name maps to a valid custom id)."""
    return "dbsettings_" + encode_id_component(db_id)


@dataclass(frozen=True, slots=True)
class SettingsDoc:
    """A tenant or database settings document (``default`` key: members only)."""

    doc_id: str
    form: str
    db_id: str | None
    data: Mapping[str, Any]
    last_modified: int


@dataclass(frozen=True, slots=True)
class KeyDistributionDoc:
    """An ``acl_keydistribution_*`` document: parsed, plus its data for the encrypted names."""

    doc_id: str
    distribution: KeyDistribution
    data: Mapping[str, Any]


Record = (
    Grant | GroupDoc | SettingsDoc | PurgeRequest | DefaultPolicy | TenantSetup | KeyDistributionDoc
)


def parse_record(doc_id: str, data: Mapping[str, Any], last_modified: int) -> Record | None:
    """Classify one directory document; None for documents this port does not interpret."""
    grant = parse_grant(doc_id, data)
    if grant is not None:
        return grant
    group = parse_group(doc_id, data)
    if group is not None:
        return group
    purge = parse_purge(doc_id, data)
    if purge is not None:
        return purge
    if data.get("form") == "accesscontrol":
        distribution = parse_key_distribution(data)
        if distribution is not None:
            return KeyDistributionDoc(doc_id, distribution, plain(data))
    policy = parse_default_policy(doc_id, plain(data))
    if policy is not None:
        return policy
    setup = parse_tenant_setup(doc_id, plain(data))
    if setup is not None:
        return setup
    form = data.get("form")
    if form == TENANT_SETTINGS_FORM:
        return SettingsDoc(doc_id, form, None, plain(data), last_modified)
    if form == DB_SETTINGS_FORM:
        db_id = data.get("dbid")
        if isinstance(db_id, str):
            return SettingsDoc(doc_id, form, db_id, plain(data), last_modified)
    return None


def _settings_view(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in ("form", "dbid")}


class DirectoryIndex:
    """Records by document id, and the derived views trust and lookups need."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._records: dict[str, Record] = {}

    # -- updates -----------------------------------------------------------------------------
    def put(self, doc_id: str, record: Record | None) -> None:
        """Set (or, with None, forget) the record of one document."""
        if record is None:
            self._records.pop(doc_id, None)
        else:
            self._records[doc_id] = record

    def retain(self, doc_ids: Iterable[str]) -> None:
        """Forget every document not in ``doc_ids`` (deleted or no longer trusted)."""
        keep = set(doc_ids)
        for doc_id in [d for d in self._records if d not in keep]:
            del self._records[doc_id]

    def doc_ids(self) -> list[str]:
        return sorted(self._records)

    # -- grants and trust --------------------------------------------------------------------
    def grants(self) -> list[Grant]:
        return sorted(
            (r for r in self._records.values() if isinstance(r, Grant)), key=lambda g: g.doc_id
        )

    def key_states(self) -> KeyStates:
        return KeyStates.from_grants(self.grants())

    def grants_of(self, username: str) -> list[Grant]:
        """Every grant document of a user (more than one only if written by several tools)."""
        candidates = username_hash_candidates(self.tenant_id, username)
        return [g for g in self.grants() if g.username_hash in candidates]

    def active_key_pairs(self, username: str) -> list[KeyPair]:
        return [p for g in self.grants_of(username) for p in g.active]

    def revoked_key_pairs(self, username: str) -> list[KeyPair]:
        return [p for g in self.grants_of(username) for p in g.revoked]

    # -- groups ------------------------------------------------------------------------------
    def groups(self) -> dict[str, Group]:
        docs = [r for r in self._records.values() if isinstance(r, GroupDoc)]
        return merge_groups(docs)

    def group(self, name: str) -> Group | None:
        return self.groups().get(normalize_name(name))

    def _group_hash(self, name: str) -> str:
        return username_hash(self.tenant_id, name)

    def _name_hashes(self, name: str) -> frozenset[str]:
        return username_hash_candidates(self.tenant_id, name)

    def user_groups(self, username: str) -> set[str]:
        """Groups ``username`` belongs to, directly, through nested groups or a DN wildcard.

        A member ``*/O=acme`` (or ``*``) takes in every name it matches, as the reference's
        resolveGroupsForUser does with the name's DN variants.
        """
        candidates = {h for v in dn_variants(username) for h in self._name_hashes(v)}
        return groups_of(self.groups(), candidates, self._name_hashes)

    def group_member_hashes(self, name: str) -> frozenset[str]:
        """Hashes of every user in a group, nested groups expanded (cycle-safe)."""
        return resolve_members(self.groups(), normalize_name(name), self._group_hash)

    def is_group_member(self, username: str, group_name: str) -> bool:
        return normalize_name(group_name) in self.user_groups(username)

    # -- purge requests ----------------------------------------------------------------------
    def purge_requests(self) -> list[PurgeRequest]:
        """Every purge request, oldest first."""
        requests = [r for r in self._records.values() if isinstance(r, PurgeRequest)]
        return sorted(requests, key=lambda r: (r.requested_at, r.doc_id))

    # -- tenant-wide documents ---------------------------------------------------------------
    def default_policy(self) -> DefaultPolicy | None:
        return next((r for r in self._records.values() if isinstance(r, DefaultPolicy)), None)

    def _distribution_docs(self) -> list[KeyDistributionDoc]:
        docs = [r for r in self._records.values() if isinstance(r, KeyDistributionDoc)]
        return sorted(docs, key=lambda d: d.doc_id)

    def key_distributions(self) -> list[KeyDistribution]:
        """Every key distribution (one per key id; the first by doc id should two exist)."""
        seen: dict[str, KeyDistribution] = {}
        for doc in self._distribution_docs():
            seen.setdefault(doc.distribution.key_id, doc.distribution)
        return list(seen.values())

    def key_distribution_data(self, key_id: str) -> Mapping[str, Any]:
        doc = next((d for d in self._distribution_docs() if d.distribution.key_id == key_id), None)
        return {} if doc is None else doc.data

    def tenant_setup(self) -> TenantSetup | None:
        return next((r for r in self._records.values() if isinstance(r, TenantSetup)), None)

    # -- settings ----------------------------------------------------------------------------
    def _latest_settings(self, form: str, db_id: str | None) -> SettingsDoc | None:
        docs = [
            r
            for r in self._records.values()
            if isinstance(r, SettingsDoc) and r.form == form and r.db_id == db_id
        ]
        return max(docs, key=lambda d: (d.last_modified, d.doc_id), default=None)

    def tenant_settings(self) -> dict[str, Any] | None:
        """The newest tenant settings document's fields (last writer wins), or None."""
        doc = self._latest_settings(TENANT_SETTINGS_FORM, None)
        return None if doc is None else _settings_view(doc.data)

    def db_settings(self, db_id: str) -> dict[str, Any] | None:
        doc = self._latest_settings(DB_SETTINGS_FORM, db_id)
        return None if doc is None else _settings_view(doc.data)
