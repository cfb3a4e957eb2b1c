"""The tenants a node holds, each either *locked* (only ciphertext on disk) or *unlocked*.

On disk, under the data directory::

    tenants/<tenant>/<db>/{docs,attachments}/   stores (OnDiskStoreFactory)
    tenants/<tenant>/.tenant/session            the session: identity + keys, sealed with the
                                                user's password (Tenant.save_session)
    tenants/<tenant>/.tenant/admin-identity     the admin identity, its private keys sealed with
                                                the admin's password (only where it was created)
    tenants/<tenant>/.tenant/registration       a tenant a system admin registered over HTTP
                                                (``POST /system/tenants/<id>``): its admin's keys
                                                and the random password of its session (0600)
    identities/<sha256(username)>.json          this node's user identities (sealed), reused
                                                across tenants and kept for pending joins

A registered tenant is a relay: its session holds only the ``$publicinfos`` key (enough to
read the directory and check who may push) under an identity of this node that no grant names.
It unlocks itself at startup from its registration file, as the server identity next to the
node's TLS key is read without a password. After a restart every other tenant is locked until
``unlock`` (a password over RPC, a configured
``password_file`` or a systemd credential). ``lock`` closes the tenant and drops every reference
to its keys. Stores hold only ciphertext and stay open in the store factory either way.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mindood.daemon.config import Config
from mindood.daemon.events import DocChanged, EventBus, TenantStateChanged
from mindood.daemon.paths import TENANTS_DIR
from mindood.daemon.secrets import credential_path, read_password_file
from mindood.db import MindooDB
from mindood.errors import InvalidNameError, MindoodError, NotAdminError
from mindood.identity import PrivateUserId, ensure_user_key_pair, unlock_async
from mindood.keybag import KeyBag
from mindood.rpc.errors import AlreadyExistsError, NotFoundError, TenantLockedError
from mindood.storefactory import (
    META_DIR,
    OnDiskStoreFactory,
    StoreFactory,
    check_component,
    write_private_file,
)
from mindood.tenant import JoinResponse, Tenant, TenantFactory
from mindood.tenant.directory import DIRECTORY_DB_ID, PUBLIC_INFOS_KEY_ID
from mindood.tenant.tenant import SESSION_META_NAME, check_tenant_id
from store.base import ContentAddressedStore

log = logging.getLogger("mindood.tenants")

ADMIN_META_NAME = "admin-identity"
REGISTRATION_META_NAME = "registration"
IDENTITIES_DIR = "identities"


class RegistrationConflictError(AlreadyExistsError):
    """The tenant is on this node with another ``$publicinfos`` key."""


@dataclass(frozen=True, slots=True)
class Registration:
    """What ``POST /system/tenants/<id>`` left on disk for a relay tenant."""

    admin_username: str | None
    admin_signing_public_key: str
    admin_encryption_public_key: str
    session_password: str
    registered_at: float

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "adminUsername": self.admin_username,
                "adminSigningPublicKey": self.admin_signing_public_key,
                "adminEncryptionPublicKey": self.admin_encryption_public_key,
                "sessionPassword": self.session_password,
                "registeredAt": self.registered_at,
            }
        ).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Registration:
        raw = json.loads(data.decode("utf-8"))
        return cls(
            raw.get("adminUsername"),
            raw["adminSigningPublicKey"],
            raw["adminEncryptionPublicKey"],
            raw["sessionPassword"],
            float(raw.get("registeredAt", 0)),
        )


@dataclass(slots=True)
class TenantSlot:
    """One tenant on this node; ``tenant`` is None while locked."""

    id: str
    tenant: Tenant | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Databases opened in this run (listed even before their store has a file).
    opened: set[str] = field(default_factory=set)
    #: Ends this tenant's ``doc.changed`` feed (set while unlocked).
    unhook: Callable[[], None] | None = None
    unlocked_at: float | None = None

    @property
    def locked(self) -> bool:
        return self.tenant is None


class IdentityStore:
    """This node's sealed user identities, one file per username."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    def _path(self, username: str) -> Path:
        digest = hashlib.sha256(username.encode("utf-8")).hexdigest()
        return self._dir / f"{digest}.json"

    async def get(self, username: str) -> PrivateUserId | None:
        path = self._path(username)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        return PrivateUserId.from_bytes(data)

    async def put(self, user: PrivateUserId) -> None:
        await asyncio.to_thread(write_private_file, self._path(user.username), user.to_bytes())


