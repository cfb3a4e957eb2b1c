"""``TenantFactory``: create identities and tenants, join tenants, restore sessions (§2, §7).

The factory owns nothing but a store factory (where tenants keep their entries) and database
options; every tenant it builds shares that store factory, so two tenant objects built by one
factory on one in-memory store factory see the same stores, like two devices on a shared server.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal, overload

from mindood.db import DBOptions
from mindood.errors import InvalidNameError
from mindood.identity import (
    PrivateUserId,
    PublicUserId,
    UnlockedUserId,
    create_user_id,
    ensure_user_key_pair_with_key,
    to_public_user_id,
    unlock_async,
)
from mindood.keybag import KeyBag
from mindood.storefactory import StoreFactory
from mindood.tenant.directory import DEFAULT_KEY_ID, PUBLIC_INFOS_KEY_ID
from mindood.tenant.joinrequest import JoinRequest
from mindood.tenant.joinresponse import JoinResponse, open_keys
from mindood.tenant.session import SessionData, open_session
from mindood.tenant.tenant import SESSION_META_NAME, Format, Tenant, check_tenant_id

FIRST_DEVICE_LABEL = "First device"


@dataclass(frozen=True, slots=True)
class CreatedTenant:
    """What :meth:`TenantFactory.create_tenant` made. Store both identities and the KeyBag."""

    tenant: Tenant
    admin_user: PrivateUserId
    app_user: PrivateUserId
    key_bag: KeyBag


@dataclass(frozen=True, slots=True)
class JoinedTenant:
    """A tenant opened from a join response, and the KeyBag now holding its keys."""

    tenant: Tenant
    key_bag: KeyBag


class TenantFactory:
    """Entry point of the library API: ``TenantFactory(InMemoryStoreFactory())``."""

    def __init__(self, store_factory: StoreFactory, *, db_options: DBOptions | None = None) -> None:
        self.store_factory = store_factory
        self._db_options = db_options

    # -- identities --------------------------------------------------------------------------
    async def create_user_id(self, username: str, password: str) -> PrivateUserId:
        """A new identity (Ed25519, RSA-3072 device key and User-Key) sealed under ``password``.

        Runs off-loop. The User-Key is what key distributions wrap ``default`` to, so every
        identity this factory makes carries one.
        """
        return await asyncio.to_thread(create_user_id, username, password, with_user_key=True)

    @staticmethod
    def to_public_user_id(user: PrivateUserId) -> PublicUserId:
        return to_public_user_id(user)

    @overload
    @staticmethod
    def create_join_request(
        user: PrivateUserId | PublicUserId, *, format: Literal["uri"] = ..., label: str | None = ...
    ) -> str: ...

    @overload
    @staticmethod
    def create_join_request(
        user: PrivateUserId | PublicUserId, *, format: Literal["object"], label: str | None = ...
    ) -> dict[str, Any]: ...

    @staticmethod
    def create_join_request(
        user: PrivateUserId | PublicUserId, *, format: Format = "uri", label: str | None = None
    ) -> str | dict[str, Any]:
        """The request a new device sends to the admin: public keys only, no secrets."""
        if isinstance(user, PrivateUserId):
            request = JoinRequest.for_identity(user, label=label)
        else:
            request = JoinRequest.for_user(user, label=label)
        if format == "uri":
            return request.to_uri()
        if format == "object":
            return request.to_object()
        raise InvalidNameError(f"format must be 'uri' or 'object', got {format!r}")

    # -- tenants -----------------------------------------------------------------------------
    async def create_tenant(
        self,
        *,
        tenant_id: str,
        admin_name: str,
        admin_password: str,
        user_name: str,
        user_password: str,
        admin_user: PrivateUserId | None = None,
        app_user: PrivateUserId | None = None,
        label: str = FIRST_DEVICE_LABEL,
        tenant_label: str | None = None,
    ) -> CreatedTenant:
        """The five steps of spec §7 "Creating a Tenant".

        1-2. admin and user identities (pass ``admin_user`` / ``app_user`` to reuse existing
             ones, e.g. from a key ceremony; they must open with the given passwords);
        3. a KeyBag with fresh ``default`` and ``$publicinfos`` AES-256 keys;
        4. the tenant opened with the admin's public keys and the user's identity;
        5. the user registered in the admin-signed directory;

        and then what the reference's createTenant adds: the user's User-Key (made if the
        identity has none) published in ``userdirectory`` with a wrap for this device,
        ``default`` distributed to it (``acl_keydistribution_default``), the default policy
        (metadata signatures required from now) and ``tenantsetup``.
        """
        check_tenant_id(tenant_id)
        admin_task = self._identity(admin_user, admin_name, admin_password)
        user_task = self._identity(app_user, user_name, user_password)
        admin_private, user_private = await asyncio.gather(admin_task, user_task)
        # The person's User-Key receives ``default`` (acl_keydistribution_default).
        user_private, new_user_key = await asyncio.to_thread(
            ensure_user_key_pair_with_key, user_private, user_password
        )
        # Each sealed key needs its own PBKDF2 (its own salt) and each RSA key one load: all
        # of them run once, concurrently; the admin's writes only sign, so only that key opens.
        admin, user, key_bag = await asyncio.gather(
            unlock_async(admin_private, admin_password, signing_only=True),
            unlock_async(user_private, user_password, user_key=new_user_key),
            asyncio.to_thread(KeyBag.for_user, user_private, user_password),
        )
        key_bag.create_and_store_symmetric_key(tenant_id, DEFAULT_KEY_ID)
        key_bag.create_and_store_symmetric_key(tenant_id, PUBLIC_INFOS_KEY_ID)
        tenant = await self._open(
            tenant_id,
            admin_private.signing_public_key,
            admin_private.encryption_public_key,
            user,
            key_bag,
        )
        await tenant.register_user(user.public, label=label, admin_signing_key=admin)
        await tenant.user_keys.publish_own(label, allow_create=True)
        await tenant.user_keys.distribute(admin, user.username, DEFAULT_KEY_ID)
        directory = tenant.get_directory()
        await directory.set_default_policy(admin, required_since=time.time_ns() // 1_000_000)
        await directory.add_tenant_administrator(admin, label=tenant_label)
        return CreatedTenant(tenant, admin_private, user_private, key_bag)

    async def _identity(
        self, given: PrivateUserId | None, name: str, password: str
    ) -> PrivateUserId:
        if given is not None:
            return given
        return await self.create_user_id(name, password)

    async def open_tenant(
        self,
        tenant_id: str,
        admin_signing_public_key: str,
        admin_encryption_public_key: str,
        user: PrivateUserId | UnlockedUserId,
        password: str | None,
        key_bag: KeyBag,
    ) -> Tenant:
        """Open a tenant for ``user`` (unlocked with ``password`` unless already unlocked)."""
        if isinstance(user, PrivateUserId):
            if password is None:
                raise InvalidNameError("a password is required to unlock the user")
            unlocked = await unlock_async(user, password)
        else:
            unlocked = user
        return await self._open(
            tenant_id, admin_signing_public_key, admin_encryption_public_key, unlocked, key_bag
        )

    async def _open(
        self,
        tenant_id: str,
        admin_signing_public_key: str,
        admin_encryption_public_key: str,
        user: UnlockedUserId,
        key_bag: KeyBag,
    ) -> Tenant:
        return await Tenant.open(
            tenant_id=tenant_id,
            admin_signing_public_key=admin_signing_public_key,
            admin_encryption_public_key=admin_encryption_public_key,
            user=user,
            key_bag=key_bag,
            store_factory=self.store_factory,
            db_options=self._db_options,
        )

    async def join_tenant(
        self,
        response: str | dict[str, Any] | JoinResponse,
        *,
        user: PrivateUserId,
        password: str,
        share_password: str | None = None,
        key_bag: KeyBag | None = None,
    ) -> JoinedTenant:
        """Open a tenant from an admin's join response.

        Errors: ``InvalidUriError`` (and subclasses) for a malformed response,
        ``WrongPasswordError`` for a wrong user password, ``WrongSharePasswordError`` /
        ``SharePasswordRequiredError`` for a v2 response, ``JoinResponseDeviceMismatchError``
        when a v3 response was made for another device. Nothing is imported unless every key
        opens.
        """
        parsed = JoinResponse.parse(response)
        check_tenant_id(parsed.tenant_id)
        if key_bag is None:
            unlocked, bag = await asyncio.gather(
                unlock_async(user, password),
                asyncio.to_thread(KeyBag.for_user, user, password),
            )
        else:
            unlocked, bag = await unlock_async(user, password), key_bag
        opened = await asyncio.to_thread(open_keys, parsed, unlocked, share_password)
        for key in reversed(opened):  # oldest first, so equal createdAt keeps the newest on top
            bag.set(parsed.tenant_id, key.key_id, key.key, key.created_at)
        tenant = await self._open(
            parsed.tenant_id,
            parsed.admin_signing_public_key,
            parsed.admin_encryption_public_key,
            unlocked,
            bag,
        )
        return JoinedTenant(tenant, bag)

    # -- sessions ----------------------------------------------------------------------------
    async def restore_session(self, blob: bytes, password: str) -> Tenant:
        """Reopen a tenant from :meth:`Tenant.export_session` output on this factory's stores.

        ``WrongPasswordError`` for a wrong password (or an altered blob), ``SessionFormatError``
        for anything that is not a session.
        """
        data = await asyncio.to_thread(open_session, blob, password)
        return await self._open_session(data, password)

    async def load_session(self, tenant_id: str, password: str) -> Tenant | None:
        """Restore the session :meth:`Tenant.save_session` stored; None if there is none."""
        blob = await self.store_factory.read_meta(tenant_id, SESSION_META_NAME)
        if blob is None:
            return None
        return await self.restore_session(blob, password)

    async def _open_session(self, data: SessionData, password: str) -> Tenant:
        user, bag = await asyncio.gather(
            unlock_async(data.user, password),
            asyncio.to_thread(KeyBag.for_user, data.user, password),
        )
        for key_id, versions in data.keys.items():
            for version in reversed(versions):
                bag.set(data.tenant_id, key_id, version.key, version.created_at)
        return await self._open(
            data.tenant_id,
            data.admin_signing_public_key,
            data.admin_encryption_public_key,
            user,
            bag,
        )
