"""The store operations a session carries, and their argument/result shapes.

Both sides import these helpers, so a request is built and parsed by the same code. Payloads in
``get``/``put`` travel sealed with the session key (spec layer 2); metadata travels in clear
inside the channel's TLS/DTLS, as a relay must read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.messages import DEFAULT_LIMITS, Limits, array, integer, text, texts
from store.base import (
    IdPage,
    OrderKey,
    PutResult,
    ResolveOptions,
    ScanCursor,
    ScanFilters,
    ScanPage,
    StoreHead,
)
from store.codec import CodecLimits, entry_from_wire, metadata_from_wire, metadata_to_wire
from store.entry import EntryMetadata, EntryType, StoreEntry, content_hash
from store.errors import EntryFormatError
from store.ids import doc_entry_doc_id, parse_attachment_chunk_id


class Op(StrEnum):
    DATABASES = "dbs"
    HEAD = "head"
    SCAN = "scan"
    #: A scan of ``(receipt_order, id)`` only, leaving out what came from the scanner.
    SCAN_IDS = "scan_ids"
    HAS = "has"
    METADATA = "meta"
    GET = "get"
    #: ``get`` with each entry's metadata packed: fields the receiver rebuilds are left out.
    GET_PACKED = "getp"
    PUT = "put"
    BLOOM = "bloom"
    FIND_FOR_DOC = "find_doc"
    FIND = "find"
    RESOLVE = "resolve"
    SUBSCRIBE = "subscribe"


class StoreKind(StrEnum):
    DOCS = "docs"
    ATTACHMENTS = "attachments"


#: Notification topic: a served store has new entries (``[db, kind, epoch, max_receipt_order]``).
CHANGED = "changed"
#: Request ``[target_identity, payload]`` asks the peer to pass ``payload`` to ``target``; the
#: target gets notification ``[sender_identity, payload]``. Rendezvous for WebRTC signaling.
SIGNAL = "signal"
MAX_SIGNAL_BYTES = 64 * 1024
MAX_SCAN_PAGE = 1000

_CODEC_LIMITS = CodecLimits()


def bad_args(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.BAD_ARGUMENTS, message)


def db_and_kind(args: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> tuple[str, StoreKind]:
    if len(args) < 2:
        raise bad_args("database and store kind required")
    db = text(args[0], "database", limits)
    try:
        return db, StoreKind(text(args[1], "kind", limits))
    except ValueError as exc:
        raise bad_args(f"unknown store kind {args[1]!r}") from exc


def metadata_list_from_wire(value: Any, limits: Limits = DEFAULT_LIMITS) -> list[EntryMetadata]:
    try:
        return [metadata_from_wire(item, _CODEC_LIMITS) for item in array(value, "entries", limits)]
    except EntryFormatError as exc:
        raise RemoteProtocolError(ErrorCode.MALFORMED, str(exc)) from exc


def metadata_list_to_wire(items: Sequence[EntryMetadata]) -> list[Any]:
    return [metadata_to_wire(meta) for meta in items]


def cursor_to_wire(cursor: ScanCursor | None) -> list[Any] | None:
    return None if cursor is None else [cursor.receipt_order, cursor.id]


def cursor_from_wire(value: Any, limits: Limits = DEFAULT_LIMITS) -> ScanCursor | None:
    if value is None:
        return None
    pair = array(value, "cursor", limits)
    if len(pair) != 2:
        raise bad_args("a cursor is [receipt_order, id]")
    return ScanCursor(integer(pair[0], "cursor receipt_order"), text(pair[1], "cursor id", limits))


def filters_to_wire(filters: ScanFilters | None) -> dict[str, Any] | None:
    if filters is None:
        return None
    return {
        "doc": filters.doc_id,
        "types": None if filters.entry_types is None else sorted(filters.entry_types),
        "from": filters.created_from,
        "until": filters.created_until,
    }


def _optional_int(value: Any, field: str) -> int | None:
    return None if value is None else integer(value, field, -(1 << 63), (1 << 63) - 1)


def entry_type(value: Any) -> EntryType:
    try:
        return EntryType(text(value, "entry type"))
    except ValueError as exc:
        raise bad_args(f"unknown entry type {value!r}") from exc


def filters_from_wire(value: Any, limits: Limits = DEFAULT_LIMITS) -> ScanFilters | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > 4:
        raise bad_args("filters must be a map")
    doc = value.get("doc")
    types = value.get("types")
    return ScanFilters(
        doc_id=None if doc is None else text(doc, "filter doc", limits),
        entry_types=None
        if types is None
        else frozenset(entry_type(t) for t in array(types, "filter types", limits)),
        created_from=_optional_int(value.get("from"), "filter from"),
        created_until=_optional_int(value.get("until"), "filter until"),
    )


def page_to_wire(page: ScanPage) -> list[Any]:
    return [metadata_list_to_wire(page.entries), cursor_to_wire(page.next_cursor), page.has_more]


def page_from_wire(value: Any, limits: Limits = DEFAULT_LIMITS) -> ScanPage:
    parts = array(value, "page", limits)
    if len(parts) != 3 or not isinstance(parts[2], bool):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "a page is [entries, cursor, has_more]")
    entries = tuple(metadata_list_from_wire(parts[0], limits))
    return ScanPage(entries, cursor_from_wire(parts[1], limits), parts[2])


def id_page_to_wire(page: IdPage) -> list[Any]:
    """A ``scan_ids`` answer: ``[[[receipt_order, id]...], cursor, has_more]``."""
    return [[list(key) for key in page.keys], cursor_to_wire(page.next_cursor), page.has_more]


def id_page_from_wire(value: Any, limit: int, limits: Limits = DEFAULT_LIMITS) -> IdPage:
    parts = array(value, "id page", limits)
    if len(parts) != 3 or not isinstance(parts[2], bool):
        raise RemoteProtocolError(ErrorCode.MALFORMED, "an id page is [keys, cursor, has_more]")
    items = array(parts[0], "id page keys", limits)
    if len(items) > limit:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "the peer sent more keys than asked for")
    keys: list[OrderKey] = []
    for item in items:
        if not isinstance(item, list) or len(item) != 2:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "a key is [receipt_order, id]")
        key = (integer(item[0], "receipt_order"), text(item[1], "id", limits))
        if keys and key <= keys[-1]:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "id page keys out of order")
        keys.append(key)
    return IdPage(tuple(keys), cursor_from_wire(parts[1], limits), parts[2])


def head_to_wire(head: StoreHead) -> list[Any]:
    return [head.epoch, head.max_receipt_order]


def head_from_wire(value: Any, limits: Limits = DEFAULT_LIMITS) -> StoreHead:
    parts = array(value, "head", limits)
    if len(parts) != 2:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "a head is [epoch, max_receipt_order]")
    return StoreHead(text(parts[0], "epoch", limits), integer(parts[1], "max_receipt_order"))


def sealed_entry_to_wire(entry: StoreEntry, sealed_payload: bytes) -> list[Any]:
    return [metadata_to_wire(entry.metadata), sealed_payload]


def metadata_to_wire_sealed(entry: StoreEntry, sealed_payload: bytes) -> tuple[Any, bytes]:
    """An entry as a ``put`` carries it: its metadata's wire form and its sealed payload."""
    return (metadata_to_wire(entry.metadata), sealed_payload)


