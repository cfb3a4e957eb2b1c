"""What travels over the reference's HTTP sync API, for server and client alike (§2.5-2.6, §3).

The one import for both sides: entries as ``SerializedEntry`` JSON (``store.json_codec``), the
binary framings and reader wraps (``entries``), errors and limits (``checks``), SSE (``sse``),
and here every request and response as a frozen dataclass (or a pair of functions) with
``to_json``/``from_json``. Parsing checks types and the reference's limits and raises
``HttpError`` whose ``kind`` maps to the reference's HTTP status. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from protocol.http.checks import (
    DEFAULT_BODY_LIMIT,
    DEFAULT_BODY_LIMIT_TEXT,
    MAX_CHALLENGE_LENGTH,
    MAX_ENTRY_IDS,
    MAX_HAVE_IDS,
    MAX_ID_LENGTH,
    MAX_PEM_LENGTH,
    MAX_PUT_ENTRIES,
    MAX_SCAN_PAGE,
    MAX_SIGNATURE_LENGTH,
    MAX_USERNAME_LENGTH,
    PROTOCOL_VERSION,
    ErrorKind,
    HttpError,
    _ids,
    _int,
    _meta,
    _meta_list,
    _obj,
    _opt_int,
    _opt_str,
    _str,
    b64,
    check_db_id,
    check_tenant_id,
    error_from_response,
    invalid,
    status_for,
    unb64,
)
from protocol.http.entries import (
    BINARY_CONTENT_TYPE,
    GET_ENTRIES_FORMAT,
    IV_BYTES,
    PUT_ENTRIES_FORMAT,
    SESSION_KEY_BYTES,
    BinaryMessage,
    SessionBatch,
    SessionEntry,
    Unwrap,
    decode_binary,
    decode_get_entries_binary,
    encode_binary,
    encode_get_entries_binary,
    hybrid_decrypt,
    hybrid_encrypt,
    legacy_entries_from_json,
    legacy_entries_to_json,
    load_rsa_public,
    open_session_batch,
    seal_session_batch,
    session_batch_from_json,
    session_batch_to_json,
)
from protocol.http.sse import (
    HEARTBEAT_SECONDS,
    ChangeEvent,
    SseEvent,
    SseParser,
    sse_change,
    sse_event,
    sse_heartbeat,
    sse_hello,
)
from store.base import ResolveOptions, ScanCursor, ScanFilters, ScanPage, StoreHead
from store.bloom import BloomSummary
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.errors import EntryFormatError
from store.json_codec import entry_from_json, entry_to_json, metadata_from_json, metadata_to_json

__all__ = [
    "BINARY_CONTENT_TYPE",
    "DEFAULT_BODY_LIMIT",
    "DEFAULT_BODY_LIMIT_TEXT",
    "GET_ENTRIES_FORMAT",
    "HEARTBEAT_SECONDS",
    "IV_BYTES",
    "MAX_CHALLENGE_LENGTH",
    "MAX_ENTRY_IDS",
    "MAX_HAVE_IDS",
    "MAX_ID_LENGTH",
    "MAX_PEM_LENGTH",
    "MAX_PUT_ENTRIES",
    "MAX_SCAN_PAGE",
    "MAX_SIGNATURE_LENGTH",
    "MAX_USERNAME_LENGTH",
    "PROTOCOL_VERSION",
    "PUT_ENTRIES_FORMAT",
    "SESSION_KEY_BYTES",
    "AuthenticateRequest",
    "BinaryMessage",
    "Capabilities",
    "ChallengeRequest",
    "ChangeEvent",
    "DbRequest",
    "ErrorKind",
    "FindEntriesRequest",
    "FindNewEntriesForDocRequest",
    "FindNewEntriesRequest",
    "GetEntriesRequest",
    "GetEntryMetadataRequest",
    "HttpError",
    "IdsRequest",
    "PutEntriesRequest",
    "PutEntriesResponse",
    "Rejection",
    "ResolveDependenciesRequest",
    "ScanEntriesRequest",
    "ServerInfo",
    "SessionBatch",
    "SessionEntry",
    "SseEvent",
    "SseParser",
    "StoreKindName",
    "SyncOp",
    "Unwrap",
    "auth_failure_json",
    "auth_success_json",
    "b64",
    "bloom_from_json",
    "bloom_to_json",
    "check_db_id",
    "check_tenant_id",
    "compaction_status_json",
    "cursor_from_json",
    "cursor_to_json",
    "decode_binary",
    "decode_get_entries_binary",
    "encode_binary",
    "encode_get_entries_binary",
    "entries_from_json",
    "entries_to_json",
    "entry_from_json",
    "entry_metadata_from_json",
    "entry_metadata_to_json",
    "entry_to_json",
    "error_from_response",
    "filters_from_json",
    "filters_to_json",
    "fingerprints_json",
    "head_from_json",
    "head_to_json",
    "health_json",
    "hybrid_decrypt",
    "hybrid_encrypt",
    "ids_from_json",
    "ids_to_json",
    "invalid",
    "legacy_entries_from_json",
    "legacy_entries_to_json",
    "load_rsa_public",
    "metadata_from_json",
    "metadata_to_json",
    "open_session_batch",
    "resolve_options_from_json",
    "resolve_options_to_json",
    "scan_page_from_json",
    "scan_page_to_json",
    "seal_session_batch",
    "session_batch_from_json",
    "session_batch_to_json",
    "sse_change",
    "sse_event",
    "sse_heartbeat",
    "sse_hello",
    "status_for",
    "sync_path",
    "unb64",
]


# -- requests ----------------------------------------------------------------------------------
class StoreKindName(StrEnum):
    DOCS = "docs"
    ATTACHMENTS = "attachments"


class SyncOp(StrEnum):
    """The ``/<tenant>/sync/<kind>/<op>`` operations (reference-formats §3.1)."""

    CAPABILITIES = "capabilities"
    EVENTS = "events"
    FIND_NEW_ENTRIES = "findNewEntries"
    FIND_NEW_ENTRIES_FOR_DOC = "findNewEntriesForDoc"
    FIND_ENTRIES = "findEntries"
    SCAN_ENTRIES_SINCE = "scanEntriesSince"
    GET_STORE_HEAD = "getStoreHead"
    GET_ID_BLOOM_SUMMARY = "getIdBloomSummary"
    GET_COMPACTION_STATUS = "getCompactionStatus"
    HAS_ENTRIES = "hasEntries"
    GET_ALL_IDS = "getAllIds"
    GET_ENTRIES = "getEntries"
    GET_ENTRIES_BINARY = "getEntriesBinary"
    GET_ENTRY_METADATA = "getEntryMetadata"
    PUT_ENTRIES = "putEntries"
    PUT_ENTRIES_BINARY = "putEntriesBinary"
    RESOLVE_DEPENDENCIES = "resolveDependencies"
    PLAN_DOCUMENT_MATERIALIZATION = "planDocumentMaterialization"
    PLAN_DOCUMENT_MATERIALIZATION_BATCH = "planDocumentMaterializationBatch"
    PLAN_ATTACHMENT_READ = "planAttachmentReadByWalkingMetadata"

    @property
    def method(self) -> str:
        """GET for the three query-string operations, POST for the rest."""
        return "GET" if self in _GET_OPS else "POST"


_GET_OPS = frozenset({SyncOp.CAPABILITIES, SyncOp.EVENTS, SyncOp.GET_ALL_IDS})


def sync_path(tenant_id: str, kind: str, op: SyncOp) -> str:
    return f"/{tenant_id}/sync/{kind}/{op.value}"


@dataclass(frozen=True, slots=True)
class ChallengeRequest:
    """``POST /<t>/auth/challenge``: by username, by signing key, or both."""

    username: str | None = None
    signing_public_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.username is not None:
            out["username"] = self.username
        if self.signing_public_key is not None:
            out["signingPublicKey"] = self.signing_public_key
        return out

    @classmethod
    def from_json(cls, body: Any) -> ChallengeRequest:
        obj = _obj(body)
        username = obj.get("username")
        if username is not None:
            username = _str(username, "username", MAX_USERNAME_LENGTH)
            if any(ord(c) < 0x20 or ord(c) == 0x7F for c in username):
                raise invalid("username must not contain control characters")
        key = _opt_str(obj.get("signingPublicKey"), "signingPublicKey", MAX_SIGNATURE_LENGTH)
        if username is None and key is None:
            raise invalid("username or signingPublicKey is required")
        return cls(username, key)


@dataclass(frozen=True, slots=True)
class AuthenticateRequest:
    """``POST /<t>/auth/authenticate``: Ed25519 over UTF-8(challenge), base64."""

    challenge: str
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {"challenge": self.challenge, "signature": b64(self.signature)}

    @classmethod
    def from_json(cls, body: Any) -> AuthenticateRequest:
        obj = _obj(body)
        if not obj.get("challenge") or not obj.get("signature"):
            raise invalid("challenge and signature are required")
        challenge = _str(obj["challenge"], "challenge", MAX_CHALLENGE_LENGTH)
        signature = _str(obj["signature"], "signature", MAX_SIGNATURE_LENGTH)
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raw = b""  # the reference decodes leniently; a bad signature then fails to verify
        return cls(challenge, raw)


def auth_success_json(token: str) -> dict[str, Any]:
    return {"success": True, "token": token}


def auth_failure_json(message: str) -> dict[str, Any]:
    return {"success": False, "error": message}


@dataclass(frozen=True, slots=True)
class DbRequest:
    """A request naming a database and nothing else (``getStoreHead``, Bloom, compaction)."""

    db_id: str

    def to_json(self) -> dict[str, Any]:
        return {"dbId": self.db_id}

    @classmethod
    def from_json(cls, body: Any) -> DbRequest:
        return cls(check_db_id(_obj(body).get("dbId")))


@dataclass(frozen=True, slots=True)
class FindNewEntriesRequest:
    db_id: str
    have_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"dbId": self.db_id, "haveIds": list(self.have_ids)}

    @classmethod
    def from_json(cls, body: Any) -> FindNewEntriesRequest:
        obj = _obj(body)
        return cls(check_db_id(obj.get("dbId")), _ids(obj.get("haveIds"), "haveIds", MAX_HAVE_IDS))


@dataclass(frozen=True, slots=True)
class FindNewEntriesForDocRequest:
    db_id: str
    doc_id: str
    have_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"dbId": self.db_id, "haveIds": list(self.have_ids), "docId": self.doc_id}

    @classmethod
    def from_json(cls, body: Any) -> FindNewEntriesForDocRequest:
        obj = _obj(body)
        db_id = check_db_id(obj.get("dbId"))
        if not obj.get("docId"):
            raise invalid("docId is required")
        doc_id = _str(obj["docId"], "docId")
        return cls(db_id, doc_id, _ids(obj.get("haveIds"), "haveIds", MAX_HAVE_IDS))


def _entry_type(value: Any, name: str) -> EntryType:
    try:
        return EntryType(value)
    except ValueError as exc:
        raise invalid(f"{name} is not an entry type") from exc


@dataclass(frozen=True, slots=True)
class FindEntriesRequest:
    db_id: str
    entry_type: EntryType
    created_from: int | None = None
    created_until: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dbId": self.db_id,
            "type": self.entry_type.value,
            "creationDateFrom": self.created_from,
            "creationDateUntil": self.created_until,
        }

    @classmethod
    def from_json(cls, body: Any) -> FindEntriesRequest:
        obj = _obj(body)
        return cls(
            check_db_id(obj.get("dbId")),
            _entry_type(obj.get("type"), "type"),
            _opt_int(obj.get("creationDateFrom"), "creationDateFrom"),
            _opt_int(obj.get("creationDateUntil"), "creationDateUntil"),
        )


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


def filters_to_json(filters: ScanFilters | None) -> dict[str, Any] | None:
    if filters is None:
        return None
    out: dict[str, Any] = {}
    if filters.doc_id is not None:
        out["docId"] = filters.doc_id
    if filters.entry_types is not None:
        out["entryTypes"] = sorted(t.value for t in filters.entry_types)
    if filters.created_from is not None:
        out["creationDateFrom"] = filters.created_from
    if filters.created_until is not None:
        out["creationDateUntil"] = filters.created_until
    return out


def filters_from_json(value: Any) -> ScanFilters | None:
    if value is None:
        return None
    obj = _obj(value, "filters")
    types = obj.get("entryTypes")
    if types is not None and not isinstance(types, list):
        raise invalid("filters.entryTypes must be an array")
    return ScanFilters(
        doc_id=_opt_str(obj.get("docId"), "filters.docId"),
        # An empty list filters nothing, as in the reference.
        entry_types=frozenset(_entry_type(t, "filters.entryTypes") for t in types)
        if types
        else None,
        created_from=_opt_int(obj.get("creationDateFrom"), "filters.creationDateFrom"),
        created_until=_opt_int(obj.get("creationDateUntil"), "filters.creationDateUntil"),
    )


@dataclass(frozen=True, slots=True)
class ScanEntriesRequest:
    """A cursor page; the server clamps ``limit`` to 1..1000 (missing = 1000)."""

    db_id: str
    cursor: ScanCursor | None = None
    limit: int = MAX_SCAN_PAGE
    filters: ScanFilters | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dbId": self.db_id,
            "cursor": cursor_to_json(self.cursor),
            "limit": self.limit,
        }
        if self.filters is not None:
            out["filters"] = filters_to_json(self.filters)
        return out

    @classmethod
    def from_json(cls, body: Any) -> ScanEntriesRequest:
        obj = _obj(body)
        raw = obj.get("limit")
        limit = MAX_SCAN_PAGE
        if isinstance(raw, int | float) and not isinstance(raw, bool) and raw == raw:
            limit = MAX_SCAN_PAGE if raw in (float("inf"), float("-inf")) else int(raw // 1)
        return cls(
            check_db_id(obj.get("dbId")),
            cursor_from_json(obj.get("cursor")),
            max(1, min(limit, MAX_SCAN_PAGE)),
            filters_from_json(obj.get("filters")),
        )


@dataclass(frozen=True, slots=True)
class IdsRequest:
    """``hasEntries`` and ``getEntriesBinary``: a database and up to 100 000 ids."""

    db_id: str
    ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"dbId": self.db_id, "ids": list(self.ids)}

    @classmethod
    def from_json(cls, body: Any) -> IdsRequest:
        obj = _obj(body)
        return cls(check_db_id(obj.get("dbId")), _ids(obj.get("ids"), "ids", MAX_ENTRY_IDS))


@dataclass(frozen=True, slots=True)
class GetEntriesRequest:
    db_id: str
    ids: tuple[str, ...] = ()
    session_key_wrap: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dbId": self.db_id, "ids": list(self.ids)}
        if self.session_key_wrap:
            out["sessionKeyWrap"] = True
        return out

    @classmethod
    def from_json(cls, body: Any) -> GetEntriesRequest:
        obj = _obj(body)
        return cls(
            check_db_id(obj.get("dbId")),
            _ids(obj.get("ids"), "ids", MAX_ENTRY_IDS),
            obj.get("sessionKeyWrap") is True,
        )


@dataclass(frozen=True, slots=True)
class GetEntryMetadataRequest:
    db_id: str
    id: str

    def to_json(self) -> dict[str, Any]:
        return {"dbId": self.db_id, "id": self.id}

    @classmethod
    def from_json(cls, body: Any) -> GetEntryMetadataRequest:
        obj = _obj(body)
        db_id = check_db_id(obj.get("dbId"))
        if not obj.get("id"):
            raise invalid("id is required")
        return cls(db_id, _str(obj["id"], "id"))


@dataclass(frozen=True, slots=True)
class Rejection:
    """An entry a put refused, and why (``rejected: [{id, reason}]``)."""

    id: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class PutEntriesRequest:
    """Entries pushed in one request; ``malformed`` are those that did not even parse.

    A malformed entry costs itself, not the batch: it is answered as a rejection.
    """

    db_id: str
    entries: tuple[StoreEntry, ...] = ()
    malformed: tuple[Rejection, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {"dbId": self.db_id, "entries": [entry_to_json(e) for e in self.entries]}

    @classmethod
    def from_json(cls, body: Any) -> PutEntriesRequest:
        obj = _obj(body)
        db_id = check_db_id(obj.get("dbId"))
        raw = obj.get("entries")
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise invalid("entries must be an array")
        if len(raw) > MAX_PUT_ENTRIES:
            raise invalid(
                f"entries must contain at most {MAX_PUT_ENTRIES} elements (received {len(raw)})"
            )
        entries, malformed = [], []
        for item in raw:
            try:
                entries.append(entry_from_json(item))
            except EntryFormatError as exc:
                malformed.append(Rejection(_entry_label(item), f"malformed entry: {exc}"))
        return cls(db_id, tuple(entries), tuple(malformed))

    def to_binary(self, tenant_id: str) -> bytes:
        """The ``putEntriesBinary`` body (``mdb-put-v2``; raw ``encryptedData`` payloads)."""
        header = {"format": PUT_ENTRIES_FORMAT, "tenantId": tenant_id, "dbId": self.db_id}
        return encode_binary(
            header, [(metadata_to_json(e.metadata), e.encrypted_data) for e in self.entries]
        )

    @classmethod
    def from_binary(cls, data: bytes) -> PutEntriesRequest:
        message = decode_binary(data, max_frames=MAX_PUT_ENTRIES)
        fmt = message.header.get("format")
        if fmt != PUT_ENTRIES_FORMAT:
            raise invalid(f"Unsupported binary entry format: {str(fmt)[:64]}")
        db_id = check_db_id(message.header.get("dbId"))
        entries, malformed = [], []
        for meta, payload in message.frames:
            try:
                entries.append(StoreEntry(metadata_from_json(meta), payload))
            except EntryFormatError as exc:
                malformed.append(Rejection(_entry_label(meta), f"malformed entry: {exc}"))
        return cls(db_id, tuple(entries), tuple(malformed))


def _entry_label(item: Any) -> str:
    entry_id = item.get("id") if isinstance(item, Mapping) else None
    return entry_id[:MAX_ID_LENGTH] if isinstance(entry_id, str) and entry_id else "?"


def resolve_options_to_json(options: ResolveOptions | None) -> dict[str, Any] | None:
    if options is None:
        return None
    out: dict[str, Any] = {"includeStart": options.include_start}
    if options.stop_at_entry_type is not None:
        out["stopAtEntryType"] = options.stop_at_entry_type.value
    if options.max_depth is not None:
        out["maxDepth"] = options.max_depth
    return out


def resolve_options_from_json(value: Any) -> ResolveOptions | None:
    if value is None:
        return None
    obj = _obj(value, "options")
    stop = obj.get("stopAtEntryType")
    depth = obj.get("maxDepth")
    include = obj.get("includeStart")
    if include is not None and not isinstance(include, bool):
        raise invalid("options.includeStart must be a boolean")
    return ResolveOptions(
        None if stop is None else _entry_type(stop, "options.stopAtEntryType"),
        None if depth is None else _int(depth, "options.maxDepth", 0, 1 << 31),
        True if include is None else include,
    )


@dataclass(frozen=True, slots=True)
class ResolveDependenciesRequest:
    db_id: str
    start_id: str
    options: ResolveOptions | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dbId": self.db_id, "startId": self.start_id}
        if self.options is not None:
            out["options"] = resolve_options_to_json(self.options)
        return out

    @classmethod
    def from_json(cls, body: Any) -> ResolveDependenciesRequest:
        obj = _obj(body)
        db_id = check_db_id(obj.get("dbId"))
        if not obj.get("startId"):
            raise invalid("startId is required")
        return cls(
            db_id, _str(obj["startId"], "startId"), resolve_options_from_json(obj.get("options"))
        )


# -- responses ---------------------------------------------------------------------------------
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
