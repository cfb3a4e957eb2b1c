"""A store of a reference HTTP sync server, as a ``ContentAddressedStore``; and that server as
the pull/follow driver's ``SyncPeer``.

``HttpSyncClient`` is one server and tenant: it authenticates with the device's signing key
(challenge, Ed25519 signature, JWT), keeps the token until 60 s before it expires, shares it with
every store of that server and tenant, and re-authenticates once, transparently, when a call is
answered 401 (tokens die when the server restarts). ``HttpRemoteStore`` is one database and
store kind: it negotiates capabilities (``sync-v1`` with no features when the server will not
say), scans by cursor on ``sync-v4`` and later (emulated with ``findNewEntries`` before), asks
for session-key-wrapped entries (one RSA unwrap per batch), in the binary framing when offered,
and pushes in batches that fit the server's advertised body limit, halving any it answers 413.

Nothing received is trusted here: every entry a sync pulls goes through the receiving
database's admission (``MindooDB.admit_entries``: signature, content hash, trust) exactly as
entries pulled from a native peer do. What this module checks is the shape of the answers and
that a server sends only what was asked for.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from protocol.errors import ErrorCode, RequestError
from protocol.http.client import (
    BadResponse,
    ChangeEvent,
    HttpFetcher,
    HttpResponse,
    InvalidToken,
    SseParser,
    TokenCache,
    Unreachable,
    error_for,
    json_body,
    parse_byte_limit,
    send_batched,
)
from protocol.interfaces import Sealer
from protocol.notifications import StoreChanged
from protocol.store_ops import MAX_SCAN_PAGE, StoreKind
from store.base import (
    ContentAddressedStore,
    PutResult,
    ResolveOptions,
    ScanCursor,
    ScanFilters,
    ScanPage,
    StoreHead,
)
from store.bloom import BloomSummary
from store.codec import DEFAULT_LIMITS, CodecLimits
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.errors import EntryFormatError
from store.json_codec import entry_to_json, metadata_from_json

log = logging.getLogger("mindood.protocol.http")

#: Ids per ``hasEntries``/``getEntries`` request (the server takes up to 100 000).
ID_BATCH = 1000
#: ``haveIds`` the server takes in one ``findNewEntries`` (reference validation limit).
MAX_HAVE_IDS = 100_000
_VERSION = re.compile(r"^sync-v(\d{1,6})$")
JSON = "application/json"


class HttpCredentials(Protocol):
    """Who the client authenticates as, and how it opens what the server wraps for it.

    The node implements it with the tenant user's keys; ``protocol`` holds none.
    """

    @property
    def identity(self) -> str:
        """The device's Ed25519 public key PEM (sent with every challenge request)."""
        ...

    @property
    def username(self) -> str | None:
        """The user name sent with the challenge (``None``: authenticate by key alone)."""
        ...

    def sign(self, data: bytes) -> bytes: ...

    def open_incoming_key(self, wrapped: bytes) -> Sealer:
        """RSA-unwrap a session key; ``ValueError`` if it was not wrapped for us."""
        ...

    def open_hybrid(self, blob: bytes) -> bytes:
        """Open a per-entry hybrid RSA payload (legacy ``rsaEncryptedPayload``); ``ValueError``."""
        ...


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the server said it supports (``NetworkSyncCapabilities``); fallback: ``sync-v1``."""

    protocol_version: str = "sync-v1"
    cursor_scan: bool = False
    bloom: bool = False
    store_head: bool = False
    session_key_wrap: bool = False
    binary_entries: bool = False
    change_events: bool = False
    server_time: int | None = None

    @property
    def version(self) -> int:
        match = _VERSION.match(self.protocol_version)
        return int(match.group(1)) if match else 1

    @property
    def receipt_order_cursors(self) -> bool:
        """Server-side cursor scan is used from ``sync-v4`` (the reference client's rule)."""
        return self.version >= 4 and self.cursor_scan

    @classmethod
    def from_json(cls, obj: object) -> Capabilities:
        if not isinstance(obj, Mapping) or not isinstance(obj.get("protocolVersion"), str):
            raise BadResponse("capabilities without a protocolVersion")

        def flag(name: str) -> bool:
            return obj.get(name) is True

        server_time = obj.get("serverTime")
        return cls(
            str(obj["protocolVersion"])[:32],
            cursor_scan=flag("supportsCursorScan"),
            bloom=flag("supportsIdBloomSummary"),
            store_head=flag("supportsStoreHead"),
            session_key_wrap=flag("supportsSessionKeyWrap"),
            binary_entries=flag("supportsBinaryEntries"),
            change_events=flag("supportsChangeEvents"),
            server_time=server_time if isinstance(server_time, int) else None,
        )


# -- small parsers of answers --------------------------------------------------------------------
def _list(data: Mapping[str, Any], key: str, limit: int = 1_000_000) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list) or len(value) > limit:
        raise BadResponse(f"{key!r} must be a list of at most {limit} items")
    return value


