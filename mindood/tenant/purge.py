"""Coordinated purge (GDPR erasure): requests in the directory, and what this node did about them.

An administrator publishes a purge request as a directory document (reference §6.3, §8)::

    acl_dochistorypurge_<requestId>   (key "$publicinfos", admin-signed)
    {form: "accesscontrol", type: "dochistorypurge", requestId, dbId, docIds: [...],
     reason_encrypted (key "default"), reason_encrypted_key: "default",
     preparedByPublicKey, requestedAt}

``$publicinfos`` lets every node that syncs the directory act on it, relays included; only the
reason is for members' eyes. Each node that sees a request it has not processed erases the
documents' whole history from the database's docs and attachments stores
(``MindooDB.purge_documents``), from then on refuses those documents' entries when a peer offers
them again, and records what it did in a small registry kept with the tenant's metadata
(``purged-docs``, the reference's ``purged-docs.json``), so both survive a restart.

Order of a purge, chosen for crashes: refuse first, erase, then record. A crash before the
record leaves the request unprocessed, and applying it again is harmless (nothing left to erase).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mindood.errors import InvalidNameError
from mindood.storefactory import StoreFactory
from mindood.tenant.grants import plain
from mindood.tenant.hashing import encode_id_component
from store.errors import EntryFormatError
from store.ids import check_doc_id

log = logging.getLogger("mindood.tenant.purge")

PURGE_FORM = "accesscontrol"
PURGE_TYPE = "dochistorypurge"
PURGE_DOC_PREFIX = "acl_dochistorypurge_"
#: Name of the registry blob in the store factory's tenant metadata.
REGISTRY_META_NAME = "purged-docs"
REGISTRY_VERSION = 1
#: Upper bound on documents per request (keeps one directory document reasonably small).
MAX_DOCS_PER_REQUEST = 10_000


@dataclass(frozen=True, slots=True)
class PurgeRequest:
    """One purge request as read from the directory."""

    doc_id: str
    request_id: str
    db_id: str
    doc_ids: tuple[str, ...]
    requested_at: int
    prepared_by: str
    reason_encrypted: str | None


def purge_doc_id(request_id: str) -> str:
    """The directory document id of a request (any request id maps to a valid custom id)."""
    return PURGE_DOC_PREFIX + encode_id_component(request_id)


def check_request(db_id: object, doc_ids: Sequence[object]) -> tuple[str, tuple[str, ...]]:
    """Validate what an admin asks to purge; returns the database and the sorted unique ids."""
    if not isinstance(db_id, str) or not db_id:
        raise InvalidNameError("a purge request names the database it applies to")
    if isinstance(doc_ids, str) or not doc_ids:
        raise InvalidNameError("a purge request lists at least one document id")
    ids = sorted({str(d) for d in doc_ids})
    if len(ids) > MAX_DOCS_PER_REQUEST:
        raise InvalidNameError(f"at most {MAX_DOCS_PER_REQUEST} documents per purge request")
    for doc_id in ids:
        try:
            check_doc_id(doc_id)
        except EntryFormatError as exc:
            raise InvalidNameError(f"not a document id: {doc_id[:80]!r}") from exc
    return db_id, tuple(ids)


def new_purge_data(
    *,
    request_id: str,
    db_id: str,
    doc_ids: Sequence[str],
    reason_encrypted: str | None,
    prepared_by: str,
    requested_at: int,
) -> dict[str, Any]:
    """The fields of a new request document."""
    data: dict[str, Any] = {
        "form": PURGE_FORM,
        "type": PURGE_TYPE,
        "requestId": request_id,
        "dbId": db_id,
        "docIds": list(doc_ids),
        "preparedByPublicKey": prepared_by,
        "requestedAt": requested_at,
    }
    if reason_encrypted is not None:
        data["reason_encrypted"] = reason_encrypted
        data["reason_encrypted_key"] = "default"
    return data


def parse_purge(doc_id: str, data: Mapping[str, Any]) -> PurgeRequest | None:
    """The purge request in a directory document, or None for any other document."""
    if data.get("form") != PURGE_FORM or data.get("type") != PURGE_TYPE:
        return None
    request_id, db_id = data.get("requestId"), data.get("dbId")
    doc_ids = plain(data.get("docIds"))
    if not isinstance(request_id, str) or not isinstance(db_id, str) or not db_id:
        return None
    if not isinstance(doc_ids, list):
        return None
    requested_at = data.get("requestedAt")
    reason = data.get("reason_encrypted")
    prepared_by = data.get("preparedByPublicKey")
    return PurgeRequest(
        doc_id=doc_id,
        request_id=request_id,
        db_id=db_id,
        doc_ids=tuple(sorted({d for d in doc_ids if isinstance(d, str) and d})),
        requested_at=requested_at if isinstance(requested_at, int) else 0,
        prepared_by=prepared_by if isinstance(prepared_by, str) else "",
        reason_encrypted=reason if isinstance(reason, str) else None,
    )


@dataclass(frozen=True, slots=True)
class PurgeRecord:
    """What this node did for one request."""

    request_doc_id: str
    request_id: str
    db_id: str
    doc_ids: tuple[str, ...]
    entries_removed: int
    applied_at: int
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requestDocId": self.request_doc_id,
            "requestId": self.request_id,
            "dbId": self.db_id,
            "docIds": list(self.doc_ids),
            "entriesRemoved": self.entries_removed,
            "appliedAt": self.applied_at,
        }
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return out

    @classmethod
    def from_json(cls, value: Any) -> PurgeRecord | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(
                request_doc_id=str(value["requestDocId"]),
                request_id=str(value["requestId"]),
                db_id=str(value["dbId"]),
                doc_ids=tuple(str(d) for d in value["docIds"]),
                entries_removed=int(value["entriesRemoved"]),
                applied_at=int(value["appliedAt"]),
                skipped=str(value["skipped"]) if "skipped" in value else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


class PurgeRegistry:
    """The requests this node has processed and the documents it purged, per database."""

    def __init__(self, store_factory: StoreFactory, tenant_id: str) -> None:
        self._factory = store_factory
        self._tenant_id = tenant_id
        self._records: dict[str, PurgeRecord] = {}
        self.loaded = False

    async def ensure_loaded(self) -> None:
        if not self.loaded:
            await self.load()

    async def load(self) -> None:
        """Read the persisted registry; a damaged one is logged and treated as empty.

        Treating it as empty is safe: every request still in the directory is applied again,
        which erases nothing more and restores the refusals.
        """
        blob = await self._factory.read_meta(self._tenant_id, REGISTRY_META_NAME)
        self._records = {}
        self.loaded = True
        if blob is None:
            return
        try:
            value = json.loads(blob)
            if not isinstance(value, dict) or value.get("version") != REGISTRY_VERSION:
                raise ValueError("unknown registry version")
            records = value.get("records", [])
            if not isinstance(records, list):
                raise ValueError("records is not a list")
        except ValueError as exc:
            log.warning("purge registry unreadable, re-applying requests: %s", exc)
            return
        for raw in records:
            record = PurgeRecord.from_json(raw)
            if record is not None:
                self._records[record.request_doc_id] = record

    async def save(self) -> None:
        records = sorted(self._records.values(), key=lambda r: (r.applied_at, r.request_doc_id))
        purged: dict[str, list[str]] = {}
        for record in records:
            if record.skipped is None:
                purged.setdefault(record.db_id, []).extend(record.doc_ids)
        value = {
            "version": REGISTRY_VERSION,
            # The reference's summary fields, for tools that read its purged-docs.json:
            "processedRequestDocIds": [r.request_doc_id for r in records],
            "purgedDocIds": {db: sorted(set(ids)) for db, ids in sorted(purged.items())},
            "records": [r.to_json() for r in records],
        }
        blob = json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")
        await self._factory.write_meta(self._tenant_id, REGISTRY_META_NAME, blob)

    def processed(self, request_doc_id: str) -> bool:
        return request_doc_id in self._records

    def record(self, record: PurgeRecord) -> None:
        self._records[record.request_doc_id] = record

    def records(self) -> list[PurgeRecord]:
        return sorted(self._records.values(), key=lambda r: (r.applied_at, r.request_doc_id))

    def purged(self, db_id: str) -> frozenset[str]:
        """Every document purged from ``db_id`` on this node."""
        return frozenset(
            doc_id
            for record in self._records.values()
            if record.db_id == db_id and record.skipped is None
            for doc_id in record.doc_ids
        )
