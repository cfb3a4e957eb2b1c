"""A sync node in its own process (``python -m tests.node_runner``), driven over JSON lines.

``prepare_*`` build on-disk tenant sessions in the test process (fast KDF, shared identities);
``NodeProcess`` starts a runner on one of them (in a network namespace or on loopback), sends
commands and collects the events it prints. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mindood.storefactory import OnDiskStoreFactory
from mindood.tenant import Tenant, TenantFactory
from tests.netns import Netns
from tests.sync_helpers import keyless_relay
from tests.tenant_helpers import admin_creds, identity, new_tenant, password, username


async def save(tenant: Tenant, name: str) -> None:
    await tenant.save_session(password(name))
    await tenant.close()
    await tenant.store_factory.close()


async def prepare_tenant(base: Path, names: list[str], *, relay: str | None = None) -> None:
    """Stores ``base/<name>``: the first name creates the tenant, the others join it."""
    first = (await new_tenant(OnDiskStoreFactory(base / names[0]))).tenant
    others = []
    for name in names[1:]:
        factory = TenantFactory(OnDiskStoreFactory(base / name))
        request = factory.create_join_request(identity(name), format="uri", label=name)
        response = await first.approve_join_request(request, **admin_creds())
        joined = await factory.join_tenant(response, user=identity(name), password=password(name))
        others.append((joined.tenant, name))
    if relay is not None:
        relay_tenant = await keyless_relay(first, relay, OnDiskStoreFactory(base / relay))
        source = first.get_directory().db.get_store()
        target = relay_tenant.get_directory().db.get_store()
        await target.put_entries(await source.get_entries(await source.get_all_ids()))
        await relay_tenant.refresh_directory()
        others.append((relay_tenant, relay))
    for tenant, name in [(first, names[0]), *others]:
        await save(tenant, name)


async def prepare_stranger(base: Path, name: str, tenant_id: str) -> None:
    """Another organisation's tenant with the same id (its own admin and user ``name``)."""
    created = await TenantFactory(OnDiskStoreFactory(base / name)).create_tenant(
        tenant_id=tenant_id,
        admin_name=username("otheradmin"),
        admin_password=password("otheradmin"),
        user_name=username(name),
        user_password=password(name),
        admin_user=identity("otheradmin"),
        app_user=identity(name),
    )
    await save(created.tenant, name)


def _write_config(base: Path, name: str, config: dict[str, Any]) -> Path:
    path = base / f"{name}-{len(list(base.glob(f'{name}-*.json')))}.json"
    path.write_text(json.dumps(config))
    return path


class NodeProcess:
    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.events: list[dict[str, Any]] = []
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(
        cls, netns: Netns | None, ns: str | None, base: Path, name: str, config: dict[str, Any]
    ) -> NodeProcess:
        full = {
            "store": str(base / name),
            "tenant": "acme",
            "password": password(name),
            "name": name,
            "test_kdf": True,
            **config,
        }
        path = _write_config(base, name, full)
        cmd = (sys.executable, str(Path(__file__).with_name("node_runner.py")), str(path))
        if netns is not None and ns is not None:
            process = await netns.spawn(ns, *cmd)
        else:
            process = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
            )
        node = cls(name, process)
        async with asyncio.timeout(60):
            await node.ready
        return node

    @property
    def port(self) -> int:
        return int(self.ready.result()["port"])

    @property
    def node_id(self) -> str:
        return str(self.ready.result()["node_id"])

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                break
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "reply" in message:
                await self.replies.put(message)
            elif message.get("event") == "ready" and not self.ready.done():
                self.ready.set_result(message)
            else:
                self.events.append(message)
        if not self.ready.done():
            self.ready.set_exception(RuntimeError(f"{self.name} exited before it was ready"))

    async def call(self, cmd: str, *, seconds: float = 30.0, **args: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        await self.process.stdin.drain()
        async with asyncio.timeout(seconds):
            return await self.replies.get()

    async def peers(self) -> list[dict[str, Any]]:
        return [p for p in (await self.call("peers"))["peers"] if p["connected"]]

    async def has(self, doc_id: str, expected: dict[str, Any]) -> bool:
        return (await self.call("get", id=doc_id))["data"] == expected

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(Exception):
                await self.call("stop", seconds=5)
            try:
                async with asyncio.timeout(15):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    """Poll ``check`` (bounded in time and count) until it holds."""
    async with asyncio.timeout(seconds):
        for _ in range(10_000):
            if await check():
                return
            await asyncio.sleep(0.2)
    raise AssertionError("condition never held")
