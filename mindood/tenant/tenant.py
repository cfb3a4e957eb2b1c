"""``Tenant``: one user's view of a tenant: its databases, directory, keys and admin operations.

A tenant object belongs to one unlocked user (the device identity that signs every change it
makes) and one KeyBag (the symmetric keys it can read with). Application databases trust what
the directory says (:class:`DirectoryTrust`); the directory trusts only the administrator.

Admin operations (approving a join, revoking, groups, settings) take the admin identity and its
password per call: the admin's private key is unlocked for that call only, never kept.

CPU-heavy steps (PBKDF2, RSA) run in a worker thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, overload

from mindood.crypto.pem import load_ed25519_public_pem, load_rsa_public_pem, normalize_pem
from mindood.db import (
    AdminOnlyTrust,
    DBOptions,
    KeyBagKeys,
    MindooDB,
    Timestamp,
    TimeTravelDB,
    TrustPolicy,
    signer_for,
)
from mindood.errors import InvalidNameError, KeyNotFoundError, MindoodError, NotAdminError
from mindood.identity import PrivateUserId, PublicUserId, UnlockedUserId, unlock_async
from mindood.keybag import KeyBag
from mindood.storefactory import StoreFactory, check_component
from mindood.tenant.directory import (
    DEFAULT_KEY_ID,
    DIRECTORY_DB_ID,
    PUBLIC_INFOS_KEY_ID,
    Directory,
    SettingsFn,
)
from mindood.tenant.hashing import normalize_name
from mindood.tenant.joinrequest import JoinRequest
from mindood.tenant.joinresponse import (
    PASSWORD_VERSION,
    WRAPPED_VERSION,
    DeviceJoinBootstrap,
    JoinResponse,
    seal_for_device,
    seal_with_password,
    versions_by_key,
)
from mindood.tenant.purge import PurgeRecord, PurgeRegistry, PurgeRequest
from mindood.tenant.remote import ServerConnections
from mindood.tenant.session import SessionData, seal_session
from mindood.tenant.user_key_service import UserKeyService
from mindood.tenant.userdirectory_trust import UserDirectoryTrust
from mindood.tenant.userkeys import USER_DIRECTORY_DB_ID
from protocol.http.remote import HttpRemoteStore
from protocol.store_ops import StoreKind

log = logging.getLogger("mindood.tenant")

Format = Literal["uri", "object"]
#: Name under which :meth:`Tenant.save_session` stores the session in the store factory.
SESSION_META_NAME = "session"
DEFAULT_DEVICE_LABEL = "Joined device"
#: Keys a join response carries (see :meth:`Tenant.approve_join_request`).
JOIN_KEY_IDS = (PUBLIC_INFOS_KEY_ID, DEFAULT_KEY_ID)

AdminIdentity = PrivateUserId | UnlockedUserId
#: Told ``(db_name, doc_ids)`` when documents of any of the tenant's databases changed.
DbChangeListener = Callable[[str, set[str]], None]


def _noop() -> None:
    return None


def check_tenant_id(tenant_id: object) -> str:
    """Tenant ids name directories on disk and scope KeyBag ids: a path component, no ``:``."""
    return check_component(tenant_id, "tenant id")


class Tenant:
    """A tenant as seen by one user; build it with :class:`~mindood.tenant.TenantFactory`."""

    def __init__(
        self,
        *,
        tenant_id: str,
        admin_signing_public_key: str,
        admin_encryption_public_key: str,
        user: UnlockedUserId,
        key_bag: KeyBag,
        store_factory: StoreFactory,
        directory: Directory,
        db_options: DBOptions | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.admin_signing_public_key = admin_signing_public_key
        self.admin_encryption_public_key = admin_encryption_public_key
        self.user = user
        self.key_bag = key_bag
        self.store_factory = store_factory
        self._directory = directory
        self._db_options = db_options
        self._dbs: dict[str, MindooDB] = {DIRECTORY_DB_ID: directory.db}
        self._change_listeners: list[DbChangeListener] = []
        self._feed(DIRECTORY_DB_ID, directory.db)
        self._open_lock = asyncio.Lock()
        self._purges = PurgeRegistry(store_factory, tenant_id)
        self._purge_lock = asyncio.Lock()
        self._unhook = directory.add_refresh_hook(self._after_directory_refresh)
        self.user_keys = UserKeyService(
            tenant_id=tenant_id,
            user=user,
            key_bag=key_bag,
            directory=directory,
            open_db=self.open_db,
        )
        self._key_lock = asyncio.Lock()
        self._key_task: asyncio.Task[None] | None = None
        self._keys_dirty = False
        self._servers = ServerConnections(tenant_id, user)

    @classmethod
    async def open(
        cls,
        *,
        tenant_id: str,
        admin_signing_public_key: str,
        admin_encryption_public_key: str,
        user: UnlockedUserId,
        key_bag: KeyBag,
        store_factory: StoreFactory,
        db_options: DBOptions | None = None,
    ) -> Tenant:
        """Open the directory (reading everything already in its store) and build the tenant."""
        check_tenant_id(tenant_id)
        load_ed25519_public_pem(admin_signing_public_key)
        load_rsa_public_pem(admin_encryption_public_key)
        keys = KeyBagKeys(key_bag, tenant_id)
        db = MindooDB(
            tenant_id=tenant_id,
            db_id=DIRECTORY_DB_ID,
            store=await store_factory.open_store(tenant_id, DIRECTORY_DB_ID, "docs"),
            attachment_store=await store_factory.open_store(
                tenant_id, DIRECTORY_DB_ID, "attachments"
            ),
            signer=signer_for(user),
            keys=keys,
            trust=AdminOnlyTrust(admin_signing_public_key),
            options=db_options,
        )
        directory = Directory(db=db, keys=keys, admin_signing_public_key=admin_signing_public_key)
        await directory.refresh()
        tenant = cls(
            tenant_id=tenant_id,
            admin_signing_public_key=admin_signing_public_key,
            admin_encryption_public_key=admin_encryption_public_key,
            user=user,
            key_bag=key_bag,
            store_factory=store_factory,
            directory=directory,
            db_options=db_options,
        )
        await tenant.apply_pending_purges()
        await tenant.reconcile_keys()
        return tenant

    # -- databases ---------------------------------------------------------------------------
    @overload
    async def open_db(self, name: str, *, time_travel: None = None) -> MindooDB: ...

    @overload
    async def open_db(self, name: str, *, time_travel: Timestamp) -> TimeTravelDB: ...

    async def open_db(
        self, name: str, *, time_travel: Timestamp | None = None
    ) -> MindooDB | TimeTravelDB:
        """The database ``name`` (one handle per name; ``"directory"`` is the directory).

        With ``time_travel`` the answer is a read-only view of it as of that timestamp.
        """
        db = self._dbs.get(name)
        if db is None:
            check_component(name, "database name")
            async with self._open_lock:
                db = self._dbs.get(name)
                if db is None:
                    db = MindooDB(
                        tenant_id=self.tenant_id,
                        db_id=name,
                        store=await self.store_factory.open_store(self.tenant_id, name, "docs"),
                        attachment_store=await self.store_factory.open_store(
                            self.tenant_id, name, "attachments"
                        ),
                        signer=signer_for(self.user),
                        keys=KeyBagKeys(self.key_bag, self.tenant_id),
                        trust=self._trust_for(name),
                        options=self._db_options,
                    )
                    db.refuse_documents(self._purges.purged(name), "purged on request")
                    self._dbs[name] = db
                    self._feed(name, db)
        if time_travel is not None:
            return db.at_timestamp(time_travel)
        return db

    def _trust_for(self, name: str) -> TrustPolicy:
        if name == USER_DIRECTORY_DB_ID:
            return UserDirectoryTrust(
                self._directory.trust, self._directory.index, self.admin_signing_public_key
            )
        return self._directory.trust

    def on_db_change(self, listener: DbChangeListener) -> Callable[[], None]:
        """Hear ``(db_name, doc_ids)`` from every database of this tenant, opened now or later.

        Whoever opened a database (an app, sync, a purge), its changes reach every listener:
        a live event must not depend on which caller happened to open the database first.
        Returns an unsubscribe.
        """
        self._change_listeners.append(listener)
        return lambda: self._change_listeners.remove(listener)

    def _feed(self, name: str, db: MindooDB) -> None:
        db.on_change(lambda doc_ids: self._db_changed(name, doc_ids))

    def _db_changed(self, name: str, doc_ids: set[str]) -> None:
        if name == USER_DIRECTORY_DB_ID:
            self._schedule_key_reconcile()
        for listener in list(self._change_listeners):
            try:
                listener(name, set(doc_ids))
            except Exception:  # one listener's bug must not silence the others
                log.exception("tenant change listener failed", extra={"db": name})

    async def drop_db(self, name: str) -> bool:
        """Forget the handle of ``name`` and delete its stores; False if it had none.

        The caller stops everything that still writes to it (sync) first.
        """
        if name == DIRECTORY_DB_ID:
            raise InvalidNameError("the directory database cannot be dropped")
        check_component(name, "database name")
        async with self._open_lock:
            self._dbs.pop(name, None)
            return await self.store_factory.drop_database(self.tenant_id, name)

    def get_directory(self) -> Directory:
        return self._directory

    async def refresh_directory(self, *, full: bool = False) -> bool:
        """Take in directory entries that reached its store; True if trust changed.

        Pass ``full=True`` after importing a key, to re-read documents it now opens. Keys the
        directory delivers (key distributions) are imported before this returns.
        """
        changed = await self._directory.refresh(full=full)
        await self.reconcile_keys()
        return changed

    # -- key distribution --------------------------------------------------------------------
    async def reconcile_keys(self) -> list[str]:
        """Publish this device's User-Key wraps and import the keys the directory delivers.

        Runs on open and after every directory or ``userdirectory`` change; returns the key ids
        that changed. Newly opened keys make documents readable: every open database (and the
        directory) is told so, as after a key import.
        """
        async with self._key_lock:
            try:
                changed = await self.user_keys.reconcile()
            except MindoodError as exc:
                log.warning("key distribution could not be applied: %s", exc)
                return []
        if changed:
            await self._directory.refresh(full=True)
            for name, db in list(self._dbs.items()):
                if name != DIRECTORY_DB_ID:
                    ids = set(await db.get_all_document_ids())
                    if ids:
                        self._db_changed(name, ids)
        return changed

    def _schedule_key_reconcile(self) -> None:
        """Reconcile soon; a change during a running pass earns one more pass after it."""
        self._keys_dirty = True
        if self._key_task is not None and not self._key_task.done():
            return
        try:
            self._key_task = asyncio.get_running_loop().create_task(
                self._reconcile_while_dirty(), name=f"mindood-keys-{self.tenant_id}"
            )
        except RuntimeError:  # no loop (closing): the next open reconciles
            self._key_task = None

    async def _reconcile_while_dirty(self) -> None:
        # Each pass can write at most this device's wraps, which asks for one more (idle) pass.
        for _ in range(8):
            if not self._keys_dirty:
                return
            self._keys_dirty = False
            await self.reconcile_keys()

    async def connect_to_server(
        self,
        url: str,
        db: str,
        kind: StoreKind | str = StoreKind.DOCS,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> HttpRemoteStore:
        """Database ``db`` (store ``kind``) of the MindooDB HTTP sync server at ``url``, as a
        store: ``db.pull_changes_from(remote)`` and ``db.push_changes_to(remote)`` take it, as
        the reference's ``connectToServer``. Authenticates on first use with this device's
        signing key; stores of one server share one token. What a pull receives is admitted
        by the database like anything from a peer. Closed with the tenant.
        """
        return self._servers.store(url, db, kind, ssl_context=ssl_context)

    async def close(self) -> None:
        """Stop background directory work and close server connections. Stores belong to the
        factory and stay open."""
        await self._servers.aclose()
        task, self._key_task = self._key_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._unhook()
        self._unhook = _noop
        await self._directory.aclose()

    # -- coordinated purge (GDPR) ------------------------------------------------------------
    async def publish_purge_request(
        self,
        db_id: str,
        doc_ids: Sequence[str],
        *,
        reason: str = "",
        admin_signing_key: AdminIdentity,
        admin_password: str | None = None,
    ) -> PurgeRequest:
        """Ask every node that syncs the directory to erase these documents' history.

        This node applies it at once (the directory refresh after the write runs the purge);
        others when their directory next syncs. See ``mindood.tenant.purge``.
        """
        admin = await self._unlock_admin(admin_signing_key, admin_password)
        return await self._directory.publish_purge_request(db_id, doc_ids, reason, admin)

    def get_requested_purges(self) -> list[PurgeRequest]:
        return self._directory.get_requested_purges()

    def get_purge_records(self) -> list[PurgeRecord]:
        """What this node purged, request by request (persisted with the tenant's metadata)."""
        return self._purges.records()

    def get_purged_doc_ids(self, db_id: str) -> frozenset[str]:
        return self._purges.purged(db_id)

    async def apply_pending_purges(self) -> list[PurgeRecord]:
        """Carry out every purge request not yet processed here; returns what was done.

        Runs by itself after each directory refresh; calling it again is harmless.
        """
        async with self._purge_lock:
            await self._purges.ensure_loaded()
            done: list[PurgeRecord] = []
            for request in self._directory.get_requested_purges():
                if self._purges.processed(request.doc_id):
                    continue
                record = await self._apply_purge(request)
                self._purges.record(record)
                done.append(record)
            if done:
                await self._purges.save()
            # Databases opened before the registry was loaded learn their refusals now.
            for name, db in self._dbs.items():
                db.refuse_documents(self._purges.purged(name), "purged on request")
            return done

    async def _apply_purge(self, request: PurgeRequest) -> PurgeRecord:
        now = time.time_ns() // 1_000_000
        try:
            db = await self.open_db(request.db_id)
        except InvalidNameError as exc:
            log.warning("purge request names an invalid database: %s", exc)
            return PurgeRecord(
                request.doc_id, request.request_id, request.db_id, request.doc_ids, 0, now, str(exc)
            )
        removed = await db.purge_documents(request.doc_ids, f"request {request.request_id}")
        log.info(
            "applied purge request",
            extra={"request": request.request_id, "db": request.db_id, "entries": removed},
        )
        return PurgeRecord(
            request.doc_id, request.request_id, request.db_id, request.doc_ids, removed, now
        )

    async def _after_directory_refresh(self) -> None:
        await self.apply_pending_purges()
        self._schedule_key_reconcile()

    # -- admin identity ----------------------------------------------------------------------
    async def _unlock_admin(self, admin: AdminIdentity, password: str | None) -> UnlockedUserId:
        private = admin.private if isinstance(admin, UnlockedUserId) else admin
        if normalize_pem(private.signing_public_key) != normalize_pem(
            self.admin_signing_public_key
        ):
            raise NotAdminError("this identity is not the tenant's administrator")
        if isinstance(admin, UnlockedUserId):
            return admin
        if password is None:
            raise NotAdminError("the admin password is required to unlock the admin identity")
        # Admin writes only sign: the encryption key stays sealed (no PBKDF2, no RSA load).
        return await unlock_async(admin, password, signing_only=True)

    # -- users -------------------------------------------------------------------------------
    async def register_user(
        self,
        user: PublicUserId,
        *,
        label: str,
        admin_signing_key: AdminIdentity,
        admin_password: str | None = None,
    ) -> str:
        """Grant a device access (admin-signed); returns the grant's document id."""
        admin = await self._unlock_admin(admin_signing_key, admin_password)
        return await self._directory.register_user(user, label, admin)

    async def revoke_user(
        self,
        username: str,
        *,
        admin_signing_key: AdminIdentity,
        admin_password: str | None = None,
        signing_keys: Iterable[str] | None = None,
    ) -> int:
        """Revoke a user's devices (all, or those signing with ``signing_keys``)."""
        admin = await self._unlock_admin(admin_signing_key, admin_password)
        return await self._directory.revoke_user(username, admin, signing_keys=signing_keys)

    @overload
    async def approve_join_request(
        self,
        request: str | dict[str, Any] | JoinRequest,
        *,
        admin_signing_key: AdminIdentity,
        admin_password: str | None = ...,
        share_password: str | None = ...,
        label: str | None = ...,
        username: str | None = ...,
        server_url: str | None = ...,
        tenant_label: str | None = ...,
        admin_username: str | None = ...,
        relay: bool = ...,
        format: Literal["uri"] = ...,
    ) -> str: ...

    @overload
    async def approve_join_request(
        self,
        request: str | dict[str, Any] | JoinRequest,
        *,
        admin_signing_key: AdminIdentity,
        admin_password: str | None = ...,
        share_password: str | None = ...,
        label: str | None = ...,
        username: str | None = ...,
        server_url: str | None = ...,
        tenant_label: str | None = ...,
        admin_username: str | None = ...,
        relay: bool = ...,
        format: Literal["object"],
    ) -> dict[str, Any]: ...

    async def approve_join_request(
        self,
        request: str | dict[str, Any] | JoinRequest,
        *,
        admin_signing_key: AdminIdentity,
        admin_password: str | None = None,
        share_password: str | None = None,
        label: str | None = None,
        username: str | None = None,
        server_url: str | None = None,
        tenant_label: str | None = None,
        admin_username: str | None = None,
        relay: bool = False,
        format: Format = "uri",
    ) -> str | dict[str, Any]:
        """Register the requesting device and answer with the tenant's keys sealed for it.

        As the reference: the answer carries ``$publicinfos`` only; ``default`` reaches the
        device through ``acl_keydistribution_default``, wrapped to the person's User-Key (the
        request's ``userPublicKey`` is published as their pending ``userkey_*`` document first).
        When the approver is the same person, their User-Key is also wrapped to the new device,
        which can then open it without holding it in its identity.

        A request without any User-Key (an identity of a mindood before User-Keys, whose person
        has none published) is still answered, with ``default`` in the response itself, as
        this port did before; the reference would refuse it.

        Without ``share_password`` the keys in the answer are RSA-wrapped to the request's
        encryption key (v3: only that device can open them). With one, it is the legacy v2
        response sealed with the password (to be passed on separately).

        ``relay=True`` registers a relay or edge-cache node: nothing is distributed to it, and
        its response carries only ``$publicinfos``, enough to check trust and carry entries.

        ``tenant_label`` defaults to the one in ``tenantsetup``. The device's grant keeps its
        join bootstrap (``joinResponseWrapped``: username, tenant label, admin username sealed
        to the device), from which the reference's device discovery rebuilds a join.
        """
        if format not in ("uri", "object"):
            raise InvalidNameError(f"format must be 'uri' or 'object', got {format!r}")
        parsed = JoinRequest.parse(request)
        public = parsed.public_user(username)
        if not self.key_bag.versions(self.tenant_id, PUBLIC_INFOS_KEY_ID):
            raise KeyNotFoundError("this tenant object holds no '$publicinfos' key to share")
        admin = await self._unlock_admin(admin_signing_key, admin_password)
        device_label = label or parsed.label or DEFAULT_DEVICE_LABEL
        if tenant_label is None:
            tenant_label = self._directory.get_tenant_label()
        bootstrap = DeviceJoinBootstrap(public.username, tenant_label, admin_username)
        await self._directory.register_user(
            public,
            device_label,
            admin,
            join_bootstrap=await asyncio.to_thread(bootstrap.seal, parsed.encryption_public_key),
        )
        if not relay:
            await self._distribute_to_joiner(admin, parsed, public.username)
        if not relay and normalize_name(public.username) == normalize_name(self.user.username):
            await self.user_keys.wrap_for_device(parsed.encryption_public_key, device_label)
        # ``default`` also travels in the response (the reference's joiner imports every key it
        # finds there), so a member can read before its first directory sync delivers it.
        key_ids = (PUBLIC_INFOS_KEY_ID,) if relay else JOIN_KEY_IDS
        keys = versions_by_key(key_ids, lambda k: self.key_bag.versions(self.tenant_id, k))
        if share_password is not None:
            sealed = await asyncio.to_thread(
                seal_with_password, self.tenant_id, keys, share_password
            )
            version = PASSWORD_VERSION
        else:
            sealed = await asyncio.to_thread(seal_for_device, keys, parsed.encryption_public_key)
            version = WRAPPED_VERSION
        response = JoinResponse(
            version=version,
            tenant_id=self.tenant_id,
            admin_signing_public_key=self.admin_signing_public_key,
            admin_encryption_public_key=self.admin_encryption_public_key,
            username=public.username,
            doc_keys=sealed,
            server_url=server_url,
            admin_username=admin_username,
            tenant_label=tenant_label,
        )
        return response.to_uri() if format == "uri" else response.to_object()

    async def _distribute_to_joiner(
        self, admin: UnlockedUserId, request: JoinRequest, username: str
    ) -> bool:
        """Publish the joiner's User-Key if new and distribute ``default`` to it.

        False when the person has no User-Key at all (the response must then carry
        ``default`` itself).
        """
        override = None
        if request.user_public_key:
            published = await self.user_keys.create_pending(
                admin, username, request.user_public_key
            )
            if published is not None and normalize_pem(published) == normalize_pem(
                request.user_public_key
            ):
                override = request.user_public_key
        elif await self.user_keys.published_user_key(username) is None:
            log.info(
                "join request without a User-Key; default travels in the response",
                extra={"tenant": self.tenant_id},
            )
            return False
        return await self.user_keys.distribute(
            admin, username, DEFAULT_KEY_ID, public_key_override=override
        )

    # -- keys --------------------------------------------------------------------------------
    async def create_doc_encryption_key(self, key_id: str, password: str) -> dict[str, Any]:
        """Create a named key (spec §5) and return it sealed under ``password`` for sharing.

        Recipients import it with ``key_bag.decrypt_and_import_key(tenant_id, key_id, exported,
        password)``. Calling it again for an existing id adds a newer version (rotation).
        """
        if not isinstance(key_id, str) or not key_id or key_id.startswith("$"):
            raise InvalidNameError("named key ids are non-empty and may not start with '$'")
        self.key_bag.create_and_store_symmetric_key(self.tenant_id, key_id)
        exported = await asyncio.to_thread(
            self.key_bag.encrypt_and_export_key, self.tenant_id, key_id, password
        )
        return exported.to_json()

    # -- groups ------------------------------------------------------------------------------
    async def create_group(
        self,
        name: str,
        members: Sequence[str],
        *,
        admin_signing_key: AdminIdentity,
        admin_password: str | None = None,
    ) -> None:
        admin = await self._unlock_admin(admin_signing_key, admin_password)
        await self._directory.create_group(name, members, admin)

    async def add_users_to_group(
        self,
        name: str,
        members: Sequence[str],
        *,
        admin_signing_key: AdminIdentity,
        admin_password: str | None = None,
    ) -> None:
        admin = await self._unlock_admin(admin_signing_key, admin_password)
        await self._directory.add_users_to_group(name, members, admin)

    async def remove_users_from_group(
        self,
        name: str,
        members: Sequence[str],
        *,
        admin_signing_key: AdminIdentity,
        admin_password: str | None = None,
    ) -> None:
        admin = await self._unlock_admin(admin_signing_key, admin_password)
        await self._directory.remove_users_from_group(name, members, admin)

    async def delete_group(
        self, name: str, *, admin_signing_key: AdminIdentity, admin_password: str | None = None
    ) -> None:
        admin = await self._unlock_admin(admin_signing_key, admin_password)
        await self._directory.delete_group(name, admin)

    # -- settings ----------------------------------------------------------------------------
    def get_tenant_settings(self) -> dict[str, Any]:
        return self._directory.get_tenant_settings()

    def get_db_settings(self, db_id: str) -> dict[str, Any]:
        return self._directory.get_db_settings(db_id)

    async def change_tenant_settings(
        self, fn: SettingsFn, *, admin_signing_key: AdminIdentity, admin_password: str | None = None
    ) -> None:
        admin = await self._unlock_admin(admin_signing_key, admin_password)
        await self._directory.change_tenant_settings(fn, admin)

    async def change_db_settings(
        self,
        db_id: str,
        fn: SettingsFn,
        *,
        admin_signing_key: AdminIdentity,
        admin_password: str | None = None,
    ) -> None:
        admin = await self._unlock_admin(admin_signing_key, admin_password)
        await self._directory.change_db_settings(db_id, fn, admin)

    # -- sessions ----------------------------------------------------------------------------
    def session_data(self) -> SessionData:
        """What :meth:`export_session` seals: identity, this tenant's keys, public facts."""
        keys = {
            key_id: self.key_bag.versions(self.tenant_id, key_id)
            for key_id in self.key_bag.list_keys(self.tenant_id)
        }
        return SessionData(
            tenant_id=self.tenant_id,
            admin_signing_public_key=self.admin_signing_public_key,
            admin_encryption_public_key=self.admin_encryption_public_key,
            user=self.user.private,
            keys=keys,
        )

    async def export_session(self, password: str) -> bytes:
        """One sealed blob to reopen this tenant with :meth:`TenantFactory.restore_session`.

        ``password`` must be the user's own password (checked: ``WrongPasswordError``), so the
        restored identity and KeyBag open with the same single secret.
        """
        # One derivation proves the password (the signing key opens); no RSA key is loaded.
        await unlock_async(self.user.private, password, signing_only=True)
        return await asyncio.to_thread(seal_session, self.session_data(), password)

    async def save_session(self, password: str) -> None:
        """Export the session into the store factory's metadata (see ``load_session``)."""
        blob = await self.export_session(password)
        await self.store_factory.write_meta(self.tenant_id, SESSION_META_NAME, blob)
