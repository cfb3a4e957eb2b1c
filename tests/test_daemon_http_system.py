"""Publishing a tenant to a real ``mindood run`` daemon over ``/system/*`` (the reference's
``publishToServer``), then syncing through the relay it becomes.

A tenant made elsewhere (here: in this process, on its own stores) is registered by a system
admin from the daemon's configuration; the tenant's admin then logs in before any grant exists
on the node and pushes the directory, a user pushes a database and a second device of that user
pulls it back, while the node holds only ``$publicinfos`` and cannot read the documents. All of
it survives a restart of the daemon.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mindood import InMemoryStoreFactory, TenantFactory
from mindood.crypto import rsa
from mindood.errors import MindoodError
from mindood.identity import PrivateUserId, unlock
from mindood.keybag import KeyBag
from mindood.tenant import Tenant
from mindood.tenant.directory import PUBLIC_INFOS_KEY_ID
from mindood.tenant.factory import CreatedTenant
from tests.daemon_helpers import HTTP_LISTEN, DaemonProcess, http_address, start_daemon
from tests.http_helpers import Client
from tests.sync_helpers import eventually
from tests.tenant_helpers import fast_kdf, identity, new_tenant, password, username

TENANT = "pub"

pytestmark = pytest.mark.usefixtures("_kdf")


@pytest.fixture(autouse=True, scope="module")
def _kdf() -> object:
    yield from fast_kdf()


def _start(tmp_path: Path, daemons: list[DaemonProcess], sysadmin: PrivateUserId) -> DaemonProcess:
    key = sysadmin.signing_public_key.strip()
    lines = [
        *HTTP_LISTEN,
        'system_allowed_ips = ["127.0.0.0/8", "::1"]',
        "[[http.system_admins]]",
        f'username = "{sysadmin.username.upper()}"',  # matched case-insensitively
        f"publicsignkey = '''{key}'''",
    ]
    return start_daemon(tmp_path, daemons, "d", lines)


class SystemClient:
    """The ``/system/*`` calls of ``publishToServer``, as a given identity."""

    def __init__(self, session: aiohttp.ClientSession, url: str, who: PrivateUserId) -> None:
        self.http = Client(session, url, unlock(who, password(who.username[3:].split("/")[0])))
        self.who = who
        self.token = ""

    async def post(self, path: str, body: Any, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        status, parsed, _ = await self.http.raw("POST", path, body, headers=headers)
        return status, parsed

    async def login(self, signer: PrivateUserId | None = None) -> tuple[int, Any]:
        status, body = await self.post(
            "/system/auth/challenge",
            {"username": self.who.username, "publicsignkey": self.who.signing_public_key},
        )
        if status != 200:
            return status, body
        who = signer or self.who
        signed = unlock(who, password(who.username[3:].split("/")[0])).sign(
            body["challenge"].encode()
        )
        status, body = await self.post(
            "/system/auth/authenticate",
            {"challenge": body["challenge"], "signature": base64.b64encode(signed).decode()},
        )
        if status == 200:
            self.token = body["token"]
        return status, body

    async def register(self, created: CreatedTenant, body: dict[str, Any]) -> tuple[int, Any]:
        full = {
            "adminUsername": created.admin_user.username,
            "adminSigningPublicKey": created.tenant.admin_signing_public_key,
            "adminEncryptionPublicKey": created.tenant.admin_encryption_public_key,
            **body,
        }
        return await self.post(f"/system/tenants/{TENANT}", full, self.token)


async def _open_as(created: CreatedTenant, user: PrivateUserId, pw: str, stores: Any) -> Tenant:
    """Another device of the tenant (``user``), with the tenant's keys, on ``stores``."""
    bag = KeyBag.for_user(user, pw)
    for key_id in created.key_bag.list_keys(TENANT):
        bag.set(TENANT, key_id, created.key_bag.get(TENANT, key_id))
    return await TenantFactory(stores).open_tenant(
        TENANT,
        created.tenant.admin_signing_public_key,
        created.tenant.admin_encryption_public_key,
        user,
        pw,
        bag,
    )


async def test_a_published_tenant_is_served_as_a_relay_and_survives_restart(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    sysadmin, mallory = identity("sysadmin"), identity("mallory")
    daemon = _start(tmp_path, daemons, sysadmin)
    address = await http_address(daemon)
    stores = InMemoryStoreFactory()
    created = await new_tenant(stores, TENANT)
    alice = created.tenant
    contacts = await alice.open_db("contacts")
    doc_ids = [(await contacts.create_document({"name": name})).get_id() for name in ("Ada", "Bob")]
    public_infos = created.key_bag.get(TENANT, PUBLIC_INFOS_KEY_ID)
    assert public_infos is not None

    async with aiohttp.ClientSession() as session:
        status, info, _ = await Client(session, address, alice).raw(
            "GET", "/.well-known/mindoodb-server-info"
        )
        assert status == 200
        wrapped = base64.b64encode(rsa.encrypt(public_infos, info["encryptionPublicKey"])).decode()
        admin = SystemClient(session, address, sysadmin)
        # nobody else gets a challenge; a wrong signature gets no token; no token, no /system
        status, body = await SystemClient(session, address, mallory).login()
        assert status == 404, body
        status, body = await admin.login(signer=mallory)
        assert (status, body["success"]) == (401, False), body
        assert (await admin.register(created, {"encryptedPublicInfosKey": wrapped}))[0] == 401
        status, body = await admin.login()
        assert status == 200 and body["success"] is True, body
        # a tenant admin who is no system admin may not register
        tenant_admin = SystemClient(session, address, created.admin_user)
        assert (await tenant_admin.login())[0] == 404

        status, body = await admin.register(created, {"encryptedPublicInfosKey": wrapped})
        assert (status, body["created"]) == (201, True), body
        plain = base64.b64encode(public_infos).decode()
        status, body = await admin.register(created, {"publicInfosKey": plain})
        assert (status, body["created"]) == (200, False), body
        other = base64.b64encode(os.urandom(32)).decode()
        status, body = await admin.register(created, {"publicInfosKey": other})
        assert status == 409 and "different $publicinfos key" in body["error"], body
        status, body, _ = await admin.http.raw(
            "GET", "/system/tenants", headers={"Authorization": f"Bearer {admin.token}"}
        )
        assert (status, body) == (200, {"tenants": [TENANT]})

        # the tenant admin logs in by name before any grant is on the node ...
        as_admin = Client(
            session, address, unlock(created.admin_user, password("admin")), username("admin")
        )
        as_admin.tenant_id = TENANT
        await as_admin.login()
        # ... and pushes the directory (through mindood's own HTTP client)
        admin_tenant = await _open_as(created, created.admin_user, password("admin"), stores)
        directory = admin_tenant.get_directory().db
        pushed = await directory.push_changes_to(
            await admin_tenant.connect_to_server(address, "directory")
        )
        assert pushed.transferred > 0 and not pushed.rejected
        # alice, granted by that directory, pushes her database
        pushed = await contacts.push_changes_to(await alice.connect_to_server(address, "contacts"))
        assert pushed.transferred >= 2 and not pushed.rejected

    async def second_device_reads() -> None:
        laptop = await _open_as(
            created, created.app_user, password("alice"), InMemoryStoreFactory()
        )
        try:
            await laptop.get_directory().db.pull_changes_from(
                await laptop.connect_to_server(address, "directory")
            )
            await laptop.refresh_directory(full=True)
            db = await laptop.open_db("contacts")
            await db.pull_changes_from(await laptop.connect_to_server(address, "contacts"))
            names = [(await db.get_document(d)).get_data()["name"] for d in doc_ids]
            assert names == ["Ada", "Bob"]
        finally:
            await laptop.close()

    await second_device_reads()

    async with aiohttp.ClientSession() as session:  # a device asks which tenants grant it
        device = Client(session, address, alice)

        async def discover(signer: Client) -> tuple[int, Any]:
            ask = {"signingPublicKey": device.signing_key}
            _, body, _ = await device.raw("POST", "/device/challenge", ask)
            signed = base64.b64encode(signer.sign(body["challenge"].encode())).decode()
            answer = {"challenge": body["challenge"], "signature": signed}
            status, body, _ = await device.raw("POST", "/device/discover", answer)
            return status, body

        status, body = await discover(device)
        assert status == 200 and [t["tenantId"] for t in body["tenants"]] == [TENANT], body
        [delivery] = body["tenants"]
        unwrapped = device.unwrap()(base64.b64decode(delivery["wrappedPublicInfosKey"]))
        assert unwrapped == public_infos
        assert delivery["adminSigningPublicKey"] == alice.admin_signing_public_key
        assert delivery["username_hash"] and delivery["identity_hashes"]
        stranger = Client(session, address, unlock(mallory, password("mallory")))
        assert (await discover(stranger))[0] == 401  # signed by another key
        device.who = stranger.user  # a key no grant names: nothing to deliver
        assert await discover(device) == (200, {"tenants": []})

    async def node_is_a_blind_relay() -> None:
        async with await daemon.client() as rpc:

            async def adopted() -> bool:  # after a restart, sync serves it once unlocked
                return TENANT in (await rpc.sync_status())["tenants"]

            await eventually(adopted)
            assert (await rpc.sync_status())["roles"][TENANT] == "relay"
            with pytest.raises(MindoodError):
                await rpc.doc_get(TENANT, "contacts", doc_ids[0])

    await node_is_a_blind_relay()

    daemon.restart()
    address = await http_address(daemon)
    await node_is_a_blind_relay()
    await second_device_reads()
    async with aiohttp.ClientSession() as session:
        client = Client(session, address, alice, tenant_id=TENANT)
        status, body, _ = await client.raw(
            "GET", f"/.well-known/mindoodb-tenants/{TENANT}/publicinfos-fingerprints"
        )
        assert status == 200 and len(body["fingerprints"]) == 1, body
        admin = SystemClient(session, address, sysadmin)
        assert (await admin.login())[0] == 200
        plain = base64.b64encode(public_infos).decode()
        assert (await admin.register(created, {"publicInfosKey": plain}))[0] == 200
        async with await daemon.client() as rpc:  # locked by hand, the key is still the node's
            await rpc.tenant_lock(TENANT)
        assert (await admin.register(created, {"publicInfosKey": plain}))[0] == 200
        assert (await client.challenge(signingPublicKey=client.signing_key))[0] == 200
        admin_auth = {"Authorization": f"Bearer {admin.token}"}
        # removal: the tenant is no longer served, and may be registered afresh
        status, body, _ = await admin.http.raw(
            "DELETE",
            f"/system/tenants/{TENANT}",
            headers=admin_auth,
        )
        assert status == 200, body
        status, body = await client.challenge(signingPublicKey=client.signing_key)
        assert status == 404, body
        assert (await admin.register(created, {"publicInfosKey": plain}))[0] == 201
    await admin_tenant.close()
    await alice.close()
