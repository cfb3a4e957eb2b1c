"""Real daemons finding and reaching each other: mDNS discovery and WebRTC, on loopback.

mDNS runs on 127.0.0.1 only (platform-notes: ``lo`` has no MULTICAST flag, so zeroconf is bound
to that address explicitly and never touches another interface). ICE host candidates are pinned
to 127.0.0.1 (aioice skips loopback otherwise). The namespace versions of these scenarios,
with NAT, STUN and TURN, are in tests/test_netns.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.daemon_helpers import (
    DaemonProcess,
    create_doc,
    create_tenant,
    has_doc,
    join,
    poll_until,
)
from tests.test_daemon_sync import (
    _address,
)

DISCOVERY = '[discovery]\ninterfaces = ["127.0.0.1"]\ngrace = 0.5\ndial_timeout = 2.0\n'
WEBRTC = (
    "[webrtc]\nenabled = true\nauto_connect = true\nauto_interval = 1.0\n"
    'host_addresses = ["127.0.0.1"]\n'
)


class Nodes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.daemons: list[DaemonProcess] = []

    def start(self, name: str, extra: str, peers: tuple[str, ...] = ()) -> DaemonProcess:
        text = '[network]\nlisten = ["127.0.0.1:0"]\n' + extra
        for address in peers:
            text += f'\n[[peers]]\naddress = "{address}"\n'
        config = self.root / f"{name}.toml"
        config.write_text(text)
        daemon = DaemonProcess(self.root, name=name, args=["--config", str(config)])
        daemon.start()
        self.daemons.append(daemon)
        return daemon


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    holder = Nodes(tmp_path)
    try:
        yield holder
    finally:
        for daemon in holder.daemons:
            daemon.close()


async def _transports(daemon: DaemonProcess) -> set[str]:
    async with await daemon.client() as client:
        return {p["transport"] for p in (await client.peers())["peers"]}


async def test_daemons_find_each_other_by_mdns_with_no_configured_peers(nodes: Nodes) -> None:
    a = nodes.start("a", DISCOVERY)
    await create_tenant(a)
    b = nodes.start("b", DISCOVERY)
    await join(a, b, "bob")
    doc_id = await create_doc(a, {"found": "by mdns"})
    await poll_until(has_doc(b, doc_id, {"found": "by mdns"}), seconds=60)


async def test_members_reach_each_other_over_webrtc_through_a_rendezvous(nodes: Nodes) -> None:
    hub = nodes.start("hub", "")
    await create_tenant(hub)
    hub_address = await _address(hub)
    a = nodes.start("a", WEBRTC, peers=(hub_address,))
    await join(hub, a, "alice2")
    b = nodes.start("b", WEBRTC, peers=(hub_address,))
    await join(hub, b, "bob")

    async def webrtc_up() -> bool:
        return "webrtc" in await _transports(a)

    await poll_until(webrtc_up, seconds=60)
    assert await _transports(b) >= {"webrtc", "tcp"}
    doc_id = await create_doc(a, {"path": "peer to peer"})
    await poll_until(has_doc(b, doc_id, {"path": "peer to peer"}))