def _ids(data: Mapping[str, Any], key: str = "ids") -> list[str]:
    ids = _list(data, key)
    if not all(isinstance(i, str) and len(i) <= 1024 for i in ids):
        raise BadResponse(f"{key!r} must hold entry ids")
    return ids


def metadata_of(obj: object, limits: CodecLimits = DEFAULT_LIMITS) -> EntryMetadata:
    """``SerializedEntryMetadata`` with the server's ``receiptOrder`` kept (cursors need it)."""
    try:
        meta = metadata_from_json(obj, limits)
    except EntryFormatError as exc:
        raise BadResponse(f"entry metadata: {exc}") from exc
    assert isinstance(obj, Mapping)
    order = obj.get("receiptOrder")
    if isinstance(order, int) and not isinstance(order, bool) and 0 <= order < 2**63:
        meta = dataclasses.replace(meta, receipt_order=order)
    return meta


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadResponse(f"{what} must be base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadResponse(f"{what} is not base64") from exc


def cursor_to_json(cursor: ScanCursor | None) -> dict[str, Any] | None:
    return None if cursor is None else {"receiptOrder": cursor.receipt_order, "id": cursor.id}


def cursor_from_json(obj: object) -> ScanCursor | None:
    if obj is None:
        return None
    if (
        not isinstance(obj, Mapping)
        or not isinstance(obj.get("receiptOrder"), int)
        or not isinstance(obj.get("id"), str)
    ):
        raise BadResponse("a cursor is {receiptOrder, id}")
    return ScanCursor(int(obj["receiptOrder"]), str(obj["id"]))


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


def put_result_of(sent: Sequence[str], data: Mapping[str, Any]) -> PutResult:
    """A ``putEntries`` answer as a ``PutResult``.

    The server acknowledges every entry it holds with a receipt (newly stored or already there,
    it does not say which: both count as stored) and refuses others by id; an older server
    that sends no receipts stored whatever it did not refuse. Ids it names that were not sent
    are ignored.
    """
    asked = set(sent)
    rejected: dict[str, str] = {}
    for item in _list(data, "rejected"):
        if isinstance(item, Mapping) and isinstance(item.get("id"), str) and item["id"] in asked:
            reason = item.get("reason")
            rejected[item["id"]] = reason[:500] if isinstance(reason, str) else "rejected"
    if "receipts" in data:
        acked = {
            r.get("id") for r in _list(data, "receipts") if isinstance(r, Mapping)
        } & asked
        stored = [i for i in sent if i in acked and i not in rejected]
        existing = [i for i in sent if i not in acked and i not in rejected]
    else:
        stored = [i for i in sent if i not in rejected]
        existing = []
    return PutResult(tuple(stored), tuple(existing), tuple(rejected.items()))


# -- the client of one server and tenant ----------------------------------------------------------
class HttpSyncClient:
    """Auth, capabilities and request plumbing for one server and tenant."""

    def __init__(
        self,
        fetcher: HttpFetcher,
        tenant_id: str,
        credentials: HttpCredentials,
        *,
        base_path: str = "",
        clock: Callable[[], float] = time.time,
        limits: CodecLimits = DEFAULT_LIMITS,
    ) -> None:
        self.fetcher = fetcher
        self.tenant_id = tenant_id
        self.credentials = credentials
        self.limits = limits
        self._base = f"{base_path.rstrip('/')}/{tenant_id}"
        self._root = base_path.rstrip("/")
        self._clock = clock
        self.tokens = TokenCache()
        self._auth_lock = asyncio.Lock()
        self._capabilities: dict[tuple[str, StoreKind], Capabilities] = {}
        self._body_limit: int | None | bool = False  # False: not asked yet
        self._stores: dict[tuple[str, StoreKind], HttpRemoteStore] = {}
        #: Authentications performed (tests and status).
        self.authentications = 0

    @property
    def url(self) -> str:
        return self.fetcher.origin + self._root

    def store(self, db: str, kind: StoreKind = StoreKind.DOCS) -> HttpRemoteStore:
        """The server's store ``db``/``kind`` (one instance per pair, sharing this client)."""
        key = (db, kind)
        if key not in self._stores:
            self._stores[key] = HttpRemoteStore(self, db, kind)
        return self._stores[key]

    # -- transport ---------------------------------------------------------------------------
    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpResponse:
        try:
            return await self.fetcher.request(
                method, path, query=query, headers=headers, body=body
            )
        except (OSError, TimeoutError) as exc:
            raise Unreachable(f"{self.fetcher.origin}: {exc or type(exc).__name__}") from exc

    # -- auth --------------------------------------------------------------------------------
    async def token(self) -> str:
        """A valid bearer token: the cached one, or a fresh one (one authentication at a time)."""
        cached = self.tokens.current(self._clock())
        if cached is not None:
            return cached
        async with self._auth_lock:
            cached = self.tokens.current(self._clock())
            if cached is not None:
                return cached
            return await self._authenticate()

    async def _authenticate(self) -> str:
        creds = self.credentials
        ask: dict[str, str] = {"signingPublicKey": creds.identity}
        if creds.username:
            ask["username"] = creds.username
        answer = json_body(
            await self._send(
                "POST",
                f"{self._base}/auth/challenge",
                headers={"Content-Type": JSON},
                body=json.dumps(ask).encode(),
            )
        )
        challenge = answer.get("challenge")
        if not isinstance(challenge, str) or not 0 < len(challenge) <= 4096:
            raise BadResponse("the server sent no challenge")
        signature = base64.b64encode(creds.sign(challenge.encode())).decode()
        reply = await self._send(
            "POST",
            f"{self._base}/auth/authenticate",
            headers={"Content-Type": JSON},
            body=json.dumps({"challenge": challenge, "signature": signature}).encode(),
        )
        result = json_body(reply)
        token = result.get("token")
        if result.get("success") is not True or not isinstance(token, str) or len(token) > 16384:
            raise RequestError(ErrorCode.AUTH_FAILED, "the server refused our signature")
        self.tokens.store(token, self._clock())
        self.authentications += 1
        return token

    async def call(
        self,
        method: str,
        kind: StoreKind,
        op: str,
        *,
        payload: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        content_type: str = JSON,
        query: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """An authenticated ``/sync/<kind>/<op>`` call; one re-auth if the token was refused.

        Returns a 2xx response; any other status raises the error it stands for.
        """
        data = json.dumps(payload).encode() if payload is not None else body
        path = f"{self._base}/sync/{kind.value}/{op}"
        for attempt in (0, 1):
            token = await self.token()
            headers = {"Authorization": f"Bearer {token}"}
            if data is not None:
                headers["Content-Type"] = content_type
            response = await self._send(method, path, query=query, headers=headers, body=data)
            if 200 <= response.status < 300:
                return response
            error = error_for(response)
            if isinstance(error, InvalidToken) and attempt == 0:
                log.info("token refused; authenticating again", extra={"server": self.url})
                self.tokens.clear(token)
                continue
            raise error
        raise AssertionError("unreachable")

    async def call_json(
        self, kind: StoreKind, op: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        return json_body(await self.call("POST", kind, op, payload=payload))

    # -- negotiation -------------------------------------------------------------------------
    async def capabilities(self, db: str, kind: StoreKind) -> Capabilities:
        """What the server supports for ``db``/``kind``; ``sync-v1`` if it will not say.

        A server that answers with an error (or nonsense) is taken as ``sync-v1`` for good, as
        the reference client does; one that cannot be reached is asked again next time.
        """
        key = (db, kind)
        if key in self._capabilities:
            return self._capabilities[key]
        try:
            data = json_body(await self.call("GET", kind, "capabilities", query={"dbId": db}))
            found = Capabilities.from_json(data.get("capabilities"))
        except Unreachable:
            raise
        except RequestError as exc:
            log.info(
                "the server gave no capabilities; using sync-v1",
                extra={"server": self.url, "db": db, "error": exc.message},
            )
            found = Capabilities()
        self._capabilities[key] = found
        return found

    async def body_limit(self) -> int | None:
        """The server's JSON body limit from its server info (``None``: unknown, adapt on 413)."""
        if self._body_limit is False:
            limit: int | None = None
            try:
                data = json_body(
                    await self._send("GET", f"{self._root}/.well-known/mindoodb-server-info")
                )
                limit = parse_byte_limit(data.get("maxJsonRequestBodyBytes"))
                if limit is None:
                    limit = parse_byte_limit(data.get("maxJsonRequestBodyLimit"))
            except RequestError:
                limit = None
            self._body_limit = limit
        return None if self._body_limit is True else self._body_limit

    # -- live changes ------------------------------------------------------------------------
    async def changes(
        self, kind: StoreKind, gate_db: str = "directory"
    ) -> AsyncIterator[ChangeEvent]:
        """The server's change feed for ``kind`` (every database of the tenant) until it ends."""
        path = f"{self._base}/sync/{kind.value}/events"
        for attempt in (0, 1):
            token = await self.token()
            headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
            try:
                async with self.fetcher.stream(
                    path, query={"dbId": gate_db}, headers=headers
                ) as stream:
                    if stream.status == 401 and attempt == 0:
                        self.tokens.clear(token)
                        continue
                    if stream.status != 200:
                        body = await stream.read_body()
                        raise error_for(HttpResponse(stream.status, "", body))
                    parser = SseParser()
                    async for chunk in stream.chunks():
                        for event in parser.feed(chunk):
                            yield event
                    return
            except (OSError, TimeoutError) as exc:
                raise Unreachable(f"{self.fetcher.origin} change feed: {exc}") from exc


# -- one store ------------------------------------------------------------------------------------
class HttpRemoteStore(ContentAddressedStore):
    """Database ``db``, store ``kind``, of an HTTP sync server."""

    def __init__(self, client: HttpSyncClient, db: str, kind: StoreKind) -> None:
        self.client = client
        self.db = db
        self.kind = kind
        self._name = f"{client.url}/{client.tenant_id}/{db}/{kind.value}"

    def get_id(self) -> str:
        return self._name

    async def capabilities(self) -> Capabilities:
        return await self.client.capabilities(self.db, self.kind)

    def _body(self, **fields: Any) -> dict[str, Any]:
        return {"tenantId": self.client.tenant_id, "dbId": self.db, **fields}

    async def _post(self, op: str, **fields: Any) -> dict[str, Any]:
        return await self.client.call_json(self.kind, op, self._body(**fields))

    def _metas(self, data: Mapping[str, Any], key: str = "entries") -> list[EntryMetadata]:
        return [metadata_of(obj, self.client.limits) for obj in _list(data, key)]

    # -- write -------------------------------------------------------------------------------
    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        if not entries:
            return PutResult()
        caps = await self.capabilities()
        limit = await self.client.body_limit()
        if caps.binary_entries:
            return await self._put_binary(entries, limit)
        serialized = [entry_to_json(e) for e in entries]
        texts = [json.dumps(s) for s in serialized]
        overhead = len(json.dumps(self._body(entries=[])).encode())

        async def send(batch: Sequence[str]) -> PutResult:
            body = json.dumps(self._body(entries=[])).encode()[:-2] + (
                ("[" + ",".join(batch) + "]}").encode()
            )
            sent = [json.loads(t)["id"] for t in batch]
            response = await self.client.call("POST", self.kind, "putEntries", body=body)
            return put_result_of(sent, json_body(response))

        results = await send_batched(
            texts, send, sizes=[len(t.encode()) for t in texts], overhead=overhead, limit=limit
        )
        return _merge(results)

    async def _put_binary(self, entries: Sequence[StoreEntry], limit: int | None) -> PutResult:
        from protocol.http import wire

        header = {"format": wire.PUT_FORMAT, "tenantId": self.client.tenant_id, "dbId": self.db}
        overhead = len(wire.encode_put(header, []))
        sizes = [len(wire.encode_put(header, [e])) - overhead for e in entries]

        async def send(batch: Sequence[StoreEntry]) -> PutResult:
            body = wire.encode_put(header, batch)
            response = await self.client.call(
                "POST",
                self.kind,
                "putEntriesBinary",
                body=body,
                content_type="application/octet-stream",
            )
            return put_result_of([e.id for e in batch], json_body(response))

        return _merge(
            await send_batched(entries, send, sizes=sizes, overhead=overhead, limit=limit)
        )

    # -- read --------------------------------------------------------------------------------
    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, StoreEntry] = {}
        for start in range(0, len(wanted), ID_BATCH):
            chunk = wanted[start : start + ID_BATCH]
            asked = set(chunk)
            for entry in await self._fetch(chunk):
                if entry.id in asked:  # a server sends what it was asked for, nothing else
                    found[entry.id] = entry
        return [found[i] for i in ids if i in found]

    async def _fetch(self, ids: list[str]) -> list[StoreEntry]:
        caps = await self.capabilities()
        if caps.binary_entries and caps.session_key_wrap:
            from protocol.http import wire

            response = await self.client.call(
                "POST", self.kind, "getEntriesBinary", payload=self._body(ids=ids)
            )
            return self._open_binary(wire, response.body)
        if caps.session_key_wrap:
            data = await self._post("getEntries", ids=ids, sessionKeyWrap=True)
            return self._open_session(data)
        data = await self._post("getEntries", ids=ids)
        return [self._open_legacy(obj) for obj in _list(data, "entries")]

    def _open_binary(self, wire: Any, body: bytes) -> list[StoreEntry]:
        try:
            header, frames = wire.decode_entries(body)
        except (ValueError, EntryFormatError) as exc:
            raise BadResponse(f"binary entries: {exc}") from exc
        if not frames:
            return []
        sealer = self._sealer(_b64(header.get("wrappedSessionKey"), "wrappedSessionKey"))
        return [
            self._entry(meta, sealer, _b64(meta.get("iv"), "iv"), payload)
            for meta, payload in frames
        ]

    def _open_session(self, data: Mapping[str, Any]) -> list[StoreEntry]:
        items = _list(data, "entries")
        if not items:
            return []
        sealer = self._sealer(_b64(data.get("wrappedSessionKey"), "wrappedSessionKey"))
        out: list[StoreEntry] = []
        for obj in items:
            if not isinstance(obj, Mapping):
                raise BadResponse("an entry must be an object")
            sealed = _b64(obj.get("sessionEncryptedPayload"), "sessionEncryptedPayload")
            out.append(self._entry(obj, sealer, _b64(obj.get("iv"), "iv"), sealed))
        return out

    def _sealer(self, wrapped: bytes) -> Sealer:
        try:
            return self.client.credentials.open_incoming_key(wrapped)
        except ValueError as exc:
            raise RequestError(
                ErrorCode.AUTH_FAILED,
                f"the server wrapped the session key for another key: {exc}",
            ) from exc

    def _entry(self, meta_obj: object, sealer: Sealer, iv: bytes, sealed: bytes) -> StoreEntry:
        meta = metadata_of(meta_obj, self.client.limits)
        if len(iv) != 12:
            raise BadResponse(f"entry {meta.id[:200]}: the session IV must be 12 bytes")
        try:
            data = sealer.open(iv + sealed)
        except ValueError as exc:
            raise BadResponse(f"entry {meta.id[:200]} did not open: {exc}") from exc
        return StoreEntry(meta, data)

    def _open_legacy(self, obj: object) -> StoreEntry:
        if not isinstance(obj, Mapping):
            raise BadResponse("an entry must be an object")
        meta = metadata_of(obj, self.client.limits)
        blob = _b64(obj.get("rsaEncryptedPayload"), "rsaEncryptedPayload")
        try:
            return StoreEntry(meta, self.client.credentials.open_hybrid(blob))
        except ValueError as exc:
            raise BadResponse(f"entry {meta.id[:200]} did not open: {exc}") from exc

    async def get_metadata(self, ids: Sequence[str]) -> list[EntryMetadata]:
        out: list[EntryMetadata] = []
        for entry_id in ids:
            data = await self._post("getEntryMetadata", id=entry_id)
            if data.get("entry") is not None:
                meta = metadata_of(data["entry"], self.client.limits)
                if meta.id == entry_id:
                    out.append(meta)
        return out

    async def has_entries(self, ids: Sequence[str]) -> list[str]:
        present: set[str] = set()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), ID_BATCH):
            chunk = unique[start : start + ID_BATCH]
            present.update(_ids(await self._post("hasEntries", ids=chunk)))
        return [i for i in ids if i in present]

    async def get_all_ids(self) -> list[str]:
        response = await self.client.call(
            "GET", self.kind, "getAllIds", query={"tenantId": self.client.tenant_id, "dbId": self.db}
        )
        return _ids(json_body(response))

    # -- sync --------------------------------------------------------------------------------
    async def find_new_entries(self, known_ids: Iterable[str]) -> list[EntryMetadata]:
        known = list(dict.fromkeys(known_ids))
        if len(known) > MAX_HAVE_IDS:
            skip = set(known)
            return [m for m in await self._everything() if m.id not in skip]
        return self._metas(await self._post("findNewEntries", haveIds=known))

    async def find_new_entries_for_doc(
        self, known_ids: Iterable[str], doc_id: str
    ) -> list[EntryMetadata]:
        known = list(dict.fromkeys(known_ids))[:MAX_HAVE_IDS]
        skip = set(known)
        found = self._metas(await self._post("findNewEntriesForDoc", haveIds=known, docId=doc_id))
        return [m for m in found if m.id not in skip and m.doc_id == doc_id]

    async def find_entries(
        self, entry_type: EntryType, created_from: int | None, created_until: int | None
    ) -> list[EntryMetadata]:
        fields: dict[str, Any] = {"type": entry_type.value}
        if created_from is not None:
            fields["creationDateFrom"] = created_from
        if created_until is not None:
            fields["creationDateUntil"] = created_until
        return self._metas(await self._post("findEntries", **fields))

    async def _everything(self) -> list[EntryMetadata]:
        """Every entry's metadata in ``(receiptOrder, id)`` order (servers before sync-v4)."""
        metas = self._metas(await self._post("findNewEntries", haveIds=[]))
        return sorted(metas, key=lambda m: (m.receipt_order, m.id))

    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        limit = max(1, min(limit, MAX_SCAN_PAGE))
        caps = await self.capabilities()
        if not caps.receipt_order_cursors:
            return _emulated_page(await self._everything(), cursor, limit, filters)
        fields: dict[str, Any] = {"cursor": cursor_to_json(cursor), "limit": limit}
        wanted = filters_to_json(filters)
        if wanted:
            fields["filters"] = wanted
        data = await self._post("scanEntriesSince", **fields)
        metas = self._metas(data)
        if len(metas) > limit:
            raise BadResponse("the server sent a page larger than asked for")
        if cursor is not None and any((m.receipt_order, m.id) <= (cursor.receipt_order, cursor.id) for m in metas):
            raise BadResponse("the server sent entries at or before the cursor")
        next_cursor = cursor_from_json(data.get("nextCursor"))
        return ScanPage(tuple(metas), next_cursor, data.get("hasMore") is True)

    async def get_store_head(self) -> StoreHead:
        caps = await self.capabilities()
        if not caps.store_head:
            metas = await self._everything()
            top = max((m.receipt_order for m in metas), default=0)
            return StoreHead(f"legacy:{self._name}", top)
        head = (await self._post("getStoreHead")).get("head")
        if (
            not isinstance(head, Mapping)
            or not isinstance(head.get("epoch"), str)
            or not isinstance(head.get("maxReceiptOrder"), int)
        ):
            raise BadResponse("a store head is {epoch, maxReceiptOrder}")
        return StoreHead(str(head["epoch"])[:200], int(head["maxReceiptOrder"]))

    async def get_id_bloom_summary(self) -> BloomSummary:
        caps = await self.capabilities()
        if not caps.bloom:
            return BloomSummary.of_ids(await self.get_all_ids())
        try:
            return BloomSummary.from_wire((await self._post("getIdBloomSummary")).get("summary"))
        except EntryFormatError as exc:
            raise BadResponse(f"Bloom summary: {exc}") from exc

    # -- DAG ---------------------------------------------------------------------------------
    async def resolve_dependencies(
        self, start_id: str, options: ResolveOptions | None = None
    ) -> list[str]:
        fields: dict[str, Any] = {"startId": start_id}
        if options is not None:
            wanted: dict[str, Any] = {"includeStart": options.include_start}
            if options.stop_at_entry_type is not None:
                wanted["stopAtEntryType"] = options.stop_at_entry_type.value
            if options.max_depth is not None:
                wanted["maxDepth"] = options.max_depth
            fields["options"] = wanted
        return _ids(await self._post("resolveDependencies", **fields))

    # -- lifecycle ---------------------------------------------------------------------------
    async def purge_doc_history(self, doc_id: str) -> int:
        raise RequestError(ErrorCode.REFUSED, "a server's history cannot be purged remotely")

    async def clear_all_local_data(self) -> None:
        raise RequestError(ErrorCode.REFUSED, "a server's store cannot be cleared remotely")


