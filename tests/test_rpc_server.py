"""The RPC server in process: a private socket, peer uid checks, errors, graceful shutdown."""

from __future__ import annotations

import asyncio
import socket
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from mindood.client import DaemonConnectionError, MindoodClient
from mindood.rpc.connection import Connection
from mindood.rpc.errors import (
    InternalError,
    LimitExceededError,
    MethodNotFoundError,
    PermissionDeniedError,
    ServerError,
)
from mindood.rpc.server import RpcServer, ServerLimits, SocketBindError, bind_private_socket
from mindood.rpc.wire import FrameLimits, make_unpacker, request_frame


class Toy:
    """A dispatcher with a method that waits until the test releases it."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, method: str, params: dict[str, Any], conn: Connection) -> Any:
        if method == "echo":
            return params
        if method == "slow":
            self.started.set()
            await self.release.wait()
            return "finished"
        if method == "bug":
            raise RuntimeError("a bug in a handler")
        if method == "unencodable":
            return object()
        if method == "refuse":
            raise ServerError("nope")
        raise MethodNotFoundError(method)


@asynccontextmanager
async def serving(path: Path, **kwargs: Any) -> AsyncIterator[tuple[RpcServer, Toy]]:
    toy = Toy()
    server = RpcServer(path, toy, **kwargs)
    server.bind()
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(server.serve())
        try:
            yield server, toy
        finally:
            server.close()
            await task


async def test_socket_is_private_and_errors_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "run" / "s.sock"
    async with serving(path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        async with await MindoodClient.connect(path) as client:
            assert await client.call("echo", {"a": [1, b"x"]}) == {"a": [1, b"x"]}
            with pytest.raises(InternalError, match="internal error"):
                await client.call("bug")
            with pytest.raises(InternalError, match="unencodable"):
                await client.call("unencodable")
            with pytest.raises(ServerError, match="nope"):
                await client.call("refuse")
            with pytest.raises(MethodNotFoundError):
                await client.call("other")
            assert await client.call("echo") == {}  # the connection survived all of it
    assert not path.exists()


async def test_other_uids_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    async with serving(path, allowed_uids={99_999}), await MindoodClient.connect(path) as client:
        with pytest.raises(PermissionDeniedError):
            await client.call("echo")


async def test_a_refused_client_that_writes_first_still_reads_why(tmp_path: Path) -> None:
    # Linux resets a Unix socket closed with unread data, and asyncio then raises the reset
    # before handing over what had arrived: the refusal must outlive the client's request.
    path = tmp_path / "s.sock"
    async with serving(path, allowed_uids={99_999}):
        reader, writer = await asyncio.open_unix_connection(str(path))
        try:
            writer.write(request_frame(1, "echo", {}))
            await writer.drain()
            await asyncio.sleep(0.3)  # the server refuses meanwhile
            async with asyncio.timeout(10):
                data = await reader.read()
        finally:
            writer.close()
        unpacker = make_unpacker(FrameLimits())
        unpacker.feed(data)
        [frame] = list(unpacker)
        assert frame[1] is None and frame[2]["code"] == PermissionDeniedError.code


async def test_the_connection_limit_refuses_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    limits = ServerLimits(max_connections=1)
    async with serving(path, limits=limits), await MindoodClient.connect(path) as first:
        assert await first.call("echo") == {}
        for _ in range(5):
            async with await MindoodClient.connect(path) as extra:
                with pytest.raises(LimitExceededError, match="too many connections"):
                    await extra.call("echo")
        assert await first.call("echo") == {}


async def test_shutdown_answers_requests_in_flight(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    toy = Toy()
    server = RpcServer(path, toy, shutdown_grace=10)
    server.bind()
    async with asyncio.TaskGroup() as tg:
        serve = tg.create_task(server.serve())
        async with await MindoodClient.connect(path) as client:
            call = tg.create_task(client.call("slow"))
            await toy.started.wait()
            server.close()  # stop accepting while "slow" is running
            await asyncio.sleep(0)
            assert not serve.done()
            toy.release.set()
            assert await call == "finished"
            await serve
    assert not path.exists()


async def test_shutdown_grace_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    toy = Toy()
    server = RpcServer(path, toy, shutdown_grace=0.2)
    server.bind()
    async with asyncio.TaskGroup() as tg:
        serve = tg.create_task(server.serve())
        async with await MindoodClient.connect(path) as client:

            async def slow_call() -> None:
                with pytest.raises(DaemonConnectionError):
                    await client.call("slow")

            call = tg.create_task(slow_call())
            await toy.started.wait()
            server.close()
            async with asyncio.timeout(10):
                await serve  # cut off after the grace period, not after "slow" ends
            await call


def test_existing_paths(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as leftover:
        leftover.bind(str(stale))  # bound, never listening: what a crashed daemon leaves
    fresh = bind_private_socket(stale)
    try:
        with pytest.raises(SocketBindError, match="already listening"):
            bind_private_socket(stale)
    finally:
        fresh.close()
    regular = tmp_path / "file"
    regular.write_text("keep me")
    with pytest.raises(SocketBindError, match="not a socket"):
        bind_private_socket(regular)
    assert regular.read_text() == "keep me"
    with pytest.raises(SocketBindError, match="longer than"):
        bind_private_socket(tmp_path / ("x" * 120))
