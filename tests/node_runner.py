"""``python -m tests.node_runner CONFIG.json``: one sync node as a process, driven by JSON lines.

For tests across network namespaces and for benchmarks: it opens a tenant session saved on disk
(``Tenant.save_session``), listens, dials the configured peers, starts discovery and WebRTC as
configured, and then talks JSON lines: events and replies on stdout, commands on stdin
(``create``, ``get``, ``peers``, ``status``, ``connect``, ``stop``). The daemon does the same
job for real deployments; this is the smallest complete harness around ``SyncNode``.

Config keys: ``store`` (directory), ``tenant``, ``password``, ``name``, ``listen`` ([host,
port]), ``peers`` ([[host, port], ...]), ``databases``, ``adopt_databases``, ``discovery``
(``interfaces``, ``dial_timeout``, ``grace``), ``webrtc`` (``enabled``, ``auto_connect``,
``auto_interval``, ``relay_only``, ``host_addresses``, ``ice_servers`` as
``[{"urls": [...], "username": ..., "credential": ...}]``), ``test_kdf`` (honour the test-only
PBKDF2 switch).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mindood.crypto.kdf import apply_test_pbkdf2_iterations_from_env
from mindood.storefactory import OnDiskStoreFactory
from mindood.sync.discovery import DiscoveryConfig
from mindood.sync.members import node_id
from mindood.sync.network import NetworkConfig, PeerNetwork
from mindood.sync.node import SyncNode
from mindood.sync.webrtc_dial import WebRtcConfig
from mindood.tenant import Tenant, TenantFactory
from transports.tasks import cancel_and_wait
from transports.tcp import Backoff, NodeCertificate
from transports.webrtc import IceServer

_MAX_COMMAND = 1024 * 1024


def network_config(raw: dict[str, Any]) -> NetworkConfig:
    """The ``discovery``/``webrtc`` tables of a runner (or daemon) config as dataclasses."""
    disc = raw.get("discovery") or {}
    rtc = raw.get("webrtc") or {}
    servers = tuple(
        IceServer(
            urls=tuple(s["urls"]) if isinstance(s["urls"], list) else (s["urls"],),
            username=s.get("username"),
            credential=s.get("credential"),
        )
        for s in rtc.get("ice_servers", [])
    )
    hosts = rtc.get("host_addresses")
    return NetworkConfig(
        discovery=DiscoveryConfig(
            interfaces=tuple(disc.get("interfaces", ())),
            advertise=bool(disc.get("advertise", True)),
            dial_timeout=float(disc.get("dial_timeout", 3.0)),
            grace=float(disc.get("grace", 3.0)),
        ),
        webrtc=WebRtcConfig(
            enabled=bool(rtc.get("enabled", False)),
            ice_servers=servers,
            relay_only=bool(rtc.get("relay_only", False)),
            host_addresses=tuple(hosts) if hosts is not None else None,
            connect_timeout=float(rtc.get("connect_timeout", 30.0)),
            accept=bool(rtc.get("accept", True)),
            auto_connect=bool(rtc.get("auto_connect", False)),
            auto_interval=float(rtc.get("auto_interval", 10.0)),
        ),
        backoff=Backoff(initial=0.2, maximum=float(raw.get("max_backoff", 5.0))),
    )


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


class Runner:
    def __init__(self, config: dict[str, Any], tenant: Tenant, node: SyncNode) -> None:
        self.config = config
        self.tenant = tenant
        self.node = node
        self.network = PeerNetwork(node, network_config(config))
        self.stop = asyncio.Event()

    async def handle(self, command: dict[str, Any]) -> dict[str, Any]:
        kind = command.get("cmd")
        if kind == "create":
            db = await self.tenant.open_db(str(command.get("db", "todos")))
            doc = await db.create_document(dict(command.get("data") or {}))
            return {"id": doc.get_id()}
        if kind == "get":
            db = await self.tenant.open_db(str(command.get("db", "todos")))
            found = await db.find_document(str(command["id"]))
            return {"data": None if found is None else dict(found.get_data())}
        if kind == "peers":
            return {"peers": [_peer(p) for p in self.node.peers()]}
        if kind == "status":
            return {"network": self.network.status()}
        if kind == "connect":
            try:
                await self.node.connect(
                    str(command["host"]),
                    int(command["port"]),
                    self.tenant.tenant_id,
                    connect_timeout=float(command.get("timeout", 3.0)),
                )
            except Exception as exc:
                return {"connected": False, "error": f"{type(exc).__name__}: {exc}"}
            return {"connected": True}
        if kind == "stop":
            self.stop.set()
            return {}
        return {"error": f"unknown command {kind!r}"}


def _peer(status: Any) -> dict[str, Any]:
    return {
        "address": status.address,
        "transport": status.transport,
        "node_id": node_id(status.identity).hex(),
        "direction": status.direction,
        "connected": status.connected,
        "synced": status.synced,
        "transferred": status.transferred,
    }


async def _commands(runner: Runner) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_MAX_COMMAND)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while not runner.stop.is_set():
        line = await reader.readline()
        if not line:
            runner.stop.set()
            return
        try:
            command = json.loads(line)
            result = await runner.handle(command)
            _emit({"reply": command.get("cmd"), "tag": command.get("tag"), **result})
        except Exception as exc:
            _emit({"reply": None, "error": f"{type(exc).__name__}: {exc}"})


async def run(config: dict[str, Any]) -> None:
    factory = TenantFactory(OnDiskStoreFactory(Path(config["store"])))
    tenant = await factory.load_session(str(config["tenant"]), str(config["password"]))
    if tenant is None:
        raise SystemExit("no saved session for this tenant in the store")
    node = SyncNode(
        NodeCertificate.load_or_create(Path(config["store"]) / "node"),
        adopt_databases=bool(config.get("adopt_databases", True)),
        backoff=Backoff(initial=0.2, maximum=float(config.get("max_backoff", 5.0))),
    )
    await node.add_tenant(tenant, list(config.get("databases", ["todos"])))
    runner = Runner(config, tenant, node)
    node.on_event(lambda event: _emit({"event": type(event).__name__, **asdict(event)}))
    host, port = config.get("listen", ["127.0.0.1", 0])
    _, bound = await node.listen(str(host), int(port))
    for peer_host, peer_port in config.get("peers", []):
        node.add_peer(str(peer_host), int(peer_port), tenant.tenant_id)
    await runner.network.start(bound)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, runner.stop.set)
    own = node_id(tenant.user.private.signing_public_key).hex()
    _emit({"event": "ready", "port": bound, "node_id": own})
    commands = node.spawn(_commands(runner), name="runner-commands")
    try:
        await runner.stop.wait()
    finally:
        await cancel_and_wait([commands])
        await runner.network.aclose()
        await node.aclose()
        await tenant.close()
        await tenant.store_factory.close()
        _emit({"event": "stopped"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.node_runner")
    parser.add_argument("config", type=Path, help="JSON file (see the module docstring)")
    args = parser.parse_args(argv)
    config = json.loads(args.config.read_text())
    if config.get("log_level"):
        logging.basicConfig(
            level=str(config["log_level"]).upper(),
            format=f"{config.get('name', '')} %(name)s %(levelname)s %(message)s",
        )
    if config.get("test_kdf"):
        apply_test_pbkdf2_iterations_from_env()
    import uvloop

    uvloop.run(run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