def _merge(results: Sequence[PutResult]) -> PutResult:
    return PutResult(
        tuple(i for r in results for i in r.stored),
        tuple(i for r in results for i in r.existing),
        tuple(x for r in results for x in r.rejected),
    )


def _emulated_page(
    metas: list[EntryMetadata], cursor: ScanCursor | None, limit: int, filters: ScanFilters | None
) -> ScanPage:
    after = [
        m
        for m in metas
        if (cursor is None or (m.receipt_order, m.id) > (cursor.receipt_order, cursor.id))
        and (filters is None or filters.matches(m))
    ]
    page = after[:limit]
    last = ScanCursor(page[-1].receipt_order, page[-1].id) if page else cursor
    return ScanPage(tuple(page), last, len(after) > limit)


# -- the server as the driver's peer --------------------------------------------------------------
class HttpPeer:
    """An HTTP sync server as ``protocol.driver.SyncPeer``.

    The server never pulls from us, so the driver pushes to it (``pushes``); it cannot list
    its databases, so the driver syncs ours; it tells us of changes through its SSE feed,
    which ``follow_changes`` reads (one stream per store kind carries every database).
    """

    pushes = True

    def __init__(self, client: HttpSyncClient) -> None:
        self.client = client
        self._closed = False

    @property
    def is_closed(self) -> bool:
        return self._closed

    async def list_databases(self) -> set[str] | None:
        return None

    def store(self, db: str, kind: StoreKind) -> HttpRemoteStore:
        return self.client.store(db, kind)

    async def follow(self, db: str) -> None:
        """Nothing to ask: the feed of each kind carries every database."""

    async def announce(self, db: str, head: StoreHead | None) -> None:
        """Nothing to send: the driver pushes instead."""

    async def close(self, code: ErrorCode, message: str) -> None:
        self._closed = True

    async def follow_changes(
        self,
        on_change: Callable[[StoreChanged], None],
        on_gap: Callable[[], None],
        *,
        retry_delay: Callable[[int], float],
    ) -> None:
        """Read the change feeds until cancelled; reconnect with backoff when one ends.

        ``on_gap`` runs after every reconnect: changes made while the feed was down were not
        announced, so the caller pulls everything once. Returns at once if the server has no
        change feed (``supportsChangeEvents`` false): then nothing is followed live.
        """
        caps = await self.client.capabilities("directory", StoreKind.DOCS)
        if not caps.change_events:
            log.info(
                "the server has no change feed; syncing on local changes only",
                extra={"server": self.client.url},
            )
            return
        async with asyncio.TaskGroup() as group:
            for kind in (StoreKind.DOCS, StoreKind.ATTACHMENTS):
                group.create_task(self._feed(kind, on_change, on_gap, retry_delay))

    async def _feed(
        self,
        kind: StoreKind,
        on_change: Callable[[StoreChanged], None],
        on_gap: Callable[[], None],
        retry_delay: Callable[[int], float],
    ) -> None:
        failures = 0
        connected_before = False
        while not self._closed:
            try:
                async for event in self.client.changes(kind):
                    if not connected_before or failures:
                        if connected_before:
                            on_gap()
                        connected_before, failures = True, 0
                    on_change(
                        StoreChanged(
                            event.db[:256], kind, event.epoch or "", event.max_receipt_order or 0
                        )
                    )
                reason = "the server ended the stream"
            except RequestError as exc:
                reason = exc.message
            failures += 1
            delay = retry_delay(failures)
            log.info(
                "change feed ended; reconnecting",
                extra={"server": self.client.url, "kind": kind.value, "reason": reason,
                       "retry_in": round(delay, 2)},
            )
            await asyncio.sleep(delay)
