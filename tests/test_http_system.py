"""The sans-I/O ``/system/*`` API: who may log in, for how long, from where, and what a bad
registration body gets (the daemon test covers registration end to end)."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest

from mindood.crypto import rsa
from mindood.identity import UnlockedUserId, unlock
from mindood.sync.http_serve import unwrap_hybrid
from protocol.http.checks import HttpError
from protocol.http.server import HttpRequest, HttpResponse, HttpServer
from protocol.http.system import (
    RegisterTenantRequest,
    RegistrationConflict,
    SystemAdmin,
    SystemApi,
    SystemAuth,
    parse_allowlist,
)
from tests.http_helpers import Clock
from tests.tenant_helpers import fast_kdf, identity, password

pytestmark = pytest.mark.usefixtures("_kdf")


@pytest.fixture(autouse=True, scope="module")
def _kdf() -> object:
    yield from fast_kdf()


class Registry:
    """Registrations kept in a dict (the daemon's registry is tested over sockets)."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    async def register(self, request: RegisterTenantRequest, public_infos_key: bytes) -> bool:
        held = self.keys.get(request.tenant_id)
        if held is not None and held != public_infos_key:
            raise RegistrationConflict("Tenant exists with different $publicinfos key")
        self.keys[request.tenant_id] = public_infos_key
        return held is None

    def registered_tenants(self) -> list[str]:
        return sorted(self.keys)

    def admin_username(self, tenant_id: str) -> str | None:
        return None

    async def remove(self, tenant_id: str) -> bool:
        return self.keys.pop(tenant_id, None) is not None


class NoTenants:
    def server_info(self) -> None:
        return None

    def tenant(self, tenant_id: str) -> None:
        return None

    def device_deliveries(self, signing_public_key: str) -> list[dict[str, Any]]:
        return []


def _server(admin: UnlockedUserId, clock: Clock, allowed: list[str]) -> HttpServer:
    server_key = rsa.generate_rsa_keypair()
    auth = SystemAuth([SystemAdmin(admin.username, admin.private.signing_public_key)], clock=clock)
    api = SystemApi(
        auth,
        Registry(),
        lambda blob: unwrap_hybrid(blob, server_key),
        allowed_ips=parse_allowlist(allowed),
    )
    return HttpServer(NoTenants(), clock=clock, system=api)


async def _call(
    server: HttpServer, method: str, path: str, body: Any = None, token: str = "", remote: str = ""
) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else b""
    answer = await server.handle(
        HttpRequest(method, path, {}, headers, data, remote or "127.0.0.1")
    )
    assert isinstance(answer, HttpResponse)
    return answer.status, json.loads(answer.body)


async def _login(server: HttpServer, admin: UnlockedUserId, remote: str = "") -> tuple[int, Any]:
    ask = {"username": admin.username, "publicsignkey": admin.private.signing_public_key}
    status, body = await _call(server, "POST", "/system/auth/challenge", ask, remote=remote)
    if status != 200:
        return status, body
    signature = base64.b64encode(admin.sign(body["challenge"].encode())).decode()
    return await _call(
        server,
        "POST",
        "/system/auth/authenticate",
        {"challenge": body["challenge"], "signature": signature},
        remote=remote,
    )


async def test_tokens_expire_and_a_challenge_is_used_once() -> None:
    admin = unlock(identity("sysadmin"), password("sysadmin"))
    clock = Clock()
    server = _server(admin, clock, [])
    status, body = await _login(server, admin)
    assert status == 200 and body["success"] is True
    token = body["token"]
    assert (await _call(server, "GET", "/system/tenants", token=token)) == (200, {"tenants": []})
    clock.offset += 3601
    status, body = await _call(server, "GET", "/system/tenants", token=token)
    assert (status, body) == (401, {"error": "Invalid or expired token"})
    ask = {"username": admin.username, "publicsignkey": admin.private.signing_public_key}
    _, body = await _call(server, "POST", "/system/auth/challenge", ask)
    signed = base64.b64encode(admin.sign(body["challenge"].encode())).decode()
    login = {"challenge": body["challenge"], "signature": signed}
    assert (await _call(server, "POST", "/system/auth/authenticate", login))[0] == 200
    status, body = await _call(server, "POST", "/system/auth/authenticate", login)
    assert (status, body["success"]) == (401, False)


async def test_the_allowlist_keeps_other_addresses_out() -> None:
    admin = unlock(identity("sysadmin"), password("sysadmin"))
    server = _server(admin, Clock(), ["10.1.0.0/16", "::1"])
    assert (await _login(server, admin, remote="10.2.0.1"))[0] == 403
    assert (await _login(server, admin, remote="::ffff:10.1.2.3"))[0] == 200
    assert (await _login(server, admin, remote="::1"))[0] == 200


async def test_bad_registrations_are_400_and_a_wrong_wrap_cannot_register() -> None:
    admin = unlock(identity("sysadmin"), password("sysadmin"))
    server = _server(admin, Clock(), [])
    _, body = await _login(server, admin)
    token = body["token"]
    base = {"adminSigningPublicKey": "a", "adminEncryptionPublicKey": "b"}
    status, body = await _call(server, "POST", "/system/tenants/acme", base, token)
    assert (status, body) == (
        400,
        {"error": "encryptedPublicInfosKey or publicInfosKey is required"},
    )
    elsewhere = rsa.generate_rsa_keypair()  # wrapped to another server's key
    wrapped = base64.b64encode(rsa.encrypt(os.urandom(32), rsa.rsa_public_pem(elsewhere)))
    body = {**base, "encryptedPublicInfosKey": wrapped.decode()}
    status, answer = await _call(server, "POST", "/system/tenants/acme", body, token)
    assert status == 400 and "cannot be decrypted" in answer["error"]
    status, answer = await _call(server, "POST", "/system/tenants/Bad!", body, token)
    assert status == 400
    assert (await _call(server, "GET", "/system/tenants", token=token))[1] == {"tenants": []}
    with pytest.raises(HttpError):
        RegisterTenantRequest.from_json("acme", [])