def sealed_entries_from_wire(
    value: Any, limits: Limits = DEFAULT_LIMITS
) -> list[tuple[Any, bytes]]:
    """``(metadata wire, sealed payload)`` pairs; the caller opens payloads, then builds entries."""
    out: list[tuple[Any, bytes]] = []
    for item in array(value, "entries", limits):
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], bytes):
            raise RemoteProtocolError(ErrorCode.MALFORMED, "an entry is [metadata, payload]")
        out.append((item[0], item[1]))
    return out


def entry_from_parts(meta_wire: Any, payload: bytes) -> StoreEntry:
    try:
        return entry_from_wire([meta_wire, payload], _CODEC_LIMITS)
    except EntryFormatError as exc:
        raise RemoteProtocolError(ErrorCode.MALFORMED, str(exc)) from exc


#: Metadata fields (``store.codec`` layout) a packed ``get`` leaves out as nil when the receiver
#: can rebuild them: the content hash and size from the payload, the document from the id, the
#: receipt order (the receiver assigns its own); the author is an index into the answer's list.
_HASH, _DOC, _AUTHOR, _SIZE, _ORDER = 3, 4, 7, 10, 18
#: Authors per packed answer (a batch rarely has more than a handful).
MAX_PACKED_AUTHORS = 1024


def _doc_of(entry_id: str) -> str | None:
    """The document an entry id or chunk id names; None when it is neither."""
    try:
        return doc_entry_doc_id(entry_id)
    except EntryFormatError:
        pass
    try:
        return parse_attachment_chunk_id(entry_id).doc_id
    except EntryFormatError:
        return None


class EntryPacker:
    """Builds a packed ``get`` answer: ``[[author...], [[packed metadata, sealed]...], refused]``.

    A field is left out only if the receiver's rebuilding gives exactly the same value, so
    the entry that arrives is the entry that was stored (and its signatures still check it).
    """

    def __init__(self) -> None:
        self.authors: list[str] = []
        self._index: dict[str, int] = {}

    def pack(self, entry: StoreEntry, sealed_payload: bytes) -> list[Any]:
        meta = metadata_to_wire(entry.metadata)
        data = entry.encrypted_data
        if meta[_HASH] == content_hash(data):
            meta[_HASH] = None
        if meta[_DOC] == _doc_of(entry.id):
            meta[_DOC] = None
        if meta[_SIZE] == len(data):
            meta[_SIZE] = None
        meta[_ORDER] = None
        author = meta[_AUTHOR]
        if author not in self._index and len(self.authors) < MAX_PACKED_AUTHORS:
            self._index[author] = len(self.authors)
            self.authors.append(author)
        if author in self._index:
            meta[_AUTHOR] = self._index[author]
        return [meta, sealed_payload]

    def answer(self, packed: list[Any], refused: Sequence[Refusal]) -> list[Any]:
        return [self.authors, *entries_answer_to_wire(packed, refused)]