class TenantRegistry:
    """Creates, joins, unlocks and locks tenants; hands out their databases."""

    def __init__(
        self,
        data_dir: Path,
        bus: EventBus,
        env: Mapping[str, str],
        *,
        store_factory: StoreFactory | None = None,
    ) -> None:
        self.base = data_dir / TENANTS_DIR
        self.store_factory: StoreFactory = store_factory or OnDiskStoreFactory(self.base)
        self.factory = TenantFactory(self.store_factory)
        self.identities = IdentityStore(data_dir / IDENTITIES_DIR)
        self._bus = bus
        self._env = env
        self._slots: dict[str, TenantSlot] = {}
        self._creating: dict[str, asyncio.Lock] = {}
        self._sync_notes: dict[str, tuple[str, str]] = {}
        #: Registered (relay) tenants, read from disk on first need.
        self._registrations: dict[str, Registration] | None = None

    # -- what exists -------------------------------------------------------------------------
    def _on_disk(self) -> list[str]:
        try:
            children = list(self.base.iterdir())
        except FileNotFoundError:
            return []
        return [
            child.name
            for child in children
            if (child / META_DIR / SESSION_META_NAME).is_file() and not child.name.startswith(".")
        ]

    def known_ids(self) -> list[str]:
        return sorted(set(self._slots) | set(self._on_disk()))

    def slot(self, tenant_id: str) -> TenantSlot:
        slot = self._slots.get(tenant_id)
        if slot is not None:
            return slot
        check_tenant_id(tenant_id)
        if not (self.base / tenant_id / META_DIR / SESSION_META_NAME).is_file():
            raise NotFoundError(f"no tenant {tenant_id!r} on this node")
        slot = self._slots[tenant_id] = TenantSlot(tenant_id)
        return slot

    def unlocked(self, tenant_id: str) -> Tenant:
        tenant = self.slot(tenant_id).tenant
        if tenant is None:
            raise TenantLockedError(f"tenant {tenant_id!r} is locked; unlock it first")
        return tenant

    def databases(self, tenant_id: str) -> list[str]:
        """Databases with stores on disk, plus those opened in this run."""
        slot = self.slot(tenant_id)
        names = {DIRECTORY_DB_ID, *slot.opened}
        try:
            for child in (self.base / tenant_id).iterdir():
                if child.is_dir() and not child.name.startswith("."):
                    names.add(child.name)
        except FileNotFoundError:
            pass
        return sorted(names)

    def set_sync_note(self, tenant_id: str, state: str, reason: str) -> None:
        """What sync learned about this tenant that its user must see (``revoked``)."""
        self._sync_notes[tenant_id] = (state, reason)

    def describe(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for tenant_id in self.known_ids():
            slot = self.slot(tenant_id)
            entry: dict[str, Any] = {
                "id": tenant_id,
                "state": "locked" if slot.locked else "unlocked",
                "databases": self.databases(tenant_id),
            }
            if slot.tenant is not None:
                entry["user"] = slot.tenant.user.username
            note = self._sync_notes.get(tenant_id)
            if note is not None:
                entry["sync"] = {"state": note[0], "reason": note[1]}
            troubled = self.store_factory.store_health(tenant_id)
            if troubled:
                entry["stores"] = {
                    name: {k: v for k, v in asdict(health).items() if v is not None and v != ()}
                    for name, health in sorted(troubled.items())
                }
            out.append(entry)
        return out

    # -- databases ---------------------------------------------------------------------------
    async def open_db(self, tenant_id: str, name: str, *, create: bool = False) -> MindooDB:
        check_component(name, "database name")
        tenant = self.unlocked(tenant_id)
        slot = self.slot(tenant_id)
        if not create and name not in slot.opened:
            self.require_db(tenant_id, name)
        db = await tenant.open_db(name)
        if slot.tenant is tenant:
            slot.opened.add(name)
        return db

    async def open_store(self, tenant_id: str, name: str) -> ContentAddressedStore:
        """A database's document store, without keys (works while the tenant is locked)."""
        check_component(name, "database name")
        self.require_db(tenant_id, name)
        return await self.store_factory.open_store(tenant_id, name, "docs")

    def require_db(self, tenant_id: str, name: str) -> None:
        """Refuse a database that does not exist, naming those that do: a typo must not create
        a database that then syncs to every node."""
        existing = self.databases(tenant_id)
        if name not in existing:
            listed = ", ".join(n for n in existing if n != DIRECTORY_DB_ID) or "none yet"
            raise NotFoundError(
                f"no database {name!r} in tenant {tenant_id!r} (existing: {listed}); "
                f"create it with `mindood db create {tenant_id} {name}`"
            )

    async def drop_db(
        self, tenant_id: str, name: str, forget: Callable[[str, str], Awaitable[None]] | None
    ) -> None:
        """Delete this node's copy of a database; ``forget`` first stops its sync."""
        if name == DIRECTORY_DB_ID:
            raise InvalidNameError("the directory database cannot be dropped")
        tenant = self.unlocked(tenant_id)
        self.require_db(tenant_id, name)
        slot = self.slot(tenant_id)
        async with slot.lock:
            if forget is not None:
                await forget(tenant_id, name)
            slot.opened.discard(name)
            await tenant.drop_db(name)
        log.info("database dropped", extra={"tenant": tenant_id, "db": name})

    def _publisher(self, tenant_id: str) -> Callable[[str, set[str]], None]:
        def publish(db: str, doc_ids: set[str]) -> None:
            self._bus.publish(DocChanged(tenant_id, db, tuple(sorted(doc_ids))))

        return publish

    # -- lifecycle ---------------------------------------------------------------------------
    def _creation_lock(self, tenant_id: str) -> asyncio.Lock:
        return self._creating.setdefault(tenant_id, asyncio.Lock())

    async def _check_new(self, tenant_id: str) -> None:
        check_tenant_id(tenant_id)
        if tenant_id in self._slots or (self.base / tenant_id).exists():
            raise AlreadyExistsError(f"tenant {tenant_id!r} already exists on this node")

    async def _user_identity(self, username: str, password: str) -> PrivateUserId | None:
        """This node's identity for ``username`` (checked against ``password``), if it has one."""
        existing = await self.identities.get(username)
        if existing is not None:
            # WrongPasswordError if not; one derivation proves it (the signing key opens).
            await unlock_async(existing, password, signing_only=True)
        return existing

    async def create(
        self,
        tenant_id: str,
        *,
        admin_name: str,
        admin_password: str,
        user_name: str,
        user_password: str,
        databases: tuple[str, ...] = (),
    ) -> Tenant:
        async with self._creation_lock(tenant_id):
            await self._check_new(tenant_id)
            app_user = await self._user_identity(user_name, user_password)
            created = await self.factory.create_tenant(
                tenant_id=tenant_id,
                admin_name=admin_name,
                admin_password=admin_password,
                user_name=user_name,
                user_password=user_password,
                app_user=app_user,
            )
            await self.store_factory.write_meta(
                tenant_id, ADMIN_META_NAME, created.admin_user.to_bytes()
            )
            if app_user is None or app_user != created.app_user:  # new, or given a User-Key
                await self.identities.put(created.app_user)
            await created.tenant.save_session(user_password)
            slot = self._slots[tenant_id] = TenantSlot(tenant_id)
            await self._activate(slot, created.tenant, databases)
            return created.tenant

    async def join_request(self, user_name: str, password: str, label: str | None) -> str:
        """A join request for ``user_name``; the identity is made (and kept) if new."""
        user = await self._user_identity(user_name, password)
        if user is None:
            user = await self.factory.create_user_id(user_name, password)
            await self.identities.put(user)
        elif not user.has_user_key:  # an identity from before User-Keys: give it one, once
            user = await asyncio.to_thread(ensure_user_key_pair, user, password)
            await self.identities.put(user)
        return self.factory.create_join_request(user, label=label)

    async def join(
        self, response: str, password: str, share_password: str | None, databases: tuple[str, ...]
    ) -> Tenant:
        parsed = JoinResponse.parse(response)
        tenant_id = parsed.tenant_id
        async with self._creation_lock(tenant_id):
            await self._check_new(tenant_id)
            user = await self.identities.get(parsed.username)
            if user is None:
                raise NotFoundError(
                    f"no identity for {parsed.username!r} on this node: "
                    "make the join request on this node first"
                )
            joined = await self.factory.join_tenant(
                parsed, user=user, password=password, share_password=share_password
            )
            await joined.tenant.save_session(password)
            slot = self._slots[tenant_id] = TenantSlot(tenant_id)
            await self._activate(slot, joined.tenant, databases)
            return joined.tenant

    async def approve(
        self,
        tenant_id: str,
        request: str,
        *,
        admin_password: str,
        username: str | None,
        label: str | None,
        share_password: str | None,
        relay: bool = False,
    ) -> str:
        tenant = self.unlocked(tenant_id)
        admin = await self.admin_identity(tenant_id)
        return await tenant.approve_join_request(
            request,
            admin_signing_key=admin,
            admin_password=admin_password,
            username=username,
            label=label,
            share_password=share_password,
            relay=relay,
        )

    async def revoke(self, tenant_id: str, username: str, *, admin_password: str) -> int:
        tenant = self.unlocked(tenant_id)
        admin = await self.admin_identity(tenant_id)
        return await tenant.revoke_user(
            username, admin_signing_key=admin, admin_password=admin_password
        )

    async def import_session(self, blob: bytes, password: str) -> Tenant:
        tenant = await self.factory.restore_session(blob, password)
        try:
            async with self._creation_lock(tenant.tenant_id):
                await self._check_new(tenant.tenant_id)
                await tenant.save_session(password)
                slot = self._slots[tenant.tenant_id] = TenantSlot(tenant.tenant_id)
                await self._activate(slot, tenant, ())
        except BaseException:
            if tenant.tenant_id not in self._slots:
                await tenant.close()
            raise
        return tenant

    async def unlock(self, tenant_id: str, password: str, databases: tuple[str, ...] = ()) -> bool:
        """Open the saved session; False if the tenant was unlocked already."""
        slot = self.slot(tenant_id)
        async with slot.lock:
            if slot.tenant is not None:
                return False
            tenant = await self.factory.load_session(tenant_id, password)
            if tenant is None:
                raise NotFoundError(f"tenant {tenant_id!r} has no saved session")
            await self._activate(slot, tenant, databases)
            return True

    async def _activate(self, slot: TenantSlot, tenant: Tenant, databases: tuple[str, ...]) -> None:
        slot.tenant = tenant
        slot.unlocked_at = time.time()
        # The feed hangs on the tenant, not on one open path: whoever opens a database (sync
        # after a restart, a purge, an app), its changes are published.
        slot.unhook = tenant.on_db_change(self._publisher(slot.id))
        for name in databases:
            await self.open_db(slot.id, name, create=True)
        self._bus.publish(TenantStateChanged(slot.id, "unlocked"))
        log.info("tenant %s unlocked", slot.id)

    async def lock(self, tenant_id: str) -> bool:
        """Close the tenant and forget its keys; False if it was locked already."""
        slot = self.slot(tenant_id)
        async with slot.lock:
            tenant = slot.tenant
            if tenant is None:
                return False
            if slot.unhook is not None:
                slot.unhook()
                slot.unhook = None
            slot.opened.clear()
            slot.tenant = None
            slot.unlocked_at = None
            await tenant.close()
        self._bus.publish(TenantStateChanged(tenant_id, "locked"))
        log.info("tenant %s locked", tenant_id)
        return True

    async def export_session(self, tenant_id: str, password: str) -> bytes:
        return await self.unlocked(tenant_id).export_session(password)

    # -- for the admin and key RPC methods (mindood.daemon.admin_methods) --------------------
    async def admin_identity(self, tenant_id: str) -> PrivateUserId:
        """The tenant's admin identity, still sealed under the admin password."""
        self.unlocked(tenant_id)
        blob = await self.store_factory.read_meta(tenant_id, ADMIN_META_NAME)
        if blob is None:
            raise NotAdminError(f"this node does not hold the admin identity of {tenant_id!r}")
        return PrivateUserId.from_bytes(blob)

    async def check_password(self, tenant_id: str, password: str) -> Tenant:
        """The unlocked tenant, once ``password`` proved to be its user's (else WrongPassword)."""
        tenant = self.unlocked(tenant_id)
        await unlock_async(tenant.user.private, password, signing_only=True)  # one derivation
        return tenant

    # -- tenants registered over HTTP (relays) -----------------------------------------------
    async def registrations(self) -> dict[str, Registration]:
        """Every registered tenant on disk (read once, then kept current)."""
        if self._registrations is None:
            found: dict[str, Registration] = {}
            for tenant_id in self._on_disk():
                blob = await self.store_factory.read_meta(tenant_id, REGISTRATION_META_NAME)
                if blob is None:
                    continue
                try:
                    found[tenant_id] = Registration.from_bytes(blob)
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("unreadable registration of tenant %s: %s", tenant_id, exc)
            self._registrations = found
        return self._registrations

    def registration(self, tenant_id: str) -> Registration | None:
        """The registration of ``tenant_id`` if it was registered (None before the first read)."""
        return (self._registrations or {}).get(tenant_id)

    async def register_relay(
        self,
        tenant_id: str,
        *,
        admin_username: str | None,
        admin_signing_public_key: str,
        admin_encryption_public_key: str,
        public_infos_key: bytes,
    ) -> bool:
        """Hold ``tenant_id`` as a relay with only its ``$publicinfos`` key; True if new.

        A tenant already here answers by its key: the same ``$publicinfos`` key is an
        idempotent repeat (False), another one is ``RegistrationConflictError``.
        """
        check_tenant_id(tenant_id)
        registered = await self.registrations()
        async with self._creation_lock(tenant_id):
            if tenant_id in self.known_ids() or (self.base / tenant_id).exists():
                if tenant_id in registered:  # locked over RPC, say: its key is still ours
                    await self.unlock(tenant_id, registered[tenant_id].session_password)
                slot = self._slots.get(tenant_id)
                tenant = slot.tenant if slot is not None else None
                held = tenant.key_bag.get_all(tenant_id, PUBLIC_INFOS_KEY_ID) if tenant else []
                if public_infos_key in held:
                    return False
                raise RegistrationConflictError(
                    f"Tenant {tenant_id} already exists with different $publicinfos key"
                    if tenant is not None
                    else f"Tenant {tenant_id} already exists on this node"
                )
            password = secrets.token_urlsafe(32)
            user = await self.factory.create_user_id(f"CN=relay/O={tenant_id}", password)
            bag = await asyncio.to_thread(KeyBag.for_user, user, password)
            bag.set(tenant_id, PUBLIC_INFOS_KEY_ID, public_infos_key)
            registration = Registration(
                admin_username,
                admin_signing_public_key,
                admin_encryption_public_key,
                password,
                time.time(),
            )
            tenant = await self.factory.open_tenant(
                tenant_id,
                admin_signing_public_key,
                admin_encryption_public_key,
                user,
                password,
                bag,
            )
            try:
                await self.store_factory.write_meta(
                    tenant_id, REGISTRATION_META_NAME, registration.to_bytes()
                )
                await tenant.save_session(password)
            except BaseException:
                await tenant.close()
                raise
            registered[tenant_id] = registration
            slot = self._slots[tenant_id] = TenantSlot(tenant_id)
            await self._activate(slot, tenant, ())
        log.info("tenant %s registered as a relay", tenant_id)
        return True

    async def remove_registered(self, tenant_id: str) -> bool:
        """Lock and delete a registered tenant; False if ``tenant_id`` is not one."""
        registered = await self.registrations()
        if tenant_id not in registered:
            return False
        async with self._creation_lock(tenant_id):
            await self.lock(tenant_id)
            for db in await self.store_factory.list_databases(tenant_id):
                await self.store_factory.drop_database(tenant_id, db)
            del registered[tenant_id]
            self._slots.pop(tenant_id, None)
            path = self.base / tenant_id
            trash = self.base / f".removed-{tenant_id}-{uuid.uuid4().hex[:8]}"

            def remove() -> None:
                try:
                    os.rename(path, trash)
                except FileNotFoundError:
                    return
                shutil.rmtree(trash, ignore_errors=True)

            await asyncio.to_thread(remove)
        log.info("registered tenant %s removed", tenant_id)
        return True

    # -- unattended unlock -------------------------------------------------------------------
    def password_source(self, tenant_id: str, config: Config) -> Path | None:
        configured = config.tenant(tenant_id)
        if configured is not None:
            if not configured.auto_unlock:
                return None
            if configured.password_file is not None:
                return configured.password_file
            return credential_path(self._env, configured.credential_name)
        return credential_path(self._env, tenant_id)

    async def auto_unlock(self, config: Config) -> dict[str, str]:
        """Unlock locked tenants that have a password file or credential; outcome per tenant."""
        outcome: dict[str, str] = {}
        registered = await self.registrations()
        for wanted in config.tenants:
            if wanted.id not in self.known_ids():
                log.warning("configured tenant %s does not exist on this node yet", wanted.id)
        for tenant_id in self.known_ids():
            slot = self.slot(tenant_id)
            configured = config.tenant(tenant_id)
            databases = configured.databases if configured else ()
            if not slot.locked:
                for name in databases:  # a reload may have added databases to open
                    await self.open_db(tenant_id, name, create=True)
                continue
            registration = registered.get(tenant_id)
            source = self.password_source(tenant_id, config)
            if source is None and registration is None:
                continue
            try:
                if registration is not None:
                    password = registration.session_password
                else:
                    assert source is not None
                    password = await asyncio.to_thread(read_password_file, source)
                await self.unlock(tenant_id, password, databases)
                outcome[tenant_id] = "unlocked"
            except MindoodError as exc:
                log.error("could not unlock tenant %s from %s: %s", tenant_id, source, exc)
                outcome[tenant_id] = f"failed: {exc}"
        return outcome

    async def close(self) -> None:
        """Lock every tenant, then close every store (each writes its index snapshot)."""
        for tenant_id in list(self._slots):
            try:
                await self.lock(tenant_id)
            except Exception:
                log.exception("error while locking tenant %s", tenant_id)
        await self.store_factory.close()


__all__ = [
    "ADMIN_META_NAME",
    "IdentityStore",
    "Registration",
    "RegistrationConflictError",
    "TenantRegistry",
    "TenantSlot",
]
