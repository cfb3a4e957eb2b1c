"""The answers of the HTTP sync API as the reference serializes them (reference-formats §3.1).

Each answer is a function pair or a frozen dataclass with ``to_json``/``from_json``; parsing
checks types and sizes and raises ``HttpError``, so a client reading a hostile server gets a
clean failure. Re-exported by ``wire``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from protocol.http.checks import (
    DEFAULT_BODY_LIMIT,
    DEFAULT_BODY_LIMIT_TEXT,
    MAX_ID_LENGTH,
    MAX_PEM_LENGTH,
    PROTOCOL_VERSION,
    _ids,
    _int,
    _meta,
    _meta_list,
    _obj,
    _opt_str,
    _str,
    invalid,
)
from store.base import ScanCursor, ScanPage, StoreHead
from store.bloom import BloomSummary
from store.entry import EntryMetadata
from store.errors import EntryFormatError
from store.json_codec import metadata_to_json


def cursor_to_json(cursor: ScanCursor | None) -> dict[str, Any] | None:
    return None if cursor is None else {"receiptOrder": cursor.receipt_order, "id": cursor.id}


def cursor_from_json(value: Any) -> ScanCursor | None:
    if value is None:
        return None
    obj = _obj(value, "cursor")
    order = obj.get("receiptOrder")
    cursor_id = obj.get("id")
    if not isinstance(cursor_id, str) or len(cursor_id) > MAX_ID_LENGTH:
        raise invalid("cursor.id must be an id")
    return ScanCursor(0 if order is None else _int(order, "cursor.receiptOrder"), cursor_id)


@dataclass(frozen=True, slots=True)
class Rejection:
    """An entry a put refused, and why (``rejected: [{id, reason}]``)."""

    id: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "reason": self.reason}


def entries_to_json(entries: Sequence[EntryMetadata]) -> dict[str, Any]:
    """``{entries: SerializedEntryMetadata[]}`` (find*, as the reference answers)."""
    return {"entries": [metadata_to_json(m) for m in entries]}


def entries_from_json(body: Any) -> list[EntryMetadata]:
    return list(_meta_list(_obj(body, "answer").get("entries")))


def scan_page_to_json(page: ScanPage) -> dict[str, Any]:
    return {
        "entries": [metadata_to_json(m) for m in page.entries],
        "nextCursor": cursor_to_json(page.next_cursor),
        "hasMore": page.has_more,
    }


def scan_page_from_json(body: Any) -> ScanPage:
    obj = _obj(body, "answer")
    has_more = obj.get("hasMore")
    if not isinstance(has_more, bool):
        raise invalid("hasMore must be a boolean")
    return ScanPage(
        _meta_list(obj.get("entries")), cursor_from_json(obj.get("nextCursor")), has_more
    )


def head_to_json(head: StoreHead) -> dict[str, Any]:
    return {"head": {"epoch": head.epoch, "maxReceiptOrder": head.max_receipt_order}}


def head_from_json(body: Any) -> StoreHead:
    head = _obj(_obj(body, "answer").get("head"), "head")
    return StoreHead(
        _str(head.get("epoch"), "head.epoch"),
        _int(head.get("maxReceiptOrder"), "head.maxReceiptOrder"),
    )


def bloom_to_json(summary: BloomSummary) -> dict[str, Any]:
    return {"summary": summary.to_wire()}


def bloom_from_json(body: Any) -> BloomSummary:
    try:
        return BloomSummary.from_wire(_obj(body, "answer").get("summary"))
    except EntryFormatError as exc:
        raise invalid(str(exc)) from exc


def ids_to_json(ids: Sequence[str]) -> dict[str, Any]:
    return {"ids": list(ids)}


def ids_from_json(body: Any, max_count: int = 10_000_000) -> list[str]:
    return list(_ids(_obj(body, "answer").get("ids"), "ids", max_count))


def entry_metadata_to_json(meta: EntryMetadata | None) -> dict[str, Any]:
    return {"entry": None if meta is None else metadata_to_json(meta)}


def entry_metadata_from_json(body: Any) -> EntryMetadata | None:
    entry = _obj(body, "answer").get("entry")
    return None if entry is None else _meta(entry)


@dataclass(frozen=True, slots=True)
class PutEntriesResponse:
    """``{success: true, receipts, rejected}``: receipts are the stored metadata of every entry
    kept (new or already there), rejections name the rest."""

    receipts: tuple[EntryMetadata, ...] = ()
    rejected: tuple[Rejection, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "success": True,
            "receipts": [metadata_to_json(m) for m in self.receipts],
            "rejected": [r.to_json() for r in self.rejected],
        }

    @classmethod
    def from_json(cls, body: Any) -> PutEntriesResponse:
        obj = _obj(body, "answer")
        raw = obj.get("rejected") or []
        if not isinstance(raw, list):
            raise invalid("rejected must be an array")
        rejected = []
        for item in raw:
            r = _obj(item, "rejection")
            reason = r.get("reason")
            rejected.append(
                Rejection(
                    _str(r.get("id"), "rejected.id"),
                    reason[:2000] if isinstance(reason, str) else "",
                )
            )
        return cls(_meta_list(obj.get("receipts") or [], "receipts"), tuple(rejected))


def compaction_status_json() -> dict[str, Any]:
    """What the reference answers for a store without compaction."""
    return {
        "status": {
            "enabled": False,
            "compactionMinFiles": 0,
            "compactionMaxBytes": 0,
            "totalCompactions": 0,
            "totalCompactedFiles": 0,
            "totalCompactedBytes": 0,
            "totalCompactionDurationMs": 0,
            "lastCompactionAt": None,
            "lastCompactedFiles": 0,
            "lastCompactedBytes": 0,
            "lastCompactionDurationMs": 0,
        }
    }


@dataclass(frozen=True, slots=True)
class Capabilities:
    """``NetworkSyncCapabilities`` plus the HTTP layer's two flags (reference-formats §3.3)."""

    protocol_version: str = PROTOCOL_VERSION
    supports_cursor_scan: bool = True
    supports_id_bloom_summary: bool = True
    supports_compaction_status: bool = True
    supports_materialization_planning: bool = False
    supports_batch_materialization_planning: bool = False
    supports_attachment_read_planning: bool = False
    server_time: int = 0
    supports_access_control_v1: bool = False
    supports_remote_wipe_v1: bool = False
    supports_store_head: bool = True
    supports_session_key_wrap: bool = True
    supports_binary_entries: bool = True
    supports_change_events: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"capabilities": {wire: getattr(self, name) for name, wire in _CAP_NAMES}}

    @classmethod
    def fallback(cls) -> Capabilities:
        """What the reference client assumes when capabilities fail: sync-v1, nothing else."""
        return cls(
            "sync-v1",
            False,
            False,
            False,
            False,
            False,
            False,
            0,
            False,
            False,
            False,
            False,
            False,
            False,
        )

    @classmethod
    def from_json(cls, body: Any) -> Capabilities:
        caps = _obj(_obj(body, "answer").get("capabilities"), "capabilities")
        values: dict[str, Any] = {}
        for name, wire in _CAP_NAMES:
            value = caps.get(wire)
            if name == "protocol_version":
                values[name] = value if isinstance(value, str) and len(value) < 64 else "sync-v1"
            elif name == "server_time":
                values[name] = (
                    value if isinstance(value, int) and not isinstance(value, bool) else 0
                )
            else:
                values[name] = value is True
        return cls(**values)

    @property
    def protocol_number(self) -> int:
        """N of ``sync-vN`` (0 if unreadable); cursor scan needs N >= 4 in the reference."""
        match = re.fullmatch(r"sync-v(\d{1,4})", self.protocol_version)
        return int(match.group(1)) if match else 0


