"""Hostile and broken clients against the real daemon: it answers with errors, closes only the
offending connection, and keeps serving everyone else."""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from mindood.client import MindoodClient
from mindood.rpc.errors import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    LIMIT_EXCEEDED,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    LimitExceededError,
)
from tests.daemon_helpers import DaemonProcess

MAX_FRAME = 64 * 1024
MAX_CONNECTIONS = 16
CONFIG = f"""
[limits]
max_frame_bytes = {MAX_FRAME}
max_connections = {MAX_CONNECTIONS}
max_inflight_per_connection = 4
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("fuzz")
    config = root / "mindood.toml"
    config.write_text(CONFIG)
    proc = DaemonProcess(root, args=["--config", str(config)])
    proc.start()
    try:
        yield proc
    finally:
        code = proc.stop()
        proc.notify.close()
        assert code == 0, proc.log()
        assert "Traceback" not in proc.log(), proc.log()


class Raw:
    """A bare socket to the daemon: send any bytes, read whatever comes back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)

    @classmethod
    async def open(cls, daemon: DaemonProcess) -> Raw:
        reader, writer = await asyncio.open_unix_connection(str(daemon.socket))
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_obj(self, obj: Any) -> None:
        await self.send(msgpack.packb(obj, use_bin_type=True))

    async def receive(self, within: float = 10.0) -> Any:
        """The next message, or None if the daemon closed the connection."""
        async with asyncio.timeout(within):
            while True:
                for obj in self.unpacker:
                    return obj
                data = await self.reader.read(65536)
                if not data:
                    return None
                self.unpacker.feed(data)

    async def closed_by_daemon(self, within: float = 10.0) -> bool:
        async with asyncio.timeout(within):
            while True:
                try:
                    data = await self.reader.read(65536)
                except ConnectionResetError:
                    return True
                if not data:
                    return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def assert_serving(daemon: DaemonProcess) -> None:
    async with await daemon.client() as client, asyncio.timeout(10):
        assert await client.ping() == "pong"


def error_code(message: Any) -> int:
    assert isinstance(message, list) and message[0] == 1 and message[3] is None, message
    code = message[2]["code"]
    assert isinstance(code, int)
    return code


async def test_wrong_shapes_get_errors_and_the_connection_goes_on(daemon: DaemonProcess) -> None:
    raw = await Raw.open(daemon)
    try:
        cases: list[tuple[Any, int | None, int]] = [
            (5, None, INVALID_REQUEST),
            ("hello", None, INVALID_REQUEST),
            ([], None, INVALID_REQUEST),
            ({"a": 1}, None, INVALID_REQUEST),
            ([0, "x", "ping", []], None, INVALID_REQUEST),
            ([0, -1, "ping", []], None, INVALID_REQUEST),
            ([0, 2**32, "ping", []], None, INVALID_REQUEST),
            ([0, 1, 5, []], 1, INVALID_REQUEST),
            ([0, 2, "", []], 2, INVALID_REQUEST),
            ([0, 3, "x" * 200, []], 3, INVALID_REQUEST),
            ([0, 4, "ping", {}], 4, INVALID_REQUEST),
            ([0, 5, "ping", [1, 2]], 5, INVALID_REQUEST),
            ([0, 6, "ping", ["x"]], 6, INVALID_REQUEST),
            ([0, 7, "ping"], 7, INVALID_REQUEST),
            ([1, 8, None, "result"], 8, INVALID_REQUEST),
            ([9, 9, "ping", []], None, INVALID_REQUEST),
            ([True, 10, "ping", []], None, INVALID_REQUEST),
            ([0, 11, "no.such.method", []], 11, METHOD_NOT_FOUND),
            ([0, 12, "doc.get", [{"tenant": 5, "db": "x", "doc_id": "y"}]], 12, INVALID_PARAMS),
            ([0, 13, "doc.get", [{"tenant": "a"}]], 13, INVALID_PARAMS),
            (
                [0, 14, "doc.change", [{"tenant": "a", "db": "b", "doc_id": "c", "ops": 7}]],
                14,
                INVALID_PARAMS,
            ),
            ([0, 15, "tenant.unlock", [{"tenant": "a", "password": b"bytes"}]], 15, INVALID_PARAMS),
            ([0, 16, "subscribe", [{"topics": ["nope"]}]], 16, INVALID_PARAMS),
            (
                [0, 17, "tenant.import_session", [{"session": "str", "password": "p"}]],
                17,
                INVALID_PARAMS,
            ),
            ([0, 18, "ping", [{"unexpected": 1}]], 18, INVALID_PARAMS),
        ]
        for obj, msgid, code in cases:
            await raw.send_obj(obj)
            reply = await raw.receive()
            assert reply is not None, f"connection closed after {obj!r}"
            assert reply[1] == msgid, (obj, reply)
            assert error_code(reply) == code, (obj, reply)
        # A notification to the daemon gets no answer, even for an unknown method ...
        await raw.send_obj([2, "no.such.method", []])
        await raw.send_obj([2, "ping", []])
        # ... and the same connection still works.
        await raw.send_obj([0, 99, "ping", []])
        assert await raw.receive() == [1, 99, None, "pong"]
    finally:
        await raw.close()
    await assert_serving(daemon)


