"""Serving the tenants of a ``SyncNode`` over the reference's HTTP sync API.

``HttpGateway`` implements ``protocol.http.server.HttpNode`` for every tenant the node serves:
each HTTP client reaches a tenant's databases through ``HttpServeModel``, the same serve seam
(store choice, ``MindooDB.admit_entries``, ``sync_store_changes``) a native ``PeerLink`` uses,
so an HTTP push is verified, trust-checked, stored and applied like a native one, and the
node's announcer then tells native peers too. Login asks the tenant's directory (readable with
``$publicinfos`` alone, so a relay serves HTTP clients as well). Every database growth the node
hears of, from any source, becomes an SSE ``change`` event.

The server identity of ``/.well-known/mindoodb-server-info`` is the node's own Ed25519 and
RSA-OAEP pair, made on first use and kept (0600) next to the node's TLS key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from mindood.crypto import rsa
from mindood.crypto.pem import normalize_pem
from mindood.crypto.signing import generate_signing_keypair, signing_public_pem
from mindood.db import MindooDB
from mindood.errors import MindoodError
from mindood.storefactory import check_component
from mindood.sync.link import DIRECTORY, TenantSync, split_oversized
from mindood.sync.node import SyncNode
from mindood.tenant.directory import PUBLIC_INFOS_KEY_ID
from mindood.tenant.grants import JOIN_BOOTSTRAP_FIELD
from mindood.tenant.trust import Verdict
from protocol.http import wire
from protocol.http.auth import KeyStatus, UserKeys
from protocol.http.ratelimit import RateLimits
from protocol.http.server import EventStream, HttpRequest, HttpResponse, HttpServer
from protocol.http.system import (
    SystemAdmin,
    SystemApi,
    SystemAuth,
    TenantRegistrar,
    parse_allowlist,
)
from protocol.interfaces import PeerRefused
from protocol.store_ops import StoreKind
from store.base import ContentAddressedStore
from store.entry import StoreEntry
from store.errors import StoreError
from store.limits import MAX_ENTRY_BYTES
from store.verify import VerifiedBatch
from transports.http_server import Push, Request, Response, Stream

log = logging.getLogger("mindood.sync.http")

IDENTITY_FILE = "http-server-identity.json"


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """The node's HTTP server identity: Ed25519 signing and RSA-OAEP encryption keys."""

    signing_key: Ed25519PrivateKey
    encryption_key: RSAPrivateKey

    @property
    def signing_public_pem(self) -> str:
        return signing_public_pem(self.signing_key)

    @property
    def encryption_public_pem(self) -> str:
        return rsa.rsa_public_pem(self.encryption_key)

    @classmethod
    def load_or_create(cls, directory: Path) -> ServerIdentity:
        """The identity kept in ``directory``, created on first use (RSA keygen: ~0.4 s)."""
        path = directory / IDENTITY_FILE
        if path.exists():
            raw = json.loads(path.read_text("utf-8"))
            signing = serialization.load_pem_private_key(raw["signing"].encode(), None)
            encryption = serialization.load_pem_private_key(raw["encryption"].encode(), None)
            if not isinstance(signing, Ed25519PrivateKey) or not isinstance(
                encryption, RSAPrivateKey
            ):
                raise MindoodError(f"{path} does not hold an Ed25519 and an RSA key")
            return cls(signing, encryption)
        identity = cls(generate_signing_keypair(), rsa.generate_rsa_keypair())
        directory.mkdir(parents=True, exist_ok=True)

        def pem(key: Ed25519PrivateKey | RSAPrivateKey) -> str:
            return key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()

        text = json.dumps(
            {"signing": pem(identity.signing_key), "encryption": pem(identity.encryption_key)}
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        return identity


def unwrap_hybrid(blob: bytes, key: RSAPrivateKey) -> bytes:
    """The reference's hybrid RSA blob (``RSAEncryption.encrypt``), opened with the server key."""
    try:
        return rsa.decrypt(blob, key)
    except MindoodError as exc:
        raise ValueError(str(exc)) from None


class HttpServeModel:
    """``protocol.serve.ServeModel`` for the HTTP clients of one tenant (cf. ``PeerLink``)."""

    def __init__(
        self, node: SyncNode, sync: TenantSync, *, max_entry_bytes: int = MAX_ENTRY_BYTES
    ) -> None:
        self._node = node
        self._sync = sync
        self._max_entry_bytes = max_entry_bytes

    @property
    def tenant_id(self) -> str:
        return self._sync.context.tenant_id

    async def local_db(self, name: str) -> MindooDB:
        return await self._sync.followed_db(name)

    def served_databases(self) -> list[str]:
        return sorted(self._sync.databases)

    async def served_store(self, db: str, kind: StoreKind) -> ContentAddressedStore | None:
        """The store of ``db``; a database a client names that this node does not hold yet is
        adopted (as the reference server opens any valid database), unless it was dropped."""
        if db not in self._sync.databases:
            try:
                check_component(db, "database name")
            except MindoodError:
                return None
            if self._node.is_dropped(self.tenant_id, db):
                return None
            await self._node.add_database(self.tenant_id, db)
            if db not in self._sync.databases:
                return None
        local = await self.local_db(db)
        return local.get_store() if kind is StoreKind.DOCS else local.get_attachment_store()

    async def admit(self, db: str, entries: Sequence[StoreEntry]) -> VerifiedBatch:
        """The size limit, then the database's own checks (signature, hash, trust, purges)."""
        limit = self._max_entry_bytes
        fitting, oversized = split_oversized(entries, limit)
        verdict = await (await self.local_db(db)).admit_entries(fitting)
        return VerifiedBatch(verdict.accepted, (*oversized, *verdict.rejected), verdict.deferred)

    async def took_in(self, db: str) -> None:
        if not self._sync.follows(db):
            return  # dropped here while they were on their way
        await (await self.local_db(db)).sync_store_changes()
        self._sync.grew(db)  # announce even if a reader already folded the entries in
        if db == DIRECTORY:
            await self._sync.context.tenant.refresh_directory()

    def subscribed(self, db: str, kind: StoreKind) -> None:
        pass  # SSE streams follow the whole tenant; the gateway publishes every change

    def damaged(self, db: str) -> None:
        self._sync.heal(db)

    def served(self, db: str, entries: int, size: int) -> None:
        log.debug("served over http", extra={"db": db, "entries": entries, "bytes": size})


class HttpTenantView:
    """``protocol.http.server.HttpTenant`` and its ``AuthDirectory`` for one served tenant."""

    def __init__(
        self,
        node: SyncNode,
        sync: TenantSync,
        *,
        max_entry_bytes: int,
        admin_username: str | None = None,
    ) -> None:
        self._sync = sync
        self._model = HttpServeModel(node, sync, max_entry_bytes=max_entry_bytes)
        #: The admin username a registration named: that admin logs in before any grant.
        self._admin_username = admin_username.lower() if admin_username else None

    @property
    def tenant_id(self) -> str:
        return self._sync.context.tenant_id

    @property
    def directory(self) -> HttpTenantView:
        return self

    @property
    def model(self) -> HttpServeModel:
        return self._model

    def user_keys(self, username: str) -> UserKeys:
        directory = self._sync.context.tenant.get_directory()
        index = directory.index
        active = tuple(
            p.signing_public_key
            for p in index.active_key_pairs(username)
            if self.key_status(p.signing_public_key) is KeyStatus.ACTIVE
        )
        if not active and self._admin_username == username.lower():
            return UserKeys((self._sync.context.tenant.admin_signing_public_key,), False)
        return UserKeys(active, bool(index.revoked_key_pairs(username)))

    def key_status(self, signing_public_key: str) -> KeyStatus:
        tenant = self._sync.context.tenant
        if normalize_pem(signing_public_key) == normalize_pem(tenant.admin_signing_public_key):
            return KeyStatus.ACTIVE
        verdict = tenant.get_directory().trust.verdict(signing_public_key, 2**62)
        if verdict is Verdict.ACTIVE or verdict is Verdict.ADMIN:
            return KeyStatus.ACTIVE
        if verdict is Verdict.REVOKED or verdict is Verdict.BEFORE_REVOCATION:
            return KeyStatus.REVOKED
        return KeyStatus.UNKNOWN

    def reader_key(self, signing_public_key: str) -> str | None:
        """The encryption key the directory lists beside this very device key (the tenant
        admin's own key pair is known without a grant)."""
        tenant = self._sync.context.tenant
        if normalize_pem(signing_public_key) == normalize_pem(tenant.admin_signing_public_key):
            return tenant.admin_encryption_public_key
        try:
            peer = self._sync.context.check_peer(signing_public_key, "", dialed=False)
        except PeerRefused:
            return None
        return peer.encryption_public_key or None

    def publicinfos_fingerprints(self) -> list[str]:
        tenant = self._sync.context.tenant
        keys = tenant.key_bag.get_all(tenant.tenant_id, PUBLIC_INFOS_KEY_ID)
        return sorted({":".join(f"{b:02x}" for b in hashlib.sha256(k).digest()[:8]) for k in keys})


class HttpGateway:
    """The node's HTTP face: ``HttpNode`` for the sans-I/O server, a handler for the listener,
    and the publisher that turns the node's change notices into SSE events."""

    def __init__(
        self,
        node: SyncNode,
        identity: ServerIdentity | None,
        *,
        name: str | None = None,
        body_limit: int = wire.DEFAULT_BODY_LIMIT,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
        clock: Callable[[], float] = time.time,
        registrar: TenantRegistrar | None = None,
        system_admins: Sequence[SystemAdmin] = (),
        system_allowed_ips: Sequence[str] = (),
        rate_limits: RateLimits | None = None,
    ) -> None:
        self._node = node
        self._identity = identity
        self._name = name or socket.gethostname() or "mindood"
        self._max_entry_bytes = max_entry_bytes
        self._views: dict[str, tuple[TenantSync, HttpTenantView]] = {}
        self._registrar = registrar
        system = None
        if registrar is not None and identity is not None:
            key = identity.encryption_key
            system = SystemApi(
                SystemAuth(system_admins, clock=clock),
                registrar,
                lambda blob: unwrap_hybrid(blob, key),
                allowed_ips=parse_allowlist(system_allowed_ips),
            )
        self.server = HttpServer(
            self, body_limit=body_limit, clock=clock, system=system, rate_limits=rate_limits
        )
        self._dirty: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        self._unhook = node.on_change(self._changed)

    # -- HttpNode ----------------------------------------------------------------------------
    def server_info(self) -> wire.ServerInfo | None:
        if self._identity is None:
            return None
        limit = self.server.body_limit
        return wire.ServerInfo(
            self._name,
            self._identity.signing_public_pem,
            self._identity.encryption_public_pem,
            f"{limit}b" if limit != wire.DEFAULT_BODY_LIMIT else wire.DEFAULT_BODY_LIMIT_TEXT,
            limit,
        )

    def tenant(self, tenant_id: str) -> HttpTenantView | None:
        sync = self._node.tenant_sync(tenant_id)
        if sync is None:
            self._views.pop(tenant_id, None)
            self.server.forget_tenant(tenant_id)
            return None
        cached = self._views.get(tenant_id)
        if cached is None or cached[0] is not sync:
            if cached is not None:
                self.server.forget_tenant(tenant_id)  # locked and unlocked again: new logins
            admin = self._registrar.admin_username(tenant_id) if self._registrar else None
            view = HttpTenantView(
                self._node, sync, max_entry_bytes=self._max_entry_bytes, admin_username=admin
            )
            cached = (sync, view)
            self._views[tenant_id] = cached
        return cached[1]

    def device_deliveries(self, signing_public_key: str) -> list[dict[str, Any]]:
        """Per served tenant whose directory grants this device key (active): what the device
        needs to open it (reference ``DeviceTenantDelivery``). A tenant whose ``$publicinfos``
        key this node lacks is skipped."""
        wanted = normalize_pem(signing_public_key)
        out: list[dict[str, Any]] = []
        for context in sorted(self._node.tenant_contexts(), key=lambda c: c.tenant_id):
            tenant = context.tenant
            keys = tenant.key_bag.get_all(tenant.tenant_id, PUBLIC_INFOS_KEY_ID)
            if not keys:
                continue
            directory = tenant.get_directory()
            if directory.trust.verdict(signing_public_key, 2**62) is not Verdict.ACTIVE:
                continue
            for grant in directory.index.grants():
                pair = next((p for p in grant.active if p.signing_key_id == wanted), None)
                if pair is None or not pair.encryption_public_key:
                    continue
                wrapped = [rsa.wrap_key_to_base64(k, pair.encryption_public_key) for k in keys]
                delivery: dict[str, Any] = {
                    "tenantId": tenant.tenant_id,
                    "adminSigningPublicKey": tenant.admin_signing_public_key,
                    "adminEncryptionPublicKey": tenant.admin_encryption_public_key,
                    "wrappedPublicInfosKey": wrapped[0],
                }
                if len(wrapped) > 1:
                    delivery["wrappedPublicInfosKeys"] = wrapped
                join = pair.raw.get(JOIN_BOOTSTRAP_FIELD)
                if isinstance(join, str) and join.strip():
                    delivery["wrappedJoinResponse"] = join.strip()
                if grant.username_hash:
                    delivery["username_hash"] = grant.username_hash
                if grant.identity_hashes:
                    delivery["identity_hashes"] = sorted(grant.identity_hashes)
                out.append(delivery)
                break
        return out

    # -- the listener's handler --------------------------------------------------------------
    def gate(self, method: str, path: str, headers: Mapping[str, str]) -> bool:
        """For the listener: full body limit only for a request with a valid token."""
        return self.server.authorized(method, path, headers)

    async def handle(self, request: Request) -> Response | Stream:
        answer = await self.server.handle(
            HttpRequest(
                request.method,
                request.path,
                request.query,
                request.headers,
                request.body,
                request.remote,
            )
        )
        if isinstance(answer, HttpResponse):
            return Response(answer.status, answer.body, answer.content_type, answer.headers)
        return self._stream(answer)

    def _stream(self, stream: EventStream) -> Stream:
        def subscribe(push: Push) -> Callable[[], None]:
            return self.server.events.subscribe(
                stream.tenant_id, stream.kind, lambda event: push(wire.sse_change(event))
            )

        return Stream(stream.hello, subscribe)

    # -- change events -----------------------------------------------------------------------
    def _changed(self, tenant_id: str, db: str) -> None:
        events = self.server.events
        if any(events.wants(tenant_id, kind.value) for kind in StoreKind):
            self._dirty.add((tenant_id, db))
            self._wake.set()

    async def run(self) -> None:
        """Publish coalesced change events until cancelled (the owner's task group runs it)."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                dirty, self._dirty = self._dirty, set()
                for tenant_id, db in sorted(dirty):
                    await self._publish(tenant_id, db)
        finally:
            self._unhook()

    async def _publish(self, tenant_id: str, db: str) -> None:
        view = self.tenant(tenant_id)
        if view is None:
            return
        for kind in StoreKind:
            if not self.server.events.wants(tenant_id, kind.value):
                continue
            try:
                local = await view.model.local_db(db)
                store = (
                    local.get_store() if kind is StoreKind.DOCS else local.get_attachment_store()
                )
                if store is None:
                    continue
                head = await store.get_store_head()
            except (StoreError, MindoodError) as exc:
                log.info(
                    "no change event: the store is unavailable",
                    extra={"db": db, "error": str(exc)},
                )
                continue
            # The same head is not sent twice (``publish_change``): an attachments stream
            # hears of the database only when its own store moved.
            event = wire.ChangeEvent(db, kind.value, head.epoch, head.max_receipt_order)
            self.server.publish_change(tenant_id, event)
