"""The reference's HTTP sync API as a sans-I/O request handler (reference-formats §3).

``HttpServer.handle`` takes one parsed request (method, path, query, headers, body) and returns a
response, or an ``EventStream`` marker the transport turns into server-sent events. Each
tenant's stores are reached through the same ``ServeModel`` the native protocol serves peers
with: ``served_store`` picks the store, ``admit`` verifies signatures, content hashes and trust
before anything is stored, ``took_in`` applies what was stored. So an entry pushed over HTTP
passes exactly the checks of a native push, and a relay serves ciphertext it cannot read.

Status codes, bodies and limits are the reference server's: ``{error}`` bodies, 400 for bad
input, 401 for a missing or dead token, 403 for a revoked key or a wrong signature, 404 for an
unknown tenant or route, 413 over the body limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from protocol.http import wire
from protocol.http.auth import AuthDirectory, AuthService, Claims, bearer_token
from protocol.http.checks import MAX_CHALLENGE_LENGTH, MAX_PEM_LENGTH, MAX_SIGNATURE_LENGTH
from protocol.http.device import DeviceDiscovery
from protocol.http.ratelimit import RateLimiter, RateLimits, Refusal, refusal_message
from protocol.http.system import SystemApi
from protocol.http.wire import ErrorKind, HttpError, SyncOp
from protocol.serve import ServeModel
from protocol.store_ops import StoreKind
from store.base import CompactionStatus, ContentAddressedStore
from store.entry import StoreEntry
from store.errors import StoreError

log = logging.getLogger("mindood.protocol.http")

JSON_TYPE = "application/json; charset=utf-8"
UNTRUSTED = "was not signed by a trusted user"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request as the transport read it; header names lowercased, the body complete."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: The client's IP address (for the ``/system/*`` allowlist).
    remote: str = ""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventStream:
    """Answer with an SSE stream of ``tenant_id``'s ``kind`` changes, opened by ``hello``."""

    tenant_id: str
    kind: str
    hello: bytes


class HttpTenant(Protocol):
    """What the node exposes of one tenant to HTTP clients."""

    @property
    def tenant_id(self) -> str: ...

    @property
    def directory(self) -> AuthDirectory: ...

    @property
    def model(self) -> ServeModel:
        """The native protocol's serve seam; ``served_store`` may open (adopt) a database."""
        ...

    def reader_key(self, signing_public_key: str) -> str | None:
        """The RSA key of the grant holding this device key (never another device's)."""
        ...

    def publicinfos_fingerprints(self) -> list[str]: ...


class HttpNode(Protocol):
    def server_info(self) -> wire.ServerInfo | None: ...

    def tenant(self, tenant_id: str) -> HttpTenant | None: ...

    def device_deliveries(self, signing_public_key: str) -> list[dict[str, Any]]:
        """``/device/discover``: a ``DeviceTenantDelivery`` per served tenant granting the key."""
        ...


ChangeListener = Callable[[wire.ChangeEvent], None]


class ChangeHub:
    """Who follows which tenant's store kind; the node publishes every growth here."""

    def __init__(self) -> None:
        self._subs: dict[tuple[str, str], list[ChangeListener]] = {}

    def subscribe(self, tenant_id: str, kind: str, listener: ChangeListener) -> Callable[[], None]:
        key = (tenant_id, kind)
        self._subs.setdefault(key, []).append(listener)

        def unsubscribe() -> None:
            listeners = self._subs.get(key, [])
            if listener in listeners:
                listeners.remove(listener)
            if not listeners:
                self._subs.pop(key, None)

        return unsubscribe

    def wants(self, tenant_id: str, kind: str) -> bool:
        return bool(self._subs.get((tenant_id, kind)))

    def publish(self, tenant_id: str, event: wire.ChangeEvent) -> None:
        for listener in list(self._subs.get((tenant_id, event.store_kind), [])):
            try:
                listener(event)
            except Exception:  # one broken stream must not stop the others
                log.exception("change listener failed")

    @property
    def subscribers(self) -> int:
        return sum(len(v) for v in self._subs.values())


