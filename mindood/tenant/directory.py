"""The Directory: the tenant's admin-signed registry of users, groups and settings (§1, §6).

It lives in the database named ``"directory"``, opened with ``AdminOnlyTrust``: only entries
signed by the administrator's key count. Reading needs the ``$publicinfos`` key (grants and
groups) and, for names and settings, the ``default`` key; a keyless relay holding only
``$publicinfos`` still builds the full trust picture, and simply skips what it cannot decrypt.

Writes are admin operations: they take the admin identity unlocked, verify it is this tenant's
administrator, and write through a second ``MindooDB`` handle on the same store whose signer is
the admin key. The unlocked admin key lives only for the duration of the call. Afterwards the
regular handle takes the new entries in and the index and trust are refreshed.

Documents with deterministic ids (grants: ``grant_<v3 hash>``, settings) let two admin devices
working offline converge on one document per user; groups use fresh ids and are merged by name
when read, as the reference does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from mindood.crypto import decrypt_with_any, encrypt_payload
from mindood.crypto._codec import b64decode, b64encode, dumps_json, loads_json
from mindood.crypto.pem import normalize_pem
from mindood.db import KeyProvider, MindooDB, MindooDoc, signer_for
from mindood.errors import (
    DatabaseError,
    DecryptionError,
    DocumentError,
    DocumentNotFoundError,
    GroupNotFoundError,
    InvalidNameError,
    KeyFormatError,
    KeyNotFoundError,
    NotAdminError,
    UserNotFoundError,
)
from mindood.identity import PublicUserId, UnlockedUserId
from mindood.tenant import acl_docs as acl
from mindood.tenant import grants as grant_ops
from mindood.tenant import groups as group_ops
from mindood.tenant import keydistribution as kd
from mindood.tenant.directory_index import (
    DB_SETTINGS_FORM,
    TENANT_SETTINGS_DOC_ID,
    TENANT_SETTINGS_FORM,
    DirectoryIndex,
    db_settings_doc_id,
    parse_record,
)
from mindood.tenant.grants import KeyPair
from mindood.tenant.hashing import normalize_name, username_hash, username_hash_candidates
from mindood.tenant.purge import PurgeRequest, check_request, new_purge_data, purge_doc_id
from mindood.tenant.trust import DirectoryTrust, Verdict
from store.ids import generate_object_id

log = logging.getLogger("mindood.tenant.directory")

DIRECTORY_DB_ID = "directory"
PUBLIC_INFOS_KEY_ID = "$publicinfos"
DEFAULT_KEY_ID = "default"
MAX_LABEL_CHARS = 256

SettingsFn = Callable[[MindooDoc], Any | Awaitable[Any]]
#: Called after every refresh (e.g. the tenant applying purge requests that just arrived).
RefreshHook = Callable[[], Awaitable[None]]


def _noop() -> None:
    return None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Directory:
    """Users, groups and settings of one tenant; also the source of its :class:`DirectoryTrust`."""

    def __init__(
        self,
        *,
        db: MindooDB,
        keys: KeyProvider,
        admin_signing_public_key: str,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self._db = db
        self._keys = keys
        self._admin_pem = admin_signing_public_key
        self._clock = clock
        self.tenant_id = db.tenant_id
        self.trust = DirectoryTrust(admin_signing_public_key)
        self._index = DirectoryIndex(db.tenant_id)
        self._dirty: set[str] = set()
        self._loaded = False
        self._lock = asyncio.Lock()
        self._follow: asyncio.Task[None] | None = None
        self._syncing = False
        self._hooks: list[RefreshHook] = []
        self._unsubscribe = db.on_change(self._on_change)

    @property
    def db(self) -> MindooDB:
        """The directory database, as this tenant's user sees it."""
        return self._db

    @property
    def index(self) -> DirectoryIndex:
        return self._index

    async def aclose(self) -> None:
        """Stop following the database's changes (idempotent)."""
        self._unsubscribe()
        self._unsubscribe = _noop
        task, self._follow = self._follow, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_change(self, doc_ids: set[str]) -> None:
        """Mark documents for re-reading and schedule one refresh (entries pulled by anyone).

        Callers that need the new state at once await :meth:`refresh` themselves; this keeps
        trust current when entries arrive through a path that does not know about the directory.
        """
        self._dirty.update(doc_ids)
        if not self._loaded or self._syncing:
            return
        if self._follow is not None and not self._follow.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._follow = loop.create_task(self._refresh_quietly(), name="directory-refresh")

    def add_refresh_hook(self, hook: RefreshHook) -> Callable[[], None]:
        """Run ``hook`` after every refresh, however it was triggered; returns an unsubscribe.

        Hooks run outside the directory's lock (they may read the directory); one that raises
        is logged and does not stop the others.
        """
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook)

    async def _run_hooks(self) -> None:
        for hook in list(self._hooks):
            try:
                await hook()
            except Exception:
                log.exception("directory refresh hook failed")

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh()
        except Exception:  # a damaged document must not kill the follower; the next change retries
            log.exception("directory refresh failed")

    # -- keeping up to date ------------------------------------------------------------------
    async def refresh(self, *, full: bool = False) -> bool:
        """Take in new directory entries and re-read changed documents.

        ``full`` re-reads every document, e.g. after a key arrived that opens documents that
        were unreadable so far. Returns True when the trust picture changed (``generation``
        moved on).
        """
        async with self._lock:
            if full:
                self._loaded = False
            self._syncing = True  # what this sync touches is read below: no follower needed
            try:
                await self._db.sync_store_changes()
            finally:
                self._syncing = False
            if not self._loaded:
                self._dirty.clear()
                ids = await self._db.get_all_document_ids()
                for doc_id in ids:
                    await self._reload(doc_id)
                self._index.retain(ids)
                self._loaded = True
            else:
                dirty, self._dirty = self._dirty, set()
                for doc_id in sorted(dirty):
                    await self._reload(doc_id)
            changed = self.trust.update(self._index.key_states())
            policy = self._index.default_policy()
            if policy is not None:
                self.trust.set_signature_floor(policy.require_metadata_signature_since)
        await self._run_hooks()
        return changed

    async def _reload(self, doc_id: str) -> None:
        try:
            doc = await self._db.get_document(doc_id)
        except DocumentNotFoundError:
            self._index.put(doc_id, None)
            return
        except KeyNotFoundError:
            # Encrypted with a key this member lacks (settings on a relay): nothing to index.
            self._index.put(doc_id, None)
            return
        except (DatabaseError, DocumentError) as exc:
            # One damaged document must not blind the whole directory.
            log.warning("skipping unreadable directory document %s: %s", doc_id, exc)
            self._index.put(doc_id, None)
            return
        if doc.is_deleted():
            self._index.put(doc_id, None)
            return
        self._index.put(doc_id, parse_record(doc_id, doc.get_data(), doc.get_last_modified()))

    # -- admin handle ------------------------------------------------------------------------
    def _check_admin(self, admin: UnlockedUserId) -> None:
        if normalize_pem(admin.private.signing_public_key) != normalize_pem(self._admin_pem):
            raise NotAdminError("this identity is not the tenant's administrator")

    @asynccontextmanager
    async def _as_admin(self, admin: UnlockedUserId) -> AsyncIterator[MindooDB]:
        """A directory handle that signs with the admin key; refreshes this view afterwards."""
        self._check_admin(admin)
        writer = self._db.with_signer(signer_for(admin))
        try:
            yield writer
        finally:
            await self.refresh()

    # -- encrypted names ---------------------------------------------------------------------
    def _encrypt_name(self, username: str) -> str:
        key = self._keys.keys_for(DEFAULT_KEY_ID)[0]
        return b64encode(encrypt_payload(key, dumps_json({"username": username})))

    def _decrypt_name(self, blob: str) -> str | None:
        try:
            keys = self._keys.keys_for(DEFAULT_KEY_ID)
            data = loads_json(decrypt_with_any(keys, b64decode(blob)), "encrypted name")
        except (KeyNotFoundError, DecryptionError, KeyFormatError):
            return None
        name = data.get("username") if isinstance(data, dict) else None
        return name if isinstance(name, str) else None

    def _encrypt_member(self, name: str) -> str:
        # A group member is the bare UTF-8 name under ``default`` (the reference's
        # encryptGroupMemberForTenant), unlike a grant's JSON ``{"username": ...}``.
        key = self._keys.keys_for(DEFAULT_KEY_ID)[0]
        return b64encode(encrypt_payload(key, name.encode("utf-8")))

    def _decrypt_member(self, blob: str) -> str | None:
        try:
            keys = self._keys.keys_for(DEFAULT_KEY_ID)
            text = decrypt_with_any(keys, b64decode(blob)).decode("utf-8").strip()
        except (KeyNotFoundError, DecryptionError, KeyFormatError, UnicodeDecodeError):
            return None
        return _legacy_member_name(text) or text or None

    # -- users -------------------------------------------------------------------------------
    async def register_user(
        self,
        user: PublicUserId,
        label: str,
        admin: UnlockedUserId,
        *,
        join_bootstrap: str | None = None,
    ) -> str:
        """Grant ``user``'s device access; a known user gets the device appended.

        ``join_bootstrap`` is the device's sealed ``joinResponseWrapped``. Returns the grant's
        document id.
        """
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_CHARS:
            raise InvalidNameError(f"a device label (1-{MAX_LABEL_CHARS} characters) is required")
        pair = grant_ops.key_pair_json(user, label, self._clock(), join_bootstrap)
        existing = [g.doc_id for g in self._index.grants_of(user.username)]
        doc_id = grant_ops.grant_doc_id(username_hash(self.tenant_id, user.username))
        async with self._as_admin(admin) as writer:
            if doc_id not in existing and existing:
                doc_id = existing[0]  # a grant written by another tool: extend it
            if await writer.find_document(doc_id) is None:
                data = grant_ops.new_grant_data(
                    self.tenant_id,
                    user,
                    label,
                    self._encrypt_name(user.username),
                    self._clock(),
                    join_bootstrap,
                )
                try:
                    await writer.create_encrypted_document(PUBLIC_INFOS_KEY_ID, data, doc_id=doc_id)
                    return doc_id
                except DatabaseError:
                    log.info(
                        "grant document appeared concurrently; appending", extra={"doc": doc_id}
                    )
            await writer.change_doc(doc_id, lambda d: grant_ops.add_key_pair(d.get_data(), pair))
        return doc_id

    async def revoke_user(
        self,
        username: str,
        admin: UnlockedUserId,
        *,
        signing_keys: Iterable[str] | None = None,
    ) -> int:
        """Revoke all (or the listed) devices of a user; returns how many key pairs moved."""
        grants = self._index.grants_of(username)
        if not grants:
            raise UserNotFoundError("no grant in the directory matches this username")
        keys = None if signing_keys is None else list(signing_keys)
        now = self._clock()
        moved = 0
        async with self._as_admin(admin) as writer:
            for grant in grants:
                moved += await _revoke_in(writer, grant.doc_id, now, keys)
        return moved

    def is_user_registered(self, username: str) -> bool:
        """True when the user has at least one active device."""
        return bool(self._index.active_key_pairs(username))

    def get_user_key_pairs(self, username: str) -> list[KeyPair]:
        return self._index.active_key_pairs(username)

    def get_revoked_key_pairs(self, username: str) -> list[KeyPair]:
        return self._index.revoked_key_pairs(username)

    def validate_public_signing_key(self, pem: str) -> bool:
        """Whether ``pem`` may write now (the admin, or an active device)."""
        verdict = self.trust.verdict(pem, self._clock())
        return verdict in (Verdict.ADMIN, Verdict.ACTIVE)

    def get_usernames(self) -> list[str]:
        """Names of every granted user (needs the ``default`` key; unreadable ones skipped)."""
        names = []
        for grant in self._index.grants():
            if grant.user_details_encrypted is not None:
                name = self._decrypt_name(grant.user_details_encrypted)
                if name is not None:
                    names.append(name)
        return sorted(set(names))

    # -- groups ------------------------------------------------------------------------------
    def _members(self, names: Sequence[str]) -> list[tuple[str, str]]:
        return [(username_hash(self.tenant_id, n), self._encrypt_member(n)) for n in names]

    async def create_group(self, name: str, members: Sequence[str], admin: UnlockedUserId) -> None:
        """Create a group of usernames and/or other groups' names (extends an existing one)."""
        group = self._index.group(name)
        if group is not None:
            await self.add_users_to_group(name, members, admin)
            return
        data = group_ops.new_group_data(normalize_name(name), self._members(members))
        async with self._as_admin(admin) as writer:
            await writer.create_encrypted_document(PUBLIC_INFOS_KEY_ID, data)

    async def add_users_to_group(
        self, name: str, members: Sequence[str], admin: UnlockedUserId
    ) -> None:
        group = self._require_group(name)
        new = self._members(members)
        async with self._as_admin(admin) as writer:
            await writer.change_doc(
                group.doc_ids[0], lambda d: group_ops.add_members(d.get_data(), new)
            )

    async def remove_users_from_group(
        self, name: str, members: Sequence[str], admin: UnlockedUserId
    ) -> None:
        """Remove members from every document of the group (merged docs included)."""
        group = self._require_group(name)
        drop = {h for n in members for h in username_hash_candidates(self.tenant_id, n)}
        async with self._as_admin(admin) as writer:
            for doc_id in group.doc_ids:
                await writer.change_doc(
                    doc_id, lambda d: group_ops.remove_members(d.get_data(), drop)
                )

    async def delete_group(self, name: str, admin: UnlockedUserId) -> None:
        group = self._require_group(name)
        async with self._as_admin(admin) as writer:
            for doc_id in group.doc_ids:
                await writer.delete_document(doc_id)

    def _require_group(self, name: str) -> group_ops.Group:
        group = self._index.group(name)
        if group is None:
            raise GroupNotFoundError(f"no group named {normalize_name(name)!r}")
        return group

    def get_groups(self) -> list[str]:
        return sorted(self._index.groups())

    def get_group_members(self, name: str) -> list[str]:
        """Direct members' names (needs the ``default`` key; unreadable ones are skipped)."""
        group = self._require_group(name)
        names = (self._decrypt_member(e) for e in group.encrypted_members)
        return sorted({n for n in names if n is not None})

    def get_group_member_hashes(self, name: str) -> frozenset[str]:
        """Every user in the group, nested groups expanded; works with ``$publicinfos`` only."""
        self._require_group(name)
        return self._index.group_member_hashes(name)

    def get_user_groups(self, username: str) -> set[str]:
        return self._index.user_groups(username)

    def is_group_member(self, username: str, group_name: str) -> bool:
        return self._index.is_group_member(username, group_name)

    # -- purge requests ----------------------------------------------------------------------
    async def publish_purge_request(
        self, db_id: str, doc_ids: Sequence[str], reason: str, admin: UnlockedUserId
    ) -> PurgeRequest:
        """Ask every node to erase these documents' history (see ``mindood.tenant.purge``)."""
        db_id, ids = check_request(db_id, doc_ids)
        request_id = generate_object_id()
        doc_id = purge_doc_id(request_id)
        reason_blob = None
        if reason:
            key = self._keys.keys_for(DEFAULT_KEY_ID)[0]
            reason_blob = b64encode(encrypt_payload(key, dumps_json({"reason": reason})))
        data = new_purge_data(
            request_id=request_id,
            db_id=db_id,
            doc_ids=ids,
            reason_encrypted=reason_blob,
            prepared_by=admin.private.signing_public_key,
            requested_at=self._clock(),
        )
        async with self._as_admin(admin) as writer:
            await writer.create_encrypted_document(PUBLIC_INFOS_KEY_ID, data, doc_id=doc_id)
        request = next((r for r in self.get_requested_purges() if r.doc_id == doc_id), None)
        if request is None:
            raise DatabaseError(f"purge request {doc_id!r} was written but cannot be read back")
        return request

    def get_requested_purges(self) -> list[PurgeRequest]:
        """Every purge request in the directory, oldest first (readable with ``$publicinfos``)."""
        return self._index.purge_requests()

    def get_purge_reason(self, request: PurgeRequest) -> str | None:
        """The reason given for a request (needs the ``default`` key; None if unreadable)."""
        if request.reason_encrypted is None:
            return None
        try:
            keys = self._keys.keys_for(DEFAULT_KEY_ID)
            data = loads_json(decrypt_with_any(keys, b64decode(request.reason_encrypted)), "reason")
        except (KeyNotFoundError, DecryptionError, KeyFormatError):
            return None
        reason = data.get("reason") if isinstance(data, dict) else None
        return reason if isinstance(reason, str) else None

    # -- policy and tenant setup -------------------------------------------------------------
    async def _upsert_public(
        self, writer: MindooDB, doc_id: str, update: Callable[[MindooDoc], None]
    ) -> None:
        """Apply ``update`` to the fixed-id ``$publicinfos`` document, creating it if missing
        (a concurrent creation converges on the same document: the custom id's first change)."""
        if await writer.find_document(doc_id) is None:
            with contextlib.suppress(DatabaseError):
                await writer.create_encrypted_document(PUBLIC_INFOS_KEY_ID, doc_id=doc_id)
        await writer.change_doc(doc_id, update)

    def metadata_signature_floor(self) -> int | None:
        """The tenant's ``requireMetadataSignatureSince`` (None if its policy sets none)."""
        policy = self._index.default_policy()
        return None if policy is None else policy.require_metadata_signature_since

    async def set_default_policy(self, admin: UnlockedUserId, *, required_since: int) -> None:
        """Write the policy the reference's createTenant writes (signatures required)."""
        async with self._as_admin(admin) as writer:
            fields = acl.default_policy_fields(required_since)
            await self._upsert_public(
                writer, acl.DEFAULT_POLICY_DOC_ID, lambda d: d.get_data().update(fields)
            )

    async def write_key_distribution(
        self, admin: UnlockedUserId, key_id: str, fields: Mapping[str, Any]
    ) -> None:
        """Write the full desired state of ``acl_keydistribution_<keyId>`` (admin-signed)."""
        async with self._as_admin(admin) as writer:
            await self._upsert_public(
                writer,
                kd.key_distribution_doc_id(key_id),
                lambda d: kd.apply_key_distribution(d.get_data(), fields),
            )

    def _encrypt_text(self, text: str) -> str:
        return kd.encrypt_text_field(self._keys.keys_for(DEFAULT_KEY_ID)[0], text)

    async def add_tenant_administrator(
        self, admin: UnlockedUserId, *, label: str | None = None
    ) -> None:
        """List the admin in ``tenantsetup`` (and set the tenant's label), as createTenant does."""
        public = admin.public
        now = self._clock()
        async with self._as_admin(admin) as writer:
            existing = await writer.find_document(acl.TENANT_SETUP_DOC_ID)
            current = (
                []
                if existing is None
                else grant_ops.plain(existing.get_data().get("administrators") or [])
            )
            listed = any(
                isinstance(item, dict)
                and any(
                    isinstance(p, dict)
                    and normalize_pem(str(p.get("signingPublicKey", "")))
                    == normalize_pem(public.signing_public_key)
                    for p in item.get("userKeyPairs") or []
                )
                for item in current
            )
            fields: dict[str, Any] = {}
            if not listed:
                fields["administrators"] = [
                    *current,
                    acl.administrator_fields(
                        self._encrypt_text(public.username),
                        public.signing_public_key,
                        public.encryption_public_key,
                        now,
                    ),
                ]
            if label:
                fields["label_encrypted"] = self._encrypt_text(label.strip())
                fields["label_encrypted_key"] = DEFAULT_KEY_ID
            if fields:
                await self._upsert_public(
                    writer, acl.TENANT_SETUP_DOC_ID, lambda d: d.get_data().update(fields)
                )

    def get_tenant_label(self) -> str | None:
        setup = self._index.tenant_setup()
        if setup is None:
            return None
        try:
            keys = self._keys.keys_for(DEFAULT_KEY_ID)
        except KeyNotFoundError:
            return None
        return kd.decrypt_text_field(setup.data, "label_encrypted", keys)

    # -- settings ----------------------------------------------------------------------------
    def get_tenant_settings(self) -> dict[str, Any]:
        """Tenant settings (empty if none were written or they are unreadable here)."""
        return self._index.tenant_settings() or {}

    def get_db_settings(self, db_id: str) -> dict[str, Any]:
        return self._index.db_settings(db_id) or {}

    async def change_tenant_settings(self, fn: SettingsFn, admin: UnlockedUserId) -> None:
        """Run ``fn`` on the live tenant settings document (created on first use)."""
        await self._change_settings(
            TENANT_SETTINGS_DOC_ID, {"form": TENANT_SETTINGS_FORM}, fn, admin
        )

    async def change_db_settings(self, db_id: str, fn: SettingsFn, admin: UnlockedUserId) -> None:
        initial = {"form": DB_SETTINGS_FORM, "dbid": db_id}
        await self._change_settings(db_settings_doc_id(db_id), initial, fn, admin)

    async def _change_settings(
        self, doc_id: str, initial: dict[str, Any], fn: SettingsFn, admin: UnlockedUserId
    ) -> None:
        async with self._as_admin(admin) as writer:
            if await writer.find_document(doc_id) is None:
                try:
                    await writer.create_encrypted_document(DEFAULT_KEY_ID, initial, doc_id=doc_id)
                except DatabaseError:
                    log.info("settings document appeared concurrently", extra={"doc": doc_id})
            await writer.change_doc(doc_id, fn)


def _legacy_member_name(text: str) -> str | None:
    """The name in a member blob mindood wrote before it used the reference's bare text."""
    if not text.startswith('{"username":'):
        return None
    try:
        data = loads_json(text.encode("utf-8"), "group member")
    except KeyFormatError:
        return None
    name = data.get("username") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


async def _revoke_in(
    writer: MindooDB, doc_id: str, now: int, signing_keys: list[str] | None
) -> int:
    moved: list[int] = []

    def revoke(doc: MindooDoc) -> None:
        moved.append(grant_ops.revoke_key_pairs(doc.get_data(), now, signing_keys))

    await writer.change_doc(doc_id, revoke)
    return sum(moved)