def packed_answer_from_wire(
    value: Any, limits: Limits = DEFAULT_LIMITS
) -> tuple[tuple[str, ...], list[tuple[Any, bytes]], list[Refusal]]:
    parts = array(value, "packed get answer", limits)
    if len(parts) != 3:
        raise RemoteProtocolError(
            ErrorCode.MALFORMED, "a packed answer is [authors, entries, refused]"
        )
    authors = texts(parts[0], "authors", limits)
    pairs, refused = entries_answer_from_wire(parts[1:], limits)
    return authors, pairs, refused


def entry_from_packed(meta_wire: Any, payload: bytes, authors: Sequence[str]) -> StoreEntry:
    """The entry a packed answer carried: rebuild what was left out, then decode strictly."""
    if not isinstance(meta_wire, list) or len(meta_wire) <= _ORDER:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "packed metadata is too short")
    meta = list(meta_wire)
    if meta[_HASH] is None:
        meta[_HASH] = content_hash(payload)
    if meta[_DOC] is None and isinstance(meta[2], str):
        meta[_DOC] = _doc_of(meta[2])
    if meta[_SIZE] is None:
        meta[_SIZE] = len(payload)
    if meta[_ORDER] is None:
        meta[_ORDER] = 0
    author = meta[_AUTHOR]
    if isinstance(author, int) and not isinstance(author, bool):
        if not 0 <= author < len(authors):
            raise RemoteProtocolError(ErrorCode.MALFORMED, "packed author index out of range")
        meta[_AUTHOR] = authors[author]
    return entry_from_parts(meta, payload)


def resolve_options_to_wire(options: ResolveOptions | None) -> list[Any]:
    options = options or ResolveOptions()
    stop = None if options.stop_at_entry_type is None else str(options.stop_at_entry_type)
    return [stop, options.max_depth, options.include_start]


def resolve_options_from_wire(value: Any) -> ResolveOptions:
    if not isinstance(value, list) or len(value) != 3 or not isinstance(value[2], bool):
        raise bad_args("resolve options are [stop_type, max_depth, include_start]")
    stop = None if value[0] is None else entry_type(value[0])
    depth = None if value[1] is None else integer(value[1], "max_depth", 0, 1 << 31)
    return ResolveOptions(stop, depth, value[2])


def ids_from_wire(value: Any, limits: Limits = DEFAULT_LIMITS) -> tuple[str, ...]:
    return texts(value, "ids", limits)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An entry the serving peer would not send, and why (too large, damaged there)."""

    entry_id: str
    code: ErrorCode
    reason: str


def entries_answer_to_wire(sealed: list[Any], refused: Sequence[Refusal]) -> list[Any]:
    """A ``get`` answer: ``[[metadata, sealed payload]...], [[id, code, reason]...]``."""
    return [sealed, [[r.entry_id, int(r.code), r.reason] for r in refused]]


def entries_answer_from_wire(
    value: Any, limits: Limits = DEFAULT_LIMITS
) -> tuple[list[tuple[Any, bytes]], list[Refusal]]:
    parts = array(value, "get answer", limits)
    if len(parts) != 2:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "a get answer is [entries, refused]")
    refused: list[Refusal] = []
    for item in array(parts[1], "refused", limits):
        if not isinstance(item, list) or len(item) != 3:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "a refusal is [id, code, reason]")
        code = integer(item[1], "refusal code", 0, 1 << 16)
        known = ErrorCode(code) if code in ErrorCode._value2member_map_ else ErrorCode.REFUSED
        refused.append(
            Refusal(text(item[0], "refused id", limits), known, text(item[2], "reason", limits))
        )
    return sealed_entries_from_wire(parts[0], limits), refused


def put_answer_to_wire(
    result: PutResult, rejected: Sequence[tuple[str, str]], deferred: Sequence[str]
) -> list[Any]:
    """A ``put`` answer: ``[stored, existing, [[id, reason]...]]``; deferred count as refused."""
    refusals = [[i, r] for i, r in rejected]
    refusals += [[i, "the author is not granted in this node's directory (yet)"] for i in deferred]
    return [list(result.stored), list(result.existing), refusals]


def put_answer_from_wire(value: Any, limits: Limits = DEFAULT_LIMITS) -> PutResult:
    parts = array(value, "put answer", limits)
    if len(parts) != 3:
        raise RemoteProtocolError(ErrorCode.MALFORMED, "put answers [stored, existing, rejected]")
    rejected: list[tuple[str, str]] = []
    for pair in array(parts[2], "rejected", limits):
        if not isinstance(pair, list) or len(pair) != 2:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "a rejection is [id, reason]")
        rejected.append((text(pair[0], "rejected id", limits), text(pair[1], "reason", limits)))
    return PutResult(
        ids_from_wire(parts[0], limits), ids_from_wire(parts[1], limits), tuple(rejected)
    )