async def test_garbage_closes_only_that_connection(daemon: DaemonProcess) -> None:
    rng = random.Random(20240501)
    async with await daemon.client() as bystander:
        for _ in range(40):
            raw = await Raw.open(daemon)
            try:
                await raw.send(rng.randbytes(rng.randint(1, 2048)))
                # Random bytes may decode as odd values (answered), be undecodable (answered,
                # then closed) or look like the start of a long value (the daemon waits).
                raw.writer.write_eof()
                while (reply := await raw.receive()) is not None:
                    assert reply[0] == 1 and reply[3] is None
                    assert error_code(reply) in (INVALID_REQUEST, PARSE_ERROR, LIMIT_EXCEEDED)
            finally:
                await raw.close()
            assert await bystander.ping() == "pong"


async def test_undecodable_and_nested_frames_are_parse_errors(daemon: DaemonProcess) -> None:
    for payload in (b"\xc1", b"\x91" * 5000 + b"\xc0"):  # 0xc1 is never used; deep nesting
        raw = await Raw.open(daemon)
        try:
            await raw.send(payload)
            reply = await raw.receive()
            assert reply is not None and reply[1] is None
            assert error_code(reply) == PARSE_ERROR
            assert await raw.closed_by_daemon()
        finally:
            await raw.close()
    await assert_serving(daemon)


async def test_truncated_frames_are_harmless(daemon: DaemonProcess) -> None:
    frame = msgpack.packb([0, 1, "doc.get", [{"tenant": "a", "db": "b", "doc_id": "c" * 50}]])
    for cut in range(1, len(frame), 7):
        raw = await Raw.open(daemon)
        try:
            await raw.send(frame[:cut])
            raw.writer.write_eof()  # the daemon sees the end of the stream mid-frame
            assert await raw.receive() is None
        finally:
            await raw.close()
    await assert_serving(daemon)


async def test_huge_frames_are_refused(daemon: DaemonProcess) -> None:
    # A header announcing 100 MB, then data: refused once the buffer limit is reached.
    raw = await Raw.open(daemon)
    try:
        header = b"\x94\x00\x01\xa4ping\x91\xc6" + struct.pack(">I", 100_000_000)
        # The daemon may close before we finish writing.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await raw.send(header + b"x" * (MAX_FRAME * 2))
        reply = await raw.receive()
        assert reply is not None and error_code(reply) == LIMIT_EXCEEDED
        assert await raw.closed_by_daemon()
    finally:
        await raw.close()
    # A real frame over max_frame_bytes: the buffer limit trips.
    raw = await Raw.open(daemon)
    try:
        big = msgpack.packb([0, 1, "ping", [{"blob": b"x" * (MAX_FRAME * 2)}]])
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            await raw.send(big)
        reply = await raw.receive()
        assert reply is not None and error_code(reply) in (LIMIT_EXCEEDED, PARSE_ERROR)
    finally:
        await raw.close()
    await assert_serving(daemon)


async def test_hammering_client_does_not_starve_others(daemon: DaemonProcess) -> None:
    count = 3000
    hammer = await Raw.open(daemon)
    try:
        frames = b"".join(
            msgpack.packb([0, i, "ping" if i % 3 else "no.such", []]) for i in range(count)
        )
        answered: set[int] = set()

        async def collect() -> None:
            while len(answered) < count:
                reply = await hammer.receive(within=30)
                assert reply is not None
                answered.add(reply[1])
                if reply[1] % 3:
                    assert reply[2:] == [None, "pong"]
                else:
                    assert error_code(reply) == METHOD_NOT_FOUND

        async with asyncio.TaskGroup() as tg:
            tg.create_task(hammer.send(frames))
            tg.create_task(collect())
            # While the hammer's requests pile up, another client is served promptly.
            async with await daemon.client() as other:
                for _ in range(20):
                    async with asyncio.timeout(5):
                        assert await other.ping() == "pong"
                        assert (await other.status())["rpc"]["connections"] >= 2
        assert len(answered) == count
    finally:
        await hammer.close()


async def test_a_client_that_never_reads_blocks_nobody(daemon: DaemonProcess) -> None:
    silent = await Raw.open(daemon)
    try:
        frame = msgpack.packb([0, 1, "rpc.methods", []])
        # Far more answers than socket buffers hold: the daemon must stop reading from this
        # client (bounded in-flight requests) rather than buffer without limit or block others.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(2):
                while True:
                    await silent.send(frame * 200)
        await assert_serving(daemon)
    finally:
        silent.writer.transport.abort()
    await assert_serving(daemon)


async def test_connection_limit(daemon: DaemonProcess) -> None:
    # The probe that saw the daemon idle stays open and counts as the first connection: closing
    # it would be noticed asynchronously and could make the limit trip one connection early.
    probe = await daemon.client()
    clients: list[MindoodClient] = [probe]
    try:
        async with asyncio.timeout(10):
            # Polled: the daemon publishes no event for "a connection ended" (bounded above).
            while (await probe.status())["rpc"]["connections"] > 1:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        while True:
            client = await daemon.client()
            clients.append(client)
            try:
                async with asyncio.timeout(10):
                    await client.ping()
            except Exception as exc:
                assert getattr(exc, "code", None) == LIMIT_EXCEEDED, exc
                break
            assert len(clients) <= MAX_CONNECTIONS
        assert len(clients) == MAX_CONNECTIONS + 1
    finally:
        for client in clients:
            await client.close()
    # The daemon notices the closed connections asynchronously; until then it may still refuse.
    async with asyncio.timeout(10):
        while True:
            try:
                await assert_serving(daemon)
                break
            except LimitExceededError:
                await asyncio.sleep(0.05)
