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
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from protocol.errors import ErrorCode, RequestError
from protocol.http import wire
from protocol.http.checks import ErrorKind, HttpError
from protocol.http.client import (
    BadResponse,
    HttpCallError,
    HttpFetcher,
    HttpReply,
    HttpResponse,
    TokenCache,
    Unreachable,
    error_for,
    json_body,
    parse_byte_limit,
    send_batched,
)
from protocol.http.sse import ChangeEvent, SseParser
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
from store.entry import EntryMetadata, EntryType, StoreEntry
from store.json_codec import entry_to_json

log = logging.getLogger("mindood.protocol.http")

#: A 429 asking for at most this long is waited out and the request sent again (a longer
#: wait is the sync driver's: the call fails, the database is retried with backoff).
RATE_LIMIT_WAIT_S = 10.0
#: Sends of one request that a 429 may cost before the call fails.
RATE_LIMIT_ATTEMPTS = 3
#: The wait when a 429 says nothing usable (the reference client's fallback).
RATE_LIMIT_FALLBACK_S = 1.0


def retry_after_seconds(value: str) -> float:
    """``Retry-After`` as seconds (delta-seconds only; an HTTP date or junk: the fallback)."""
    try:
        seconds = float(value.strip())
    except ValueError:
        return RATE_LIMIT_FALLBACK_S
    return seconds if 0 <= seconds < 86_400 else RATE_LIMIT_FALLBACK_S


#: Ids per ``hasEntries``/``getEntries`` request (the server takes up to 100 000).
ID_BATCH = 1000
#: Ids per ``getEntries`` of attachment chunks (up to 256 KiB each, the reference's chunk
#: size): keeps one answer near 8 MiB, as the reference's prefetch pages, far below the
#: transport's response limit.
CHUNK_BATCH = 32
JSON = "application/json"
T = TypeVar("T")


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

    def unwrap(self, wrapped: bytes) -> bytes:
        """Raw RSA-OAEP decryption with the device's key; ``ValueError`` if not for us."""
        ...


async def parsed(answer: Awaitable[Any], parse: Callable[[Any], T]) -> T:
    """Parse an answer with a ``wire`` function; its ``HttpError`` means a bad answer."""
    body = await answer
    try:
        return parse(body)
    except HttpError as exc:
        raise BadResponse(exc.message) from exc