def json_response(status: int, obj: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def _error(exc: HttpError) -> HttpResponse:
    answer = json_response(exc.status, exc.to_json())
    if exc.retry_after_s is None:
        return answer
    return HttpResponse(answer.status, answer.body, headers={"Retry-After": str(exc.retry_after_s)})


def _checked(refusal: Refusal | None) -> None:
    """Raise the 429 for a spent budget (``ratelimit``); its tier is the logged detail."""
    if refusal is not None:
        raise HttpError(
            ErrorKind.RATE_LIMITED,
            refusal_message(refusal.tier),
            detail=refusal.tier,
            retry_after_s=refusal.retry_after_s,
        )


def _compaction_json(status: CompactionStatus) -> dict[str, Any]:
    return {
        "status": {
            "enabled": status.enabled,
            "compactionMinFiles": status.compaction_min_files,
            "compactionMaxBytes": status.compaction_max_bytes,
            "totalCompactions": status.total_compactions,
            "totalCompactedFiles": status.total_compacted_files,
            "totalCompactedBytes": status.total_compacted_bytes,
            "totalCompactionDurationMs": status.total_compaction_duration_ms,
            "lastCompactionAt": status.last_compaction_at,
            "lastCompactedFiles": status.last_compacted_files,
            "lastCompactedBytes": status.last_compacted_bytes,
            "lastCompactionDurationMs": status.last_compaction_duration_ms,
        }
    }


class HttpServer:
    """Routes requests to tenants; holds each tenant's login state (in memory, per process)."""

    def __init__(
        self,
        node: HttpNode,
        *,
        body_limit: int = wire.DEFAULT_BODY_LIMIT,
        clock: Callable[[], float] = time.time,
        max_answer_bytes: int = 256 * 1024 * 1024,
        system: SystemApi | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self._node = node
        self.limiter = RateLimiter(rate_limits or RateLimits())
        #: ``/system/*`` (tenant registration); None: not offered (404).
        self.system = system
        self.body_limit = body_limit
        #: The most payload bytes one getEntries answer carries (the reference has no cap).
        self.max_answer_bytes = max_answer_bytes
        self._clock = clock
        self._auth: dict[str, AuthService] = {}
        self.events = ChangeHub()
        self.devices = DeviceDiscovery(clock=clock)
        #: The last event published per (tenant, db, kind): the same head is not sent twice
        #: (a push is announced by its handler and again by the node's change notice).
        self._last: dict[tuple[str, str, str], wire.ChangeEvent] = {}

    def auth(self, tenant: HttpTenant) -> AuthService:
        service = self._auth.get(tenant.tenant_id)
        if service is None:
            service = AuthService(tenant.tenant_id, tenant.directory, clock=self._clock)
            self._auth[tenant.tenant_id] = service
        return service

    def forget_tenant(self, tenant_id: str) -> None:
        """The tenant is no longer served (locked): its tokens and challenges go."""
        self._auth.pop(tenant_id, None)

    def authorized(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        """Whether a request's token is good now (checked before its body is read, so only
        logged-in clients may send large bodies; the handler checks again)."""
        parts = [p for p in path.split("/") if p]
        if len(parts) != 4 or parts[1] != "sync":
            return False
        try:
            tenant = self._tenant(parts[0])
            self.auth(tenant).validate(bearer_token(headers))
        except HttpError:
            return False
        return True

    async def handle(self, request: HttpRequest) -> HttpResponse | EventStream:
        """Answer one request; never raises for anything a client sends."""
        client = self.limiter.client(request.remote, request.headers)
        try:
            _checked(self.limiter.check_overall(client, self._clock()))
            if len(request.body) > self.body_limit:
                raise HttpError(ErrorKind.PAYLOAD_TOO_LARGE, "Request body too large")
            return await self._route(request, client)
        except HttpError as exc:
            if exc.kind is ErrorKind.RATE_LIMITED:
                log.info(
                    "http request over its rate limit",
                    extra={
                        "path": request.path[:200],
                        "client": client,
                        "tier": exc.detail,
                        "retry_after_s": exc.retry_after_s,
                    },
                )
            elif exc.status >= 500:
                log.warning(
                    "http request failed", extra={"path": request.path[:200], "error": exc.message}
                )
            return _error(exc)
        except StoreError as exc:
            log.warning(
                "http request failed: the store is unavailable",
                extra={"path": request.path[:200], "error": str(exc)},
            )
            return json_response(500, {"error": "The database is unavailable on this server"})
        except Exception:
            log.exception("http request failed", extra={"path": request.path[:200]})
            return json_response(500, {"error": "Internal server error"})

    # -- routing -----------------------------------------------------------------------------
    async def _route(self, request: HttpRequest, client: str) -> HttpResponse | EventStream:
        parts = [p for p in request.path.split("/") if p]
        method = request.method.upper()
        now = self._clock()
        if parts[:1] == ["device"]:
            _checked(self.limiter.check_route("device", client, now))
        if method == "GET" and parts == ["health"]:
            return json_response(200, wire.health_json(int(self._clock() * 1000)))
        if parts[:1] == [".well-known"]:
            return self._well_known(method, parts[1:])
        if method == "POST" and parts == ["device", "challenge"]:
            body = _json_body(request.body)
            key = body.get("signingPublicKey") if isinstance(body, dict) else None
            if not isinstance(key, str) or not key.strip():
                raise HttpError(ErrorKind.VALIDATION, "signingPublicKey is required")
            if len(key) > MAX_PEM_LENGTH:
                raise HttpError(ErrorKind.VALIDATION, "signingPublicKey is too long")
            return json_response(200, {"challenge": self.devices.challenge(key)})
        if method == "POST" and parts == ["device", "discover"]:
            return await self._discover(_json_body(request.body))
        if parts[:1] == ["system"]:
            if self.system is None:
                raise HttpError(ErrorKind.NOT_FOUND, "Not found")
            _checked(self.limiter.check_route("system", client, now))
            body = _json_body(request.body)
            if method == "POST" and len(parts) == 3 and parts[1] == "auth":
                asked = _principal(body, "username")
                _checked(self.limiter.check_auth("system", parts[2], client, asked, now))
            answer = await self.system.handle(
                method, parts[1:], body, request.headers, request.remote
            )
            return json_response(answer.status, answer.body)
        if len(parts) >= 3 and method == "POST" and parts[1] == "auth":
            return self._auth_route(parts[0], parts[2:], request, client)
        if len(parts) == 4 and parts[1] == "sync":
            return await self._sync(parts[0], parts[2], parts[3], method, request, client)
        raise HttpError(ErrorKind.NOT_FOUND, "Not found")

    async def _discover(self, body: Any) -> HttpResponse:
        obj = body if isinstance(body, dict) else {}
        challenge, signature = obj.get("challenge"), obj.get("signature")
        if not isinstance(challenge, str) or not challenge.strip():
            raise HttpError(ErrorKind.VALIDATION, "challenge is required")
        if not isinstance(signature, str) or not signature.strip():
            raise HttpError(ErrorKind.VALIDATION, "signature is required")
        if len(challenge) > MAX_CHALLENGE_LENGTH or len(signature) > MAX_SIGNATURE_LENGTH:
            raise HttpError(ErrorKind.VALIDATION, "challenge or signature is too long")
        login = wire.AuthenticateRequest.from_json(obj)
        key = self.devices.verify(login.challenge, login.signature)
        deliveries = self._node.device_deliveries(key)  # RSA public-key wraps: cheap
        return json_response(200, {"tenants": deliveries})

    def _tenant(self, raw: str) -> HttpTenant:
        tenant_id = wire.check_tenant_id(raw)
        tenant = self._node.tenant(tenant_id)
        if tenant is None:
            info = self._node.server_info()
            name = info.name if info else "unknown"
            raise HttpError(ErrorKind.NOT_FOUND, f"Tenant {tenant_id} not found on server {name}")
        return tenant

    def _well_known(self, method: str, parts: list[str]) -> HttpResponse:
        if method == "GET" and parts == ["mindoodb-server-info"]:
            info = self._node.server_info()
            if info is None:
                return json_response(503, {"error": "Server identity not initialized"})
            return json_response(200, info.to_json())
        if (
            method == "GET"
            and len(parts) == 3
            and parts[0] == "mindoodb-tenants"
            and parts[2] == "publicinfos-fingerprints"
        ):
            try:
                tenant = self._tenant(parts[1])
            except HttpError as exc:
                if exc.kind is ErrorKind.VALIDATION:
                    raise
                raise HttpError(ErrorKind.NOT_FOUND, "Tenant not found on server") from None
            fingerprints = tenant.publicinfos_fingerprints()
            return json_response(200, wire.fingerprints_json(tenant.tenant_id, fingerprints))
        raise HttpError(ErrorKind.NOT_FOUND, "Not found")

    def _auth_route(
        self, raw_tenant: str, rest: list[str], request: HttpRequest, client: str
    ) -> HttpResponse:
        tenant = self._tenant(raw_tenant)
        auth = self.auth(tenant)
        body = _json_body(request.body)
        if rest in (["challenge"], ["authenticate"]):
            asked = _principal(body, "username") or _principal(body, "signingPublicKey")
            scope = f"tenant:{tenant.tenant_id}"
            _checked(self.limiter.check_auth(scope, rest[0], client, asked, self._clock()))
        if rest == ["challenge"]:
            ask = wire.ChallengeRequest.from_json(body)
            return json_response(
                200, {"challenge": auth.challenge(ask.username, ask.signing_public_key)}
            )
        if rest == ["authenticate"]:
            login = wire.AuthenticateRequest.from_json(body)
            try:
                token = auth.authenticate(login.challenge, login.signature)
            except HttpError as exc:
                # The reference answers a failed login with ``{success: false, error}``.
                return json_response(exc.status, wire.auth_failure_json(exc.message))
            return json_response(200, wire.auth_success_json(token))
        raise HttpError(ErrorKind.NOT_FOUND, "Not found")

    # -- /sync/<kind>/<op> -------------------------------------------------------------------
    async def _sync(
        self,
        raw_tenant: str,
        raw_kind: str,
        raw_op: str,
        method: str,
        request: HttpRequest,
        client: str,
    ) -> HttpResponse | EventStream:
        tenant = self._tenant(raw_tenant)
        try:
            kind = StoreKind(raw_kind)
            op = SyncOp(raw_op)
        except ValueError:
            raise HttpError(ErrorKind.NOT_FOUND, "Not found") from None
        if op.method != method:
            raise HttpError(ErrorKind.NOT_FOUND, "Not found")
        claims = self.auth(tenant).validate(bearer_token(request.headers))
        _checked(self.limiter.check_sync(tenant.tenant_id, claims.sub, client, self._clock()))
        call = _Call(self, tenant, kind, claims, request)
        return await call.run(op)

    def publish_change(self, tenant_id: str, event: wire.ChangeEvent) -> None:
        key = (tenant_id, event.db_id, event.store_kind)
        if self._last.get(key) == event:
            return
        if len(self._last) > 10_000:
            self._last.clear()
        self._last[key] = event
        self.events.publish(tenant_id, event)


def _principal(body: Any, name: str) -> str | None:
    """Who a login step names (for its budget), if the body says."""
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def _json_body(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise HttpError(ErrorKind.VALIDATION, "Invalid JSON body") from None


class _Call:
    """One authenticated sync call of one tenant's store kind."""

    def __init__(
        self,
        server: HttpServer,
        tenant: HttpTenant,
        kind: StoreKind,
        claims: Claims,
        request: HttpRequest,
    ) -> None:
        self.server = server
        self.tenant = tenant
        self.model = tenant.model
        self.kind = kind
        self.claims = claims
        self.request = request

    def body(self) -> Any:
        return _json_body(self.request.body)

    async def store(self, db_id: str) -> ContentAddressedStore:
        store = await self.model.served_store(db_id, self.kind)
        if store is None:
            raise HttpError(ErrorKind.NOT_FOUND, f'Database "{db_id}" is not served here')
        return store

    async def run(self, op: SyncOp) -> HttpResponse | EventStream:
        handler = _HANDLERS[op]
        return await handler(self)

    # -- GET ---------------------------------------------------------------------------------
    async def op_capabilities(self) -> HttpResponse:
        await self.store(wire.check_db_id(self.request.query.get("dbId")))
        caps = wire.Capabilities(server_time=int(self.server._clock() * 1000))
        return json_response(200, caps.to_json())

    async def op_events(self) -> EventStream:
        db_id = wire.check_db_id(self.request.query.get("dbId") or "directory")
        await self.store(db_id)  # the read gate, as the reference's subscribe-time check
        self.model.subscribed(db_id, self.kind)
        return EventStream(self.tenant.tenant_id, self.kind.value, wire.sse_hello())

    async def op_get_all_ids(self) -> HttpResponse:
        store = await self.store(wire.check_db_id(self.request.query.get("dbId")))
        return json_response(200, wire.ids_to_json(await store.get_all_ids()))

    # -- metadata ----------------------------------------------------------------------------
    async def op_find_new_entries(self) -> HttpResponse:
        ask = wire.FindNewEntriesRequest.from_json(self.body())
        found = await (await self.store(ask.db_id)).find_new_entries(ask.have_ids)
        return json_response(200, wire.entries_to_json(found))

    async def op_find_new_entries_for_doc(self) -> HttpResponse:
        ask = wire.FindNewEntriesForDocRequest.from_json(self.body())
        store = await self.store(ask.db_id)
        found = await store.find_new_entries_for_doc(ask.have_ids, ask.doc_id)
        return json_response(200, wire.entries_to_json(found))

    async def op_find_entries(self) -> HttpResponse:
        ask = wire.FindEntriesRequest.from_json(self.body())
        store = await self.store(ask.db_id)
        found = await store.find_entries(ask.entry_type, ask.created_from, ask.created_until)
        return json_response(200, wire.entries_to_json(found))

    async def op_scan_entries_since(self) -> HttpResponse:
        ask = wire.ScanEntriesRequest.from_json(self.body())
        store = await self.store(ask.db_id)
        page = await store.scan_entries_since(ask.cursor, ask.limit, ask.filters)
        return json_response(200, wire.scan_page_to_json(page))

    async def op_get_store_head(self) -> HttpResponse:
        ask = wire.DbRequest.from_json(self.body())
        head = await (await self.store(ask.db_id)).get_store_head()
        return json_response(200, wire.head_to_json(head))

    async def op_get_id_bloom_summary(self) -> HttpResponse:
        ask = wire.DbRequest.from_json(self.body())
        summary = await (await self.store(ask.db_id)).get_id_bloom_summary()
        return json_response(200, wire.bloom_to_json(summary))

    async def op_get_compaction_status(self) -> HttpResponse:
        ask = wire.DbRequest.from_json(self.body())
        status = await (await self.store(ask.db_id)).get_compaction_status()
        return json_response(200, _compaction_json(status))

    async def op_has_entries(self) -> HttpResponse:
        ask = wire.IdsRequest.from_json(self.body())
        present = await (await self.store(ask.db_id)).has_entries(ask.ids)
        return json_response(200, wire.ids_to_json(present))

    async def op_get_entry_metadata(self) -> HttpResponse:
        ask = wire.GetEntryMetadataRequest.from_json(self.body())
        found = await (await self.store(ask.db_id)).get_metadata([ask.id])
        return json_response(200, wire.entry_metadata_to_json(found[0] if found else None))

    async def op_resolve_dependencies(self) -> HttpResponse:
        ask = wire.ResolveDependenciesRequest.from_json(self.body())
        store = await self.store(ask.db_id)
        ids = await store.resolve_dependencies(ask.start_id, ask.options)
        return json_response(200, wire.ids_to_json(ids))

    # -- materialization planning: not offered by mindood's store API ------------------------
    async def _unsupported(self, what: str) -> HttpResponse:
        wire.check_db_id(_obj_or_empty(self.body()).get("dbId"))
        # The reference answers 500 when its store lacks the planner (capability false).
        return json_response(500, {"error": f"Remote store does not support {what}"})

    async def op_plan_document_materialization(self) -> HttpResponse:
        return await self._unsupported("document materialization planning")

    async def op_plan_document_materialization_batch(self) -> HttpResponse:
        return await self._unsupported("batch materialization planning")

    async def op_plan_attachment_read(self) -> HttpResponse:
        return await self._unsupported("attachment read planning")

    # -- entries -----------------------------------------------------------------------------
    def _reader(self) -> str:
        key = self.claims.device_signing_key
        reader = self.tenant.reader_key(key) if key is not None else None
        if reader is None:
            raise HttpError(
                ErrorKind.ACCESS_DENIED, "No encryption key is known for this device's signing key"
            )
        return reader

    async def _entries(self, db_id: str, ids: Sequence[str]) -> list[StoreEntry]:
        """The entries asked for; an answer over ``max_answer_bytes`` is refused (413) before
        its payloads are read, so one request cannot make the node hold unbounded memory."""
        store = await self.store(db_id)
        size = sum(m.encrypted_size for m in await store.get_metadata(ids))
        if size > self.server.max_answer_bytes:
            raise HttpError(
                ErrorKind.PAYLOAD_TOO_LARGE,
                f"the entries asked for hold {size} bytes, more than this server sends in one "
                f"answer ({self.server.max_answer_bytes}); ask for fewer ids",
            )
        entries = await store.get_entries(ids)
        if entries:
            self.model.served(db_id, len(entries), sum(len(e.encrypted_data) for e in entries))
        return entries

    async def op_get_entries(self) -> HttpResponse:
        ask = wire.GetEntriesRequest.from_json(self.body())
        reader = self._reader()
        entries = await self._entries(ask.db_id, ask.ids)
        if ask.session_key_wrap:
            batch = await _off_loop(wire.seal_session_batch, entries, reader)
            body = wire.session_batch_to_json(batch)
        else:  # one RSA encryption per entry: thousands would stall the event loop
            body = await _off_loop(wire.legacy_entries_to_json, entries, reader)
        return json_response(200, body)

    async def op_get_entries_binary(self) -> HttpResponse:
        ask = wire.IdsRequest.from_json(self.body())
        reader = self._reader()
        entries = await self._entries(ask.db_id, ask.ids)
        batch = await _off_loop(wire.seal_session_batch, entries, reader)
        return HttpResponse(200, wire.encode_get_entries_binary(batch), wire.BINARY_CONTENT_TYPE)

    async def op_put_entries(self) -> HttpResponse:
        return await self._put(wire.PutEntriesRequest.from_json(self.body()))

    async def op_put_entries_binary(self) -> HttpResponse:
        content_type = self.request.headers.get("content-type", "")
        if not content_type.startswith(wire.BINARY_CONTENT_TYPE):
            raise HttpError(
                ErrorKind.VALIDATION,
                f"putEntriesBinary requires a {wire.BINARY_CONTENT_TYPE} body",
            )
        return await self._put(wire.PutEntriesRequest.from_binary(self.request.body))

    async def _put(self, ask: wire.PutEntriesRequest) -> HttpResponse:
        """Store what the node's admission accepts; already-stored ids are acknowledged with
        their stored metadata (idempotent), the rest are rejected by id with the reason."""
        db_id = ask.db_id
        store = await self.store(db_id)
        present = set(await store.has_entries([e.id for e in ask.entries]))
        fresh: dict[str, StoreEntry] = {}
        for entry in ask.entries:
            if entry.id not in present:
                fresh.setdefault(entry.id, entry)
        verdict = await self.model.admit(db_id, list(fresh.values()))
        result = await store.put_entries(verdict.accepted)
        if result.stored:
            await self.model.took_in(db_id)
        kept = [*present, *result.stored, *result.existing]
        order = {e.id: i for i, e in enumerate(ask.entries)}
        receipts = await store.get_metadata(sorted(set(kept), key=lambda i: order.get(i, 0)))
        rejected = [
            *ask.malformed,
            *(wire.Rejection(i, f"Entry {i} {r}") for i, r in verdict.rejected),
            *(wire.Rejection(i, f"Entry {i} {r}") for i, r in result.rejected),
            *(wire.Rejection(i, f"Entry {i} {UNTRUSTED}") for i in verdict.deferred),
        ]
        for refusal in rejected:
            log.warning(
                "http push entry refused",
                extra={"entry_id": refusal.id[:200], "reason": refusal.reason[:500], "db": db_id},
            )
        if result.stored:
            head = await store.get_store_head()
            self.server.publish_change(
                self.tenant.tenant_id,
                wire.ChangeEvent(db_id, self.kind.value, head.epoch, head.max_receipt_order),
            )
        response = wire.PutEntriesResponse(tuple(receipts), tuple(rejected))
        return json_response(200, response.to_json())


_Handler = Callable[[_Call], Awaitable[HttpResponse | EventStream]]
#: One handler per operation (every ``SyncOp`` has one: checked at import).
_HANDLERS: dict[SyncOp, _Handler] = {
    SyncOp.CAPABILITIES: _Call.op_capabilities,
    SyncOp.EVENTS: _Call.op_events,
    SyncOp.FIND_NEW_ENTRIES: _Call.op_find_new_entries,
    SyncOp.FIND_NEW_ENTRIES_FOR_DOC: _Call.op_find_new_entries_for_doc,
    SyncOp.FIND_ENTRIES: _Call.op_find_entries,
    SyncOp.SCAN_ENTRIES_SINCE: _Call.op_scan_entries_since,
    SyncOp.GET_STORE_HEAD: _Call.op_get_store_head,
    SyncOp.GET_ID_BLOOM_SUMMARY: _Call.op_get_id_bloom_summary,
    SyncOp.GET_COMPACTION_STATUS: _Call.op_get_compaction_status,
    SyncOp.HAS_ENTRIES: _Call.op_has_entries,
    SyncOp.GET_ALL_IDS: _Call.op_get_all_ids,
    SyncOp.GET_ENTRIES: _Call.op_get_entries,
    SyncOp.GET_ENTRIES_BINARY: _Call.op_get_entries_binary,
    SyncOp.GET_ENTRY_METADATA: _Call.op_get_entry_metadata,
    SyncOp.PUT_ENTRIES: _Call.op_put_entries,
    SyncOp.PUT_ENTRIES_BINARY: _Call.op_put_entries_binary,
    SyncOp.RESOLVE_DEPENDENCIES: _Call.op_resolve_dependencies,
    SyncOp.PLAN_DOCUMENT_MATERIALIZATION: _Call.op_plan_document_materialization,
    SyncOp.PLAN_DOCUMENT_MATERIALIZATION_BATCH: _Call.op_plan_document_materialization_batch,
    SyncOp.PLAN_ATTACHMENT_READ: _Call.op_plan_attachment_read,
}
assert set(_HANDLERS) == set(SyncOp)


_T = TypeVar("_T")
#: Batches at least this large are sealed in a worker thread.
_OFF_LOOP_ENTRIES = 32


async def _off_loop(
    fn: Callable[[Sequence[StoreEntry], str], _T], entries: Sequence[StoreEntry], reader: str
) -> _T:
    if len(entries) < _OFF_LOOP_ENTRIES:
        return fn(entries, reader)
    return await asyncio.to_thread(fn, entries, reader)


def _obj_or_empty(body: Any) -> Mapping[str, Any]:
    return body if isinstance(body, Mapping) else {}
