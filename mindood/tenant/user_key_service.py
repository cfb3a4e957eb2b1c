"""User-Keys and key distribution, as one tenant member and its admin live them (§6, §7).

The reference delivers the tenant's ``default`` key (and any named key an admin distributes)
not in the join response but through the directory: ``acl_keydistribution_<keyId>`` wraps each
key version to every recipient's person-bound *User-Key*, whose public half is published in
the ``userdirectory`` database (``userkey_<grant id>``) and whose private half reaches each of
the person's devices either in the identity itself or as a ``deviceWraps`` entry of that
document. This service does both sides:

* as a member (every open, and whenever the directory or the ``userdirectory`` changes): find
  the User-Key privates this device can use, publish the own User-Key with a wrap for this
  device (and for any other device the admin granted to the same person), and import what the
  distributions deliver into the KeyBag, dropping keys a ``pullfrom`` list takes back;
* as the admin (createTenant, approving a join request, rotating a key): create the pending
  ``userkey_*`` document of a new person and (re)write the distribution of a key.

The pure formats are in ``userkeys`` and ``keydistribution``; this module only orchestrates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from mindood.crypto.fingerprint import rsa_key_fingerprint
from mindood.crypto.pem import normalize_pem
from mindood.crypto.rsa import rsa_public_pem
from mindood.db import MindooDB, MindooDoc, signer_for
from mindood.errors import CryptoError, DatabaseError, KeyNotFoundError
from mindood.identity import UnlockedUserId
from mindood.keybag import KeyBag
from mindood.tenant import keydistribution as kd
from mindood.tenant import userkeys as uk
from mindood.tenant.directory import DEFAULT_KEY_ID, PUBLIC_INFOS_KEY_ID, Directory
from mindood.tenant.grants import Grant
from mindood.tenant.hashing import username_hash, username_hash_candidates

log = logging.getLogger("mindood.tenant.userkeys")

OpenDb = Callable[[str], Awaitable[MindooDB]]
#: A person's User-Key document: its id and its parsed content.
Found = tuple[str, uk.UserKeyDocument]


def _pkcs8(key: RSAPrivateKey) -> bytes:
    return key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class UserKeyService:
    """One tenant's User-Key documents and key distributions (see module docstring)."""

    def __init__(
        self,
        *,
        tenant_id: str,
        user: UnlockedUserId,
        key_bag: KeyBag,
        directory: Directory,
        open_db: OpenDb,
    ) -> None:
        self._tenant_id = tenant_id
        self._user = user
        self._bag = key_bag
        self._directory = directory
        self._open_db = open_db
        #: User-Keys opened from device wraps, so each wrap costs one RSA load per tenant
        #: object, not one per directory change.
        self._opened_wraps: dict[tuple[str, str], RSAPrivateKey] = {}

    # -- reading -----------------------------------------------------------------------------
    async def _user_directory(self) -> MindooDB:
        return await self._open_db(uk.USER_DIRECTORY_DB_ID)

    async def _documents(self) -> list[Found]:
        db = await self._user_directory()
        out: list[Found] = []
        for doc_id in await db.get_all_document_ids():
            if not doc_id.startswith(uk.USERKEY_DOC_ID_PREFIX):
                continue
            try:
                doc = await db.get_document(doc_id)
            except (KeyNotFoundError, DatabaseError) as exc:
                log.debug("skipping user-key document %s: %s", doc_id, exc)
                continue
            if doc.is_deleted():
                continue
            parsed = uk.parse_user_key_document(doc.get_data())
            if parsed is not None:
                out.append((doc_id, parsed))
        return out

    async def document_of(self, username: str) -> Found | None:
        """The person's User-Key document, matched by any of their username hashes."""
        candidates = set(username_hash_candidates(self._tenant_id, username))
        for doc_id, doc in await self._documents():
            if doc.username_hash in candidates:
                return doc_id, doc
        return None

    async def published_user_key(self, username: str) -> str | None:
        """The public half of the person's current User-Key, if published (even pending)."""
        found = await self.document_of(username)
        current = None if found is None else found[1].current
        return None if current is None else current.public_key

    def _own_grant(self) -> Grant | None:
        grants = self._directory.index.grants_of(self._user.username)
        mine = normalize_pem(self._user.private.signing_public_key)
        for grant in grants:
            if any(p.signing_key_id == mine for p in grant.active):
                return grant
        return grants[0] if grants else None

    def _keys_with(self, found: Found | None) -> list[RSAPrivateKey]:
        """The User-Key privates this device holds: the identity's, and its device wraps in
        ``found`` (the person's document)."""
        keys: list[RSAPrivateKey] = []
        if self._user.user_key is not None:
            keys.append(self._user.user_key)
        if found is not None:
            held = {rsa_key_fingerprint(k) for k in keys}
            for opened in uk.open_own_device_wraps(
                found[1], self._user.encryption_key, held=held, cache=self._opened_wraps
            ):
                if opened.fingerprint not in held:
                    held.add(opened.fingerprint)
                    keys.append(opened.private_key)
        return keys

    async def own_user_keys(self) -> list[RSAPrivateKey]:
        """Every User-Key private this device holds: from the identity, or a device wrap."""
        return self._keys_with(await self.document_of(self._user.username))

    # -- member side -------------------------------------------------------------------------
    async def reconcile(self) -> list[str]:
        """Publish the own User-Key wraps, then import what distributions deliver.

        Returns the key ids whose versions changed in the KeyBag. Idempotent, and safe to run
        on every directory change: an offline member catches up after one sync. The person's
        document is read, and its wraps opened (RSA), once per pass.
        """
        found = await self.document_of(self._user.username)
        keys = self._keys_with(found)
        try:
            await self._publish(found, keys, None)
        except (CryptoError, DatabaseError) as exc:
            log.warning("could not publish this device's User-Key wrap: %s", exc)
        return await self._import(keys)

    async def publish_own(self, label: str | None = None, *, allow_create: bool = False) -> None:
        """Write wraps of this person's User-Key for each of their granted devices.

        Only with the User-Key private at hand (from the identity or a wrap). The document
        itself is created here only with ``allow_create`` (the tenant's first user, as the
        reference's createTenant does); a joining person's document is the admin's pending
        one. Two devices creating it offline would write concurrent ``userKeys`` maps under the
        one convergent id, and Automerge would keep one of them at random.
        """
        found = await self.document_of(self._user.username)
        grant = self._own_grant()
        if found is None and allow_create and grant is not None and self._user.user_key:
            doc_id = uk.user_key_document_id(grant.doc_id)
            public = rsa_public_pem(self._user.user_key.public_key())
            payload = uk.pending_user_key_payload(grant.username_hash, public, _now_ms())
            db = await self._user_directory()
            try:
                await db.create_encrypted_document(
                    PUBLIC_INFOS_KEY_ID, payload, doc_id=doc_id, assume_unique_id=True
                )
            except DatabaseError:
                log.info("user-key document appeared concurrently", extra={"doc": doc_id})
            found = await self.document_of(self._user.username)
        await self._publish(found, self._keys_with(found), label)

    async def _publish(
        self, found: Found | None, keys: list[RSAPrivateKey], label: str | None
    ) -> None:
        """Wrap the current User-Key for every active device of the own grant that lacks one."""
        grant = self._own_grant()
        if grant is None:
            return
        mine = normalize_pem(self._user.private.signing_public_key)
        devices = [
            (p.encryption_public_key, label if p.signing_key_id == mine and label else p.label)
            for p in grant.active
            if p.encryption_public_key is not None
        ]
        written = await self._write_wraps(found, keys, devices)
        if written:
            log.info(
                "published User-Key wraps", extra={"tenant": self._tenant_id, "devices": written}
            )

    async def _write_wraps(
        self,
        found: Found | None,
        keys: list[RSAPrivateKey],
        devices: list[tuple[str, str | None]],
    ) -> list[str]:
        """Add a wrap of the current User-Key for each ``(encryption PEM, label)`` lacking one.

        Needs the current generation's private among ``keys``; returns the device
        fingerprints written (none when it is not held or every device has its wrap).
        """
        if found is None:
            return []
        doc_id, doc = found
        current, epoch = doc.current, doc.current_epoch
        if current is None or epoch is None:
            return []
        target = rsa_key_fingerprint(current.public_key)
        private = next((k for k in keys if rsa_key_fingerprint(k) == target), None)
        if private is None:
            return []
        pkcs8 = _pkcs8(private)
        wraps: list[tuple[str, uk.DeviceWrap]] = []
        for pem, device_label in devices:
            device = rsa_key_fingerprint(pem)
            if current.wrap_for(device) is not None or any(d == device for d, _ in wraps):
                continue
            wrap = uk.DeviceWrap(
                wrapped_key=uk.wrap_user_key_for_device(pkcs8, pem),
                label=device_label,
                approved_at=_now_ms(),
                approved_by_signing_public_key=self._user.private.signing_public_key,
            )
            wraps.append((device, wrap))
        if not wraps:
            return []

        def add(d: MindooDoc) -> None:
            for device, wrap in wraps:
                uk.add_device_wrap(d.get_data(), epoch, device, wrap)

        await (await self._user_directory()).change_doc(doc_id, add)
        return [device for device, _ in wraps]

    async def import_distributed_keys(self) -> list[str]:
        """Import (or drop) what every key distribution in the directory says for this person."""
        return await self._import(await self.own_user_keys())

    async def _import(self, user_keys: list[RSAPrivateKey]) -> list[str]:
        distributions = self._directory.index.key_distributions()
        if not distributions:
            return []
        hashes = set(username_hash_candidates(self._tenant_id, self._user.username))
        grant = self._own_grant()
        if grant is not None:
            hashes.add(grant.username_hash)
            hashes.update(grant.identity_hashes)
        private_keys = [*user_keys, self._user.encryption_key]
        changed: list[str] = []
        for dist in distributions:
            delivery = kd.keys_for_recipient(dist, hashes, private_keys)
            if delivery.revoked:
                if dist.key_id not in kd.PROTECTED_KEY_IDS and self._bag.delete(
                    self._tenant_id, dist.key_id
                ):
                    log.info("key taken back by the admin", extra={"key": dist.key_id})
                    changed.append(dist.key_id)
                continue
            added = False
            for version in delivery.versions:
                added |= self._bag.set(
                    self._tenant_id, dist.key_id, version.key, version.created_at
                )
            if added:
                log.info("key delivered by the directory", extra={"key": dist.key_id})
                changed.append(dist.key_id)
        return changed

    # -- admin side --------------------------------------------------------------------------
    async def create_pending(
        self, admin: UnlockedUserId, username: str, user_public_key: str
    ) -> str | None:
        """Publish a joining person's User-Key (admin-signed, no wraps) unless they have one.

        Returns the public key the person's document now carries (theirs if it existed).
        """
        existing = await self.document_of(username)
        if existing is not None:
            current = existing[1].current
            return None if current is None else current.public_key
        grants = self._directory.index.grants_of(username)
        if not grants:
            return None
        grant = grants[0]
        db = await self._user_directory()
        payload = uk.pending_user_key_payload(grant.username_hash, user_public_key, _now_ms())
        writer = db.with_signer(signer_for(admin))
        await writer.create_encrypted_document(
            PUBLIC_INFOS_KEY_ID,
            payload,
            doc_id=uk.user_key_document_id(grant.doc_id),
            assume_unique_id=True,
        )
        await db.sync_store_changes()
        return user_public_key

    async def distribute(
        self,
        admin: UnlockedUserId,
        username: str,
        key_id: str = DEFAULT_KEY_ID,
        *,
        public_key_override: str | None = None,
    ) -> bool:
        """Merge ``username`` into the distribution of ``key_id`` (every version in the bag).

        Every listed recipient is wrapped again, so a rotated key reaches everyone. Returns
        False when nobody could be wrapped to (no published User-Key yet).
        """
        versions = self._bag.versions(self._tenant_id, key_id)
        if not versions:
            raise KeyNotFoundError(f"this tenant object holds no {key_id!r} key to distribute")
        default_keys = self._bag.get_all(self._tenant_id, DEFAULT_KEY_ID)
        existing = next(
            (d for d in self._directory.index.key_distributions() if d.key_id == key_id), None
        )
        names: list[str] = []
        pull_names: list[str] = []
        if existing is not None:
            data = self._directory.index.key_distribution_data(key_id)
            names = kd.decrypt_name_list(data, "pushto_users_encrypted", default_keys) or []
            pull_names = kd.decrypt_name_list(data, "pullfrom_users_encrypted", default_keys) or []
        if username not in names:
            names.append(username)
        pull_names = [n for n in pull_names if n.lower() != username.lower()]
        pushto: list[kd.PushRecipient] = []
        for name in names:
            override = public_key_override if name == username else None
            public = override or await self.published_user_key(name)
            if public is None:
                log.warning("no published User-Key for %r yet; %s not wrapped", name, key_id)
                continue
            digest = username_hash(self._tenant_id, name)
            pushto.append(kd.wrap_for_user_key(name, digest, public, versions))
        if not pushto:
            return False
        pullfrom = [kd.PullRecipient(n, username_hash(self._tenant_id, n)) for n in pull_names]
        fields = kd.key_distribution_fields(
            key_id=key_id,
            key_versions=kd.key_version_refs(versions),
            prepared_by_public_key=admin.private.signing_public_key,
            pushto=pushto,
            pullfrom=pullfrom,
            default_key=default_keys[0],
        )
        await self._directory.write_key_distribution(admin, key_id, fields)
        return True

    async def wrap_for_device(self, encryption_public_key: str, label: str | None) -> bool:
        """As the person: give a new device of mine my User-Key (approving my own device)."""
        found = await self.document_of(self._user.username)
        keys = self._keys_with(found)
        return bool(await self._write_wraps(found, keys, [(encryption_public_key, label)]))
