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
from collections.abc import Mapping
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
from protocol.http.responses import (
    Capabilities,
    PutEntriesResponse,
    Rejection,
    ServerInfo,
    bloom_from_json,
    bloom_to_json,
    compaction_status_json,
    cursor_from_json,
    cursor_to_json,
    entries_from_json,
    entries_to_json,
    entry_metadata_from_json,
    entry_metadata_to_json,
    fingerprints_json,
    head_from_json,
    head_to_json,
    health_json,
    ids_from_json,
    ids_to_json,
    scan_page_from_json,
    scan_page_to_json,
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
from store.base import ResolveOptions, ScanCursor, ScanFilters
from store.entry import EntryType, StoreEntry
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