def put_result_of(sent: Sequence[str], answer: wire.PutEntriesResponse | None) -> PutResult:
    """A ``putEntries`` answer as a ``PutResult``.

    The server acknowledges every entry it holds with a receipt (newly stored or already there,
    it does not say which: both count as stored) and refuses others by id; an older server
    that sends no receipts (``None``) stored whatever it did not refuse. Ids it names that were
    not sent are ignored.
    """
    asked = set(sent)
    rejected: dict[str, str] = {}
    for item in answer.rejected if answer is not None else ():
        if item.id in asked:
            rejected[item.id] = item.reason[:500] or "rejected"
    if answer is not None and answer.receipts:
        acked = {m.id for m in answer.receipts} & asked
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
    ) -> None:
        self.fetcher = fetcher
        self.tenant_id = tenant_id
        self.credentials = credentials
        self._root = base_path.rstrip("/")
        self._base = f"{self._root}/{tenant_id}"
        self._clock = clock
        self.tokens = TokenCache()
        self._auth_lock = asyncio.Lock()
        self._capabilities: dict[tuple[str, StoreKind], wire.Capabilities] = {}
        self._limit_known = False
        self._body_limit: int | None = None
        self._stores: dict[tuple[str, StoreKind], HttpRemoteStore] = {}
        #: Authentications performed (status and tests).
        self.authentications = 0
        #: Until when (``time.monotonic``) every request to this server holds back: one 429
        #: pauses all its stores, as the reference client's shared gate does.
        self._paused_until = 0.0
        #: 429s answered so far (status and tests).
        self.rate_limited = 0

    @property
    def url(self) -> str:
        return self.fetcher.origin + self._root

    def store(self, db: str, kind: StoreKind = StoreKind.DOCS) -> HttpRemoteStore:
        """The server's store ``db``/``kind`` (one instance per pair, sharing this client)."""
        key = (db, kind)
        if key not in self._stores:
            self._stores[key] = HttpRemoteStore(self, db, kind)
        return self._stores[key]

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpReply:
        """One request; a 429 with a short ``Retry-After`` is waited out and sent again."""
        for attempt in range(1, RATE_LIMIT_ATTEMPTS + 1):
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(min(pause, RATE_LIMIT_WAIT_S))
            try:
                reply = await self.fetcher.request(
                    method, path, query=query, headers=headers, body=body
                )
            except (OSError, TimeoutError) as exc:
                raise Unreachable(f"{self.fetcher.origin}: {exc or type(exc).__name__}") from exc
            if reply.status != 429:
                return reply
            self.rate_limited += 1
            wait = retry_after_seconds(reply.retry_after)
            log.info(
                "server asks us to slow down",
                extra={"server": self.url, "path": path[:200], "retry_after_s": wait},
            )
            if wait > RATE_LIMIT_WAIT_S or attempt == RATE_LIMIT_ATTEMPTS:
                return reply  # the caller raises the 429 as the error it is
            self._paused_until = max(self._paused_until, time.monotonic() + wait)
        raise AssertionError("unreachable")

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
        ask = wire.ChallengeRequest(creds.username or None, creds.identity)
        answer = json_body(
            await self._send(
                "POST",
                f"{self._base}/auth/challenge",
                headers={"Content-Type": JSON},
                body=json.dumps(ask.to_json()).encode(),
            )
        )
        challenge = answer.get("challenge") if isinstance(answer, dict) else None
        if not isinstance(challenge, str) or not 0 < len(challenge) <= 4096:
            raise BadResponse("the server sent no challenge")
        proof = wire.AuthenticateRequest(challenge, creds.sign(challenge.encode()))
        result = json_body(
            await self._send(
                "POST",
                f"{self._base}/auth/authenticate",
                headers={"Content-Type": JSON},
                body=json.dumps(proof.to_json()).encode(),
            )
        )
        token = result.get("token") if isinstance(result, dict) else None
        if result.get("success") is not True or not isinstance(token, str) or len(token) > 16384:
            raise RequestError(ErrorCode.AUTH_FAILED, "the server refused our signature")
        self.tokens.store(token, self._clock())
        self.authentications += 1
        return token

    async def call(
        self,
        kind: StoreKind,
        op: wire.SyncOp,
        *,
        payload: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        content_type: str = JSON,
        query: Mapping[str, str] | None = None,
    ) -> HttpReply:
        """An authenticated ``/sync/<kind>/<op>`` call; one re-auth if the token was refused.

        Returns a 2xx response; any other status raises the ``HttpCallError`` it stands for.
        """
        data = json.dumps(payload).encode() if payload is not None else body
        path = self._root + wire.sync_path(self.tenant_id, kind.value, op)
        for attempt in (0, 1):
            token = await self.token()
            headers = {"Authorization": f"Bearer {token}"}
            if data is not None:
                headers["Content-Type"] = content_type
            response = await self._send(op.method, path, query=query, headers=headers, body=data)
            if 200 <= response.status < 300:
                return response
            error = error_for(response)
            if error.kind is ErrorKind.INVALID_TOKEN and attempt == 0:
                log.info("token refused; authenticating again", extra={"server": self.url})
                self.tokens.clear(token)
                continue
            raise error
        raise AssertionError("unreachable")

    async def call_json(self, kind: StoreKind, op: wire.SyncOp, payload: Mapping[str, Any]) -> Any:
        return json_body(await self.call(kind, op, payload=payload))

    # -- negotiation -------------------------------------------------------------------------
    async def capabilities(self, db: str, kind: StoreKind) -> wire.Capabilities:
        """What the server supports for ``db``/``kind``; ``sync-v1`` if it will not say.

        A server that answers with an error status (or nonsense) is taken as ``sync-v1`` for
        good, as the reference client does; one that cannot be reached, or refuses our token or
        key, is asked again next time (the operation that needed it fails meanwhile).
        """
        key = (db, kind)
        if key in self._capabilities:
            return self._capabilities[key]
        try:
            found = await parsed(
                self._json_get(kind, wire.SyncOp.CAPABILITIES, db), wire.Capabilities.from_json
            )
        except (Unreachable, HttpCallError) as exc:
            if isinstance(exc, Unreachable) or exc.kind in _AUTH_KINDS:
                raise
            log.info(
                "the server gave no capabilities; using sync-v1",
                extra={"server": self.url, "db": db, "error": exc.message},
            )
            found = wire.Capabilities.fallback()
        except BadResponse as exc:
            log.info(
                "the server's capabilities did not parse; using sync-v1",
                extra={"server": self.url, "db": db, "error": exc.message},
            )
            found = wire.Capabilities.fallback()
        self._capabilities[key] = found
        return found

    async def _json_get(self, kind: StoreKind, op: wire.SyncOp, db: str) -> Any:
        return json_body(await self.call(kind, op, query={"dbId": db}))

    async def body_limit(self) -> int | None:
        """The server's JSON body limit from its server info (``None``: unknown, adapt on 413)."""
        if not self._limit_known:
            limit: int | None = None
            try:
                info = json_body(
                    await self._send("GET", f"{self._root}/.well-known/mindoodb-server-info")
                )
                if isinstance(info, dict):
                    limit = parse_byte_limit(info.get("maxJsonRequestBodyBytes"))
                    if limit is None:
                        limit = parse_byte_limit(info.get("maxJsonRequestBodyLimit"))
            except (HttpCallError, BadResponse):
                limit = None
            self._limit_known, self._body_limit = True, limit
        return self._body_limit

    # -- live changes ------------------------------------------------------------------------
    async def changes(
        self,
        kind: StoreKind,
        on_open: Callable[[], None] = lambda: None,
        gate_db: str = "directory",
    ) -> AsyncIterator[ChangeEvent]:
        """The server's change feed for ``kind`` (every database of the tenant) until it ends.

        ``on_open`` runs once the server accepted the stream. As the reference client reads it:
        only ``change`` events whose data has a string ``dbId``; heartbeats are comments.
        """
        path = self._root + wire.sync_path(self.tenant_id, kind.value, wire.SyncOp.EVENTS)
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
                    on_open()
                    parser = SseParser()
                    async for chunk in stream.chunks():
                        try:
                            events = parser.feed(chunk)
                        except HttpError as exc:
                            raise BadResponse(exc.message) from exc
                        for event in events:
                            if event.event != "change":
                                continue
                            change = ChangeEvent.from_data(event.data)
                            if change is not None:
                                yield change
                    return
            except (OSError, TimeoutError) as exc:
                raise Unreachable(f"{self.fetcher.origin} change feed: {exc}") from exc