_CAP_NAMES = (
    ("protocol_version", "protocolVersion"),
    ("supports_cursor_scan", "supportsCursorScan"),
    ("supports_id_bloom_summary", "supportsIdBloomSummary"),
    ("supports_compaction_status", "supportsCompactionStatus"),
    ("supports_materialization_planning", "supportsMaterializationPlanning"),
    ("supports_batch_materialization_planning", "supportsBatchMaterializationPlanning"),
    ("supports_attachment_read_planning", "supportsAttachmentReadPlanning"),
    ("server_time", "serverTime"),
    ("supports_access_control_v1", "supportsAccessControlV1"),
    ("supports_remote_wipe_v1", "supportsRemoteWipeV1"),
    ("supports_store_head", "supportsStoreHead"),
    ("supports_session_key_wrap", "supportsSessionKeyWrap"),
    ("supports_binary_entries", "supportsBinaryEntries"),
    ("supports_change_events", "supportsChangeEvents"),
)


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """``/.well-known/mindoodb-server-info``: the node's public identity and body limit."""

    name: str
    signing_public_key: str
    encryption_public_key: str
    max_json_request_body_limit: str = DEFAULT_BODY_LIMIT_TEXT
    max_json_request_body_bytes: int = DEFAULT_BODY_LIMIT

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "signingPublicKey": self.signing_public_key,
            "encryptionPublicKey": self.encryption_public_key,
            "maxJsonRequestBodyLimit": self.max_json_request_body_limit,
            "maxJsonRequestBodyBytes": self.max_json_request_body_bytes,
            "timestamping": {"enabled": False, "providers": []},
        }

    @classmethod
    def from_json(cls, body: Any) -> ServerInfo:
        obj = _obj(body, "server info")
        limit = obj.get("maxJsonRequestBodyBytes")
        return cls(
            _str(obj.get("name"), "name", 1024),
            _str(obj.get("signingPublicKey"), "signingPublicKey", MAX_PEM_LENGTH),
            _opt_str(obj.get("encryptionPublicKey"), "encryptionPublicKey", MAX_PEM_LENGTH) or "",
            str(obj.get("maxJsonRequestBodyLimit") or DEFAULT_BODY_LIMIT_TEXT)[:32],
            limit if isinstance(limit, int) and limit > 0 else DEFAULT_BODY_LIMIT,
        )


def health_json(now_ms: int) -> dict[str, Any]:
    return {"status": "ok", "timestamp": now_ms}


def fingerprints_json(tenant_id: str, fingerprints: Sequence[str]) -> dict[str, Any]:
    return {"tenantId": tenant_id, "fingerprints": sorted(fingerprints)}
