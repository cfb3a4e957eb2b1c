"""A node serving the HTTP sync API on 127.0.0.1, and a bare aiohttp client that logs in."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mindood.identity import UnlockedUserId
from mindood.sync import SyncNode
from mindood.sync.http_serve import HttpGateway, ServerIdentity
from mindood.tenant import Tenant
from protocol.http import wire
from protocol.http.ratelimit import RateLimits
from tests.sync_helpers import sync_node
from tests.tenant_helpers import TENANT_ID
from transports.http_server import HttpListener, listen_http


@dataclass
class Clock:
    """Wall time plus an offset a test moves forward."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Served:
    sync: SyncNode
    gateway: HttpGateway
    listener: HttpListener
    clock: Clock
    publisher: asyncio.Task[None]
    url: str = ""

    async def aclose(self) -> None:
        await self.listener.aclose()
        self.publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.publisher
        await self.sync.aclose()


_IDENTITY: dict[str, ServerIdentity] = {}


def server_identity(tmp_path: Path) -> ServerIdentity:
    """One server identity per process (RSA keygen is slow), stored under ``tmp_path``."""
    if "id" not in _IDENTITY:
        _IDENTITY["id"] = ServerIdentity.load_or_create(tmp_path / "http-identity")
    return _IDENTITY["id"]


async def serve(
    tmp_path: Path,
    tenant: Tenant,
    *,
    name: str = "srv",
    databases: list[str] | None = None,
    body_limit: int = wire.DEFAULT_BODY_LIMIT,
    heartbeat: float = 30.0,
    identity: bool = True,
    rate_limits: RateLimits | None = None,
) -> Served:
    sync = sync_node(tmp_path, name)
    await sync.add_tenant(tenant, databases or ["todos"])
    clock = Clock()
    gateway = HttpGateway(
        sync,
        server_identity(tmp_path) if identity else None,
        name=name,
        body_limit=body_limit,
        clock=clock,
        rate_limits=rate_limits,
    )
    listener = await listen_http(
        gateway.handle,
        "127.0.0.1",
        0,
        body_limit=body_limit,
        heartbeat_seconds=heartbeat,
        gate=gateway.gate,
    )
    publisher = asyncio.create_task(gateway.run(), name="test-http-publisher")
    assert listener.bound is not None
    host, port = listener.bound
    return Served(sync, gateway, listener, clock, publisher, f"http://{host}:{port}")


@dataclass
class Client:
    """Speaks the HTTP API as a device of ``tenant`` (its signing key, its RSA key)."""

    session: aiohttp.ClientSession
    url: str
    #: A tenant (its device identity) or an unlocked identity (the admin's, say).
    who: Tenant | UnlockedUserId
    username: str | None = None
    token: str = ""
    tenant_id: str = field(default=TENANT_ID)

    @property
    def user(self) -> UnlockedUserId:
        return self.who.user if isinstance(self.who, Tenant) else self.who

    @property
    def signing_key(self) -> str:
        return self.user.private.signing_public_key

    def sign(self, data: bytes) -> bytes:
        return self.user.sign(data)

    def unwrap(self) -> Callable[[bytes], bytes]:
        return self.user.unwrap_key

    async def raw(
        self, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        async with self.session.request(method, self.url + path, data=data, headers=hdrs) as r:
            raw = await r.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw
            return r.status, parsed, r

    async def challenge(self, **body: Any) -> tuple[int, Any]:
        status, parsed, _ = await self.raw("POST", f"/{self.tenant_id}/auth/challenge", body)
        return status, parsed

    async def authenticate(self, challenge: str, signature: bytes) -> tuple[int, Any]:
        body = {"challenge": challenge, "signature": base64.b64encode(signature).decode()}
        status, parsed, _ = await self.raw("POST", f"/{self.tenant_id}/auth/authenticate", body)
        return status, parsed

    async def login(self) -> str:
        ask: dict[str, Any] = {"signingPublicKey": self.signing_key}
        if self.username is not None:
            ask["username"] = self.username
        status, body = await self.challenge(**ask)
        assert status == 200, body
        status, body = await self.authenticate(
            body["challenge"], self.sign(body["challenge"].encode())
        )
        assert status == 200 and body["success"] is True, body
        self.token = body["token"]
        return self.token

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def sync_call(
        self,
        op: str,
        body: Any = None,
        *,
        kind: str = "docs",
        method: str = "POST",
        query: str = "",
    ) -> tuple[int, Any]:
        path = f"/{self.tenant_id}/sync/{kind}/{op}{query}"
        status, parsed, _ = await self.raw(method, path, body, headers=self.auth_headers())
        return status, parsed

    async def sync_bytes(
        self, op: str, data: bytes, *, content_type: str, kind: str = "docs"
    ) -> tuple[int, bytes, str]:
        path = f"/{self.tenant_id}/sync/{kind}/{op}"
        headers = {**self.auth_headers(), "Content-Type": content_type}
        async with self.session.post(self.url + path, data=data, headers=headers) as r:
            return r.status, await r.read(), r.headers.get("Content-Type", "")


@contextlib.asynccontextmanager
async def app_on_loopback(app: web.Application) -> AsyncIterator[str]:
    """``app`` served on 127.0.0.1 (a free port) until the block ends; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for the test (closed after it)."""
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def servers() -> AsyncIterator[list[Served]]:
    """Served nodes the test appends to; closed after it."""
    held: list[Served] = []
    yield held
    for served in held:
        await served.aclose()