_AUTH_KINDS = frozenset({ErrorKind.INVALID_TOKEN, ErrorKind.USER_REVOKED})


# -- one store ------------------------------------------------------------------------------------
class HttpRemoteStore(ContentAddressedStore):
    """Database ``db``, store ``kind``, of an HTTP sync server."""

    remote_checks_cost = True

    def __init__(self, client: HttpSyncClient, db: str, kind: StoreKind) -> None:
        self.client = client
        self.db = db
        self.kind = kind
        self._name = f"{client.url}/{client.tenant_id}/{db}/{kind.value}"

    def get_id(self) -> str:
        return self._name

    async def capabilities(self) -> wire.Capabilities:
        return await self.client.capabilities(self.db, self.kind)

    async def _post(self, op: wire.SyncOp, request: Any) -> Any:
        return await self.client.call_json(self.kind, op, request.to_json())

    # -- write -------------------------------------------------------------------------------
    async def put_entries(self, entries: Sequence[StoreEntry]) -> PutResult:
        if not entries:
            return PutResult()
        caps = await self.capabilities()
        limit = await self.client.body_limit()
        binary = caps.supports_binary_entries
        empty = wire.PutEntriesRequest(self.db, ())
        if binary:
            tenant = self.client.tenant_id
            overhead = len(empty.to_binary(tenant))
            sizes = [
                len(wire.PutEntriesRequest(self.db, (e,)).to_binary(tenant)) - overhead
                for e in entries
            ]
        else:
            overhead = len(json.dumps(empty.to_json()).encode())
            sizes = [len(json.dumps(entry_to_json(e)).encode()) for e in entries]

        async def send(batch: Sequence[StoreEntry]) -> PutResult:
            request = wire.PutEntriesRequest(self.db, tuple(batch))
            if binary:
                response = await self.client.call(
                    self.kind,
                    wire.SyncOp.PUT_ENTRIES_BINARY,
                    body=request.to_binary(self.client.tenant_id),
                    content_type=wire.BINARY_CONTENT_TYPE,
                )
            else:
                response = await self.client.call(
                    self.kind, wire.SyncOp.PUT_ENTRIES, payload=request.to_json()
                )
            ids = [e.id for e in batch]
            try:
                body = json.loads(response.body)
            except ValueError:
                return put_result_of(ids, None)  # a legacy server's empty answer: no receipts
            if not isinstance(body, dict) or ("receipts" not in body and "rejected" not in body):
                return put_result_of(ids, None)
            return put_result_of(ids, await parsed(_ready(body), wire.PutEntriesResponse.from_json))

        results = await send_batched(entries, send, sizes=sizes, overhead=overhead, limit=limit)
        return PutResult(
            tuple(i for r in results for i in r.stored),
            tuple(i for r in results for i in r.existing),
            tuple(x for r in results for x in r.rejected),
        )

    # -- read --------------------------------------------------------------------------------
    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, StoreEntry] = {}
        step = CHUNK_BATCH if self.kind is StoreKind.ATTACHMENTS else ID_BATCH
        for start in range(0, len(wanted), step):
            chunk = wanted[start : start + step]
            asked = set(chunk)
            # an answer the server finds too large (413) is asked for again as halves
            batches = await send_batched(
                chunk, self._fetch, sizes=[0] * len(chunk), overhead=0, limit=None
            )
            for entry in (e for batch in batches for e in batch):
                if entry.id in asked:  # a server sends what it was asked for, nothing else
                    found[entry.id] = entry
        return [found[i] for i in wanted if i in found]

    def _unwrap(self, wrapped: bytes) -> bytes:
        return self.client.credentials.unwrap(wrapped)

    async def _fetch(self, ids: Sequence[str]) -> list[StoreEntry]:
        caps = await self.capabilities()
        try:
            if caps.supports_binary_entries and caps.supports_session_key_wrap:
                response = await self.client.call(
                    self.kind,
                    wire.SyncOp.GET_ENTRIES_BINARY,
                    payload=wire.IdsRequest(self.db, tuple(ids)).to_json(),
                )
                batch = wire.decode_get_entries_binary(response.body)
                return wire.open_session_batch(batch, self._unwrap)
            request = wire.GetEntriesRequest(self.db, tuple(ids), caps.supports_session_key_wrap)
            body = await self._post(wire.SyncOp.GET_ENTRIES, request)
            if caps.supports_session_key_wrap:
                session = wire.session_batch_from_json(body)
                return wire.open_session_batch(session, self._unwrap)
            return wire.legacy_entries_from_json(body, self._unwrap)
        except HttpError as exc:
            raise BadResponse(f"getEntries: {exc.message}") from exc

    async def get_metadata(self, ids: Sequence[str]) -> list[EntryMetadata]:
        out: list[EntryMetadata] = []
        for entry_id in ids:
            request = wire.GetEntryMetadataRequest(self.db, entry_id)
            meta = await parsed(
                self._post(wire.SyncOp.GET_ENTRY_METADATA, request), wire.entry_metadata_from_json
            )
            if meta is not None and meta.id == entry_id:
                out.append(meta)
        return out

    async def has_entries(self, ids: Sequence[str]) -> list[str]:
        present: set[str] = set()
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), ID_BATCH):
            request = wire.IdsRequest(self.db, tuple(unique[start : start + ID_BATCH]))
            present.update(
                await parsed(self._post(wire.SyncOp.HAS_ENTRIES, request), wire.ids_from_json)
            )
        return [i for i in ids if i in present]

    async def get_all_ids(self) -> list[str]:
        return await parsed(
            self.client._json_get(self.kind, wire.SyncOp.GET_ALL_IDS, self.db), wire.ids_from_json
        )

    # -- sync --------------------------------------------------------------------------------
    async def _metas(self, op: wire.SyncOp, request: Any) -> list[EntryMetadata]:
        return await parsed(self._post(op, request), wire.entries_from_json)

    async def find_new_entries(self, known_ids: Iterable[str]) -> list[EntryMetadata]:
        known = list(dict.fromkeys(known_ids))
        if len(known) > wire.MAX_HAVE_IDS:
            skip = set(known)
            return [m for m in await self._everything() if m.id not in skip]
        request = wire.FindNewEntriesRequest(self.db, tuple(known))
        return await self._metas(wire.SyncOp.FIND_NEW_ENTRIES, request)

    async def find_new_entries_for_doc(
        self, known_ids: Iterable[str], doc_id: str
    ) -> list[EntryMetadata]:
        known = list(dict.fromkeys(known_ids))
        skip = set(known)
        request = wire.FindNewEntriesForDocRequest(
            self.db, doc_id, tuple(known[: wire.MAX_HAVE_IDS])
        )
        found = await self._metas(wire.SyncOp.FIND_NEW_ENTRIES_FOR_DOC, request)
        return [m for m in found if m.id not in skip and m.doc_id == doc_id]

    async def find_entries(
        self, entry_type: EntryType, created_from: int | None, created_until: int | None
    ) -> list[EntryMetadata]:
        request = wire.FindEntriesRequest(self.db, entry_type, created_from, created_until)
        return await self._metas(wire.SyncOp.FIND_ENTRIES, request)

    async def _everything(self) -> list[EntryMetadata]:
        """Every entry's metadata in ``(receiptOrder, id)`` order (servers before sync-v4)."""
        request = wire.FindNewEntriesRequest(self.db, ())
        metas = await self._metas(wire.SyncOp.FIND_NEW_ENTRIES, request)
        return sorted(metas, key=lambda m: (m.receipt_order, m.id))

    async def scan_entries_since(
        self, cursor: ScanCursor | None, limit: int = 1000, filters: ScanFilters | None = None
    ) -> ScanPage:
        limit = max(1, min(limit, MAX_SCAN_PAGE))
        caps = await self.capabilities()
        if caps.protocol_number < 4 or not caps.supports_cursor_scan:
            return emulated_page(await self._everything(), cursor, limit, filters)
        request = wire.ScanEntriesRequest(self.db, cursor, limit, filters)
        page = await parsed(
            self._post(wire.SyncOp.SCAN_ENTRIES_SINCE, request), wire.scan_page_from_json
        )
        if len(page.entries) > limit:
            raise BadResponse("the server sent a page larger than asked for")
        if cursor is not None and any(
            (m.receipt_order, m.id) <= (cursor.receipt_order, cursor.id) for m in page.entries
        ):
            raise BadResponse("the server sent entries at or before the cursor")
        return page

    async def get_store_head(self) -> StoreHead:
        caps = await self.capabilities()
        if not caps.supports_store_head:
            metas = await self._everything()
            top = max((m.receipt_order for m in metas), default=0)
            return StoreHead(f"legacy:{self._name}", top)
        return await parsed(
            self._post(wire.SyncOp.GET_STORE_HEAD, wire.DbRequest(self.db)), wire.head_from_json
        )

    async def get_id_bloom_summary(self) -> BloomSummary:
        caps = await self.capabilities()
        if not caps.supports_id_bloom_summary:
            return BloomSummary.of_ids(await self.get_all_ids())
        return await parsed(
            self._post(wire.SyncOp.GET_ID_BLOOM_SUMMARY, wire.DbRequest(self.db)),
            wire.bloom_from_json,
        )

    # -- DAG ---------------------------------------------------------------------------------
    async def resolve_dependencies(
        self, start_id: str, options: ResolveOptions | None = None
    ) -> list[str]:
        request = wire.ResolveDependenciesRequest(self.db, start_id, options)
        return await parsed(
            self._post(wire.SyncOp.RESOLVE_DEPENDENCIES, request), wire.ids_from_json
        )

    # -- lifecycle ---------------------------------------------------------------------------
    async def purge_doc_history(self, doc_id: str) -> int:
        raise RequestError(ErrorCode.REFUSED, "a server's history cannot be purged remotely")

    async def clear_all_local_data(self) -> None:
        raise RequestError(ErrorCode.REFUSED, "a server's store cannot be cleared remotely")


