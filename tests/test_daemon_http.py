"""A real ``mindood run`` daemon serving the HTTP sync API (``[http]``), plain and over TLS.

A device joined through the daemon's admin RPC logs in over HTTP, pushes a document that the
daemon then reads (the same admission and apply as a native push), and follows the daemon's
own writes on the SSE stream.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mindood import InMemoryStoreFactory, TenantFactory
from mindood.tenant import Tenant
from protocol.http import wire
from tests.daemon_helpers import (
    ADMIN_PW,
    HTTP_LISTEN,
    TENANT,
    DaemonProcess,
    create_tenant,
    http_address,
    start_daemon,
)
from tests.http_helpers import Client
from tests.tenant_helpers import fast_kdf, identity, password

pytestmark = pytest.mark.usefixtures("_kdf")


@pytest.fixture(autouse=True, scope="module")
def _kdf() -> object:
    yield from fast_kdf()


def _start(tmp_path: Path, daemons: list[DaemonProcess], http_lines: list[str]) -> DaemonProcess:
    return start_daemon(tmp_path, daemons, "d", [*HTTP_LISTEN, *http_lines])


async def _setup(daemon: DaemonProcess) -> tuple[str, Tenant]:
    """The daemon's http address, and bob's device (its own store) joined through the daemon."""
    await create_tenant(daemon)
    address = await http_address(daemon)
    async with await daemon.client() as client:
        await client.db_create(TENANT, "todos")
        factory = TenantFactory(InMemoryStoreFactory())
        request = factory.create_join_request(identity("bob"), format="uri", label="bob's laptop")
        response = await client.tenant_approve(TENANT, request, admin_password=ADMIN_PW)
    joined = await factory.join_tenant(response, user=identity("bob"), password=password("bob"))
    return address, joined.tenant


async def _exercise(address: str, bob: Tenant, daemon: DaemonProcess, connector: object) -> None:
    async with aiohttp.ClientSession(connector=connector) as session:  # type: ignore[arg-type]
        client = Client(session, address, bob)
        status, info, _ = await client.raw("GET", "/.well-known/mindoodb-server-info")
        assert status == 200 and "BEGIN PUBLIC KEY" in info["encryptionPublicKey"]
        await client.login()
        url = f"{address}/{TENANT}/sync/docs/events?dbId=todos"
        async with session.get(url, headers=client.auth_headers()) as events:
            assert events.status == 200
            parser = wire.SseParser()
            seen: list[wire.SseEvent] = []

            async def wait_for(name: str) -> wire.SseEvent:
                async with asyncio.timeout(15):
                    while True:
                        for event in seen:
                            if event.event == name:
                                seen.remove(event)
                                return event
                        seen.extend(parser.feed(await events.content.readany()))

            await wait_for("hello")
            # bob pushes a document written on his device; the daemon reads it
            db = await bob.open_db("todos")
            doc_id = (await db.create_document({"title": "from http"})).get_id()
            store = db.get_store()
            entries = await store.get_entries(await store.get_all_ids())
            status, body = await client.sync_call(
                "putEntries", wire.PutEntriesRequest("todos", tuple(entries)).to_json()
            )
            assert status == 200 and body["rejected"] == [], body
            async with await daemon.client() as rpc:
                assert (await rpc.doc_get(TENANT, "todos", doc_id))["data"] == {
                    "title": "from http"
                }
                # a write on the daemon reaches the stream as a change event
                await rpc.doc_create(TENANT, "todos", {"title": "from rpc"})
            change = wire.ChangeEvent.from_data((await wait_for("change")).data)
            assert change is not None and change.db_id == "todos"
        status, body = await client.sync_call("scanEntriesSince", {"dbId": "todos", "cursor": None})
        assert status == 200 and len(body["entries"]) >= len(entries) + 1
        status, body = await client.sync_call("putEntries", b"x" * (6 * 1024 * 1024))
        assert status == 413 and body == {"error": "Request body too large"}


async def test_the_daemon_serves_http_when_configured(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    daemon = _start(tmp_path, daemons, ['name = "edge-1"'])
    address, bob = await _setup(daemon)
    assert address.startswith("http://127.0.0.1:")
    await _exercise(address, bob, daemon, aiohttp.TCPConnector())
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{address}/.well-known/mindoodb-server-info") as r,
    ):
        first = json.loads(await r.read())
    assert first["name"] == "edge-1"
    daemon.restart()  # the server identity is kept
    async with await daemon.client() as client:
        [address] = (await client.sync_status())["http"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{address}/.well-known/mindoodb-server-info") as r,
    ):
        again = json.loads(await r.read())
    assert again["signingPublicKey"] == first["signingPublicKey"]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "http.crt", directory / "http.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_the_daemon_serves_https_with_the_configured_certificate(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    cert, key = _self_signed(tmp_path)
    daemon = _start(tmp_path, daemons, [f'tls_cert = "{cert}"', f'tls_key = "{key}"'])
    address, bob = await _setup(daemon)
    assert address.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(cert))
    await _exercise(address, bob, daemon, aiohttp.TCPConnector(ssl=context))
    # plain HTTP to the TLS port gets no answer
    plain = address.replace("https://", "http://")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientError):
            async with session.get(f"{plain}/health") as r:
                await r.read()


async def test_the_daemon_lets_configured_web_origins_call_its_http_api(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    app = "https://app.example.com"
    daemon = _start(tmp_path, daemons, [f'cors_origins = ["{app}"]'])
    address, bob = await _setup(daemon)
    preflight = {"Origin": app, "Access-Control-Request-Method": "POST"}
    async with aiohttp.ClientSession() as session:
        async with session.options(f"{address}/{TENANT}/sync/docs/scanEntriesSince") as r:
            assert "Access-Control-Allow-Origin" not in r.headers  # not a preflight
        url = f"{address}/{TENANT}/sync/docs/scanEntriesSince"
        async with session.options(url, headers=preflight) as r:
            assert r.status == 204 and r.headers["Access-Control-Allow-Origin"] == app
        client = Client(session, address, bob)
        await client.login()
        async with session.post(
            url,
            json={"dbId": "todos", "cursor": None},
            headers={**client.auth_headers(), "Origin": app},
        ) as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == app
        async with session.get(
            f"{address}/.well-known/mindoodb-server-info",
            headers={"Origin": "https://evil.example"},
        ) as r:
            assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers


async def test_the_daemon_applies_its_configured_rate_limits(
    tmp_path: Path, daemons: list[DaemonProcess]
) -> None:
    daemon = _start(tmp_path, daemons, ["[http.rate_limits]", "sync = { max = 3 }"])
    address, bob = await _setup(daemon)
    async with aiohttp.ClientSession() as session:
        client = Client(session, address, bob)
        await client.login()
        statuses = [
            (await client.sync_call("getStoreHead", {"dbId": "todos"}))[0] for _ in range(5)
        ]
    assert statuses == [200, 200, 200, 429, 429]
    async with await daemon.client() as rpc:  # the daemon itself is unaffected, and says so
        status = await rpc.sync_status()
    assert status["http"] == [address] and status["http_refused"] == {"sync": 2}
    assert "refused over rate limits: sync 2" in daemon.cli("status").stdout
