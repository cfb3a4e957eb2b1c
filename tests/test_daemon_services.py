"""The seam for the sync service: a service runs in the daemon's TaskGroup, reports peers,
publishes sync progress, answers ``sync.*`` and hears reloads; the daemon cancels it on stop.

The daemon runs in this test's event loop (no subprocess), on a temporary data directory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgpack
import pytest

from mindood.client import MindoodClient
from mindood.daemon.config import Config, Limits
from mindood.daemon.daemon import Daemon, DaemonOptions
from mindood.daemon.events import DocChanged, PeerDisconnected, SyncProgress
from mindood.daemon.node import Node
from mindood.daemon.services import PeerInfo
from mindood.rpc.errors import UnavailableError


class FakeSync:
    """Stands in for the sync service the lead plugs in later."""

    name = "fake-sync"

    def __init__(self, node: Node, started: asyncio.Event) -> None:
        self.node = node
        self.started = started
        self.reloads: list[Config] = []
        self.cancelled = False

    async def run(self) -> None:
        node = self.node
        node.set_sync(self)
        node.peers.connected(PeerInfo("peer-1", "tcp://10.0.0.5:7890", ("acme",), "tcp"))
        self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            node.set_sync(None)
            raise

    async def wait_started(self) -> None:
        await self.started.wait()

    async def reload(self, config: Config) -> None:
        self.reloads.append(config)

    def describe(self) -> dict[str, Any]:
        return {"peers": len(self.node.peers)}

    def status(self) -> dict[str, Any]:
        return {"enabled": True, "peers": len(self.node.peers)}

    async def sync_now(
        self, tenant: str | None, db: str | None, peer: str | None
    ) -> dict[str, Any]:
        self.node.bus.publish(
            SyncProgress("peer-1", tenant or "acme", db or "contacts", 3, 4, True)
        )
        self.node.peers.disconnected("peer-1", "done")
        return {"started": 1, "tenant": tenant}


async def test_a_service_plugs_into_the_daemon(tmp_path: Path) -> None:
    started = asyncio.Event()
    fakes: list[FakeSync] = []

    def make(node: Node) -> FakeSync:
        fakes.append(FakeSync(node, started))
        return fakes[-1]

    options = DaemonOptions(data_dir=tmp_path / "data", socket=tmp_path / "s.sock")
    daemon = Daemon(options, {}, Config(), services=[make])
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(daemon.run())
        async with asyncio.timeout(20):
            await started.wait()
        [fake] = fakes
        async with await MindoodClient.connect(options.socket) as client:
            peers = await client.peers()
            assert [p["peer_id"] for p in peers["peers"]] == ["peer-1"]
            status = await client.status()
            assert status["services"] == [{"name": "fake-sync", "peers": 1}]
            assert status["sync"] == {"enabled": True, "peers": 1}
            assert status["peers"]["connected"] == 1

            sub = await client.subscribe(["sync.progress", "peer.disconnected"])
            assert await client.sync_now(tenant="acme") == {"started": 1, "tenant": "acme"}
            async with asyncio.timeout(10):
                progress, gone = await sub.get(), await sub.get()
            assert progress.method == "sync.progress" and progress.params["received"] == 4
            assert gone.method == PeerDisconnected.topic and gone.params["reason"] == "done"

            result = await client.reload_config()
            assert result["ok"] is True and len(fake.reloads) == 1
        daemon.stop()
        daemon.stop()  # idempotent
        assert await run == 0
    assert fake.cancelled
    assert not options.socket.exists()


async def test_without_a_sync_service_sync_methods_are_unavailable(tmp_path: Path) -> None:
    options = DaemonOptions(data_dir=tmp_path / "data", socket=tmp_path / "s.sock")
    daemon = Daemon(options, {}, Config())
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(daemon.run())
        async with asyncio.timeout(20):
            await daemon.ready.wait()
        async with await MindoodClient.connect(options.socket) as client:
            with pytest.raises(UnavailableError):
                await client.sync_status()
            with pytest.raises(UnavailableError):
                await client.sync_now()
            assert await client.peers() == {"peers": [], "configured": [], "upstreams": []}
        daemon.stop()
        assert await run == 0


async def test_a_subscriber_that_does_not_read_never_blocks_the_daemon(tmp_path: Path) -> None:
    options = DaemonOptions(data_dir=tmp_path / "data", socket=tmp_path / "s.sock")
    config = Config(limits=Limits(subscription_queue=4))
    daemon = Daemon(options, {}, config)
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(daemon.run())
        async with asyncio.timeout(20):
            await daemon.ready.wait()
        assert daemon.node is not None
        reader, writer = await asyncio.open_unix_connection(str(options.socket))
        try:
            writer.write(msgpack.packb([0, 1, "subscribe", [{"topics": ["doc.changed"]}]]))
            await writer.drain()
            unpacker = msgpack.Unpacker(raw=False)
            async with asyncio.timeout(10):
                while True:
                    unpacker.feed(await reader.read(65536))
                    replies = list(unpacker)
                    if replies:
                        break
            assert replies[0][:3] == [1, 1, None]
            # Far more than the socket buffers hold, while this client reads nothing.
            ids = tuple(f"{n:024x}" for n in range(100))
            async with await MindoodClient.connect(options.socket) as other:
                for round_ in range(20):
                    for _ in range(100):
                        daemon.node.bus.publish(DocChanged("acme", "contacts", ids))
                    async with asyncio.timeout(5):
                        assert await other.ping() == "pong", round_
            # Reading now, the subscriber learns that it missed events.
            lagged = None
            async with asyncio.timeout(20):
                while lagged is None:
                    unpacker.feed(await reader.read(1 << 20))
                    for message in unpacker:
                        if message[0] == 2 and message[1] == "lagged":
                            lagged = message[2][0]
            assert lagged["dropped"] > 0 and lagged["subscription"] == replies[0][3]["subscription"]
        finally:
            writer.close()
        daemon.stop()
        assert await run == 0