async def _ready(value: T) -> T:
    return value


def emulated_page(
    metas: list[EntryMetadata], cursor: ScanCursor | None, limit: int, filters: ScanFilters | None
) -> ScanPage:
    """A cursor page cut from every entry (the reference client's emulation before sync-v4)."""
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

        ``on_gap`` runs after every reconnect: changes made while a feed was down were not
        announced, so the caller pulls everything once. Returns at once if the server has no
        change feed (``supportsChangeEvents`` false), as the reference client then follows
        nothing live.
        """
        while True:
            try:
                caps = await self.client.capabilities("directory", StoreKind.DOCS)
                break
            except RequestError as exc:
                log.info("server unreachable for its change feed", extra={"error": exc.message})
                await asyncio.sleep(retry_delay(1))
        if not caps.supports_change_events:
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
        opened_once = False

        def opened() -> None:
            nonlocal failures, opened_once
            if opened_once:
                on_gap()
            opened_once, failures = True, 0

        while not self._closed:
            try:
                async for event in self.client.changes(kind, opened):
                    log.debug(
                        "change event",
                        extra={"server": self.client.url, "kind": kind.value, "db": event.db_id},
                    )
                    on_change(
                        StoreChanged(
                            event.db_id, kind, event.epoch or "", event.max_receipt_order or 0
                        )
                    )
                reason = "the server ended the stream"
            except RequestError as exc:
                reason = exc.message
            failures += 1
            delay = retry_delay(failures)
            log.info(
                "change feed ended; reconnecting",
                extra={
                    "server": self.client.url,
                    "kind": kind.value,
                    "reason": reason,
                    "retry_in": round(delay, 2),
                },
            )
            await asyncio.sleep(delay)
