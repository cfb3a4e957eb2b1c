"""``Daemon``: the node behind a Unix-socket RPC, run under structured concurrency.

Lifecycle of :meth:`Daemon.run`:

1. take the data directory's lock (a second daemon stops here with a clear message);
2. open the node, bind the RPC socket (0600), install signal handlers;
3. in one ``TaskGroup``: the RPC server, the systemd watchdog, every registered service;
   unlock tenants that have a password file or credential; send ``READY=1``;
4. SIGHUP reloads the configuration (``RELOADING=1`` ... ``READY=1``); a bad file keeps the old;
5. SIGTERM/SIGINT: ``STOPPING=1``, stop accepting, let requests in flight finish (bounded by
   ``limits.shutdown_grace_seconds``), cancel the services, lock every tenant, close every store
   (each writes its index snapshot), remove the socket, release the lock, exit 0.

:meth:`stop` may be called any number of times, from a signal or from code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mindood.daemon.config import Config, ConfigError, Limits, load_config, restart_required
from mindood.daemon.lock import InstanceLock
from mindood.daemon.methods import DaemonHooks, Methods
from mindood.daemon.node import Node
from mindood.daemon.paths import default_data_dir, default_socket, ensure_private_dir
from mindood.daemon.sdnotify import Notifier, watchdog_interval
from mindood.daemon.services import Service, ServiceStartError
from mindood.rpc.server import RpcServer, ServerLimits
from mindood.rpc.wire import FrameLimits

log = logging.getLogger("mindood.daemon")

#: Bound on closing the node (locking tenants, writing store snapshots) at shutdown.
CLOSE_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class DaemonOptions:
    """What the command line says; None means "from the configuration, else the default"."""

    config_path: Path | None = None
    config_required: bool = False
    data_dir: Path | None = None
    socket: Path | None = None
    log_level: str | None = None


def server_limits(limits: Limits) -> ServerLimits:
    frame = limits.max_frame_bytes
    return ServerLimits(
        frame=FrameLimits(
            max_frame_bytes=frame,
            max_str_bytes=frame,
            max_bin_bytes=frame,
            max_array_len=min(1_000_000, frame),
            max_map_len=min(1_000_000, frame),
        ),
        max_connections=limits.max_connections,
        max_inflight_per_connection=limits.max_inflight_per_connection,
    )


#: Builds a service for a node; the daemon calls each after opening the node, before serving.
ServiceFactory = Callable[[Node], Service]


class Daemon:
    def __init__(
        self,
        options: DaemonOptions,
        env: Mapping[str, str],
        config: Config,
        *,
        services: Sequence[ServiceFactory] = (),
    ) -> None:
        self.options = options
        self._service_factories = tuple(services)
        self.env = env
        self.config = config
        self.data_dir = options.data_dir or config.data_dir or default_data_dir(env)
        self.socket_path = options.socket or config.socket or default_socket(env)
        self.notifier = Notifier(env)
        self.instance_lock = InstanceLock(self.data_dir)
        self.node: Node | None = None
        self.server: RpcServer | None = None
        self._stop_event: asyncio.Event | None = None
        self._stop_requested = False
        self._tg: asyncio.TaskGroup | None = None
        self._reload_lock: asyncio.Lock | None = None
        self.reloads = 0
        #: Set once the daemon serves (when READY=1 goes to systemd); for embedding and tests.
        self.ready = asyncio.Event()

    # -- control -----------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the daemon to shut down cleanly (idempotent; safe before ``run`` starts)."""
        self._stop_requested = True
        if self._stop_event is not None:
            self._stop_event.set()

    def _on_sighup(self) -> None:
        if self._tg is None:
            return
        # RuntimeError: the group is shutting down, there is nothing to reload any more.
        with contextlib.suppress(RuntimeError):
            self._tg.create_task(self.reload(), name="config-reload")

    async def reload(self) -> dict[str, Any]:
        """Read the configuration again and apply what can change live."""
        assert self._reload_lock is not None
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                return await self._reload()
            finally:
                self.notifier.ready(self._status_line())

    async def _reload(self) -> dict[str, Any]:
        path = self.options.config_path
        try:
            new = load_config(path, required=self.options.config_required)
        except ConfigError as exc:
            log.error("configuration reload failed, keeping the current one: %s", exc)
            return {"ok": False, "error": str(exc), "restart_required": []}
        needs_restart = restart_required(self.config, new)
        for key in needs_restart:
            log.warning("%s changed; restart the daemon to apply it", key)
        self.config = new
        self.reloads += 1
        if self.options.log_level is None:
            logging.getLogger().setLevel(new.log_level)
        if self.server is not None:
            self.server.limits = server_limits(new.limits)
            self.server.shutdown_grace = new.limits.shutdown_grace_seconds
        unlocked: dict[str, str] = {}
        if self.node is not None:
            self.node.apply_config(new)
            for service in self.node.services:
                try:
                    await service.reload(new)
                except Exception:
                    log.exception("service %s failed to reload", service.name)
            unlocked = await self.node.tenants.auto_unlock(new)
        if new.source is not None:
            log.info("configuration reloaded from %s", new.source)
        else:
            log.info("configuration reloaded: no file at %s, using the defaults", path)
        return {"ok": True, "restart_required": needs_restart, "unlocked": unlocked}

    # -- reporting ---------------------------------------------------------------------------
    def _status_line(self) -> str:
        if self.node is None:
            return "starting"
        tenants = self.node.tenants.describe()
        unlocked = sum(1 for t in tenants if t["state"] == "unlocked")
        return f"serving {self.socket_path}; {len(tenants)} tenants, {unlocked} unlocked"

    def _status(self) -> dict[str, Any]:
        server = self.server
        return {
            "socket": str(self.socket_path),
            "rpc": {
                "connections": server.connection_count if server else 0,
                "total_connections": server.total_connections if server else 0,
            },
            "systemd": {
                "notify": self.notifier.enabled,
                "watchdog": watchdog_interval(self.env) is not None,
            },
            "reloads": self.reloads,
        }

    # -- running -----------------------------------------------------------------------------
    def _prepare_directories(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.data_dir.stat().st_mode & 0o077:
            log.warning("data directory %s is readable by other users", self.data_dir)
        parent = self.socket_path.parent
        if self.socket_path == default_socket({}):  # the shared /tmp fallback: ours alone
            ensure_private_dir(parent)
        else:
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    async def run(self) -> int:
        """Serve until stopped; returns the process exit code."""
        self._prepare_directories()
        self.instance_lock.acquire()
        try:
            return await self._run_locked()
        finally:
            self.instance_lock.release()

    async def _run_locked(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        if self._stop_requested:
            self._stop_event.set()
        self._reload_lock = asyncio.Lock()
        node = self.node = Node(self.data_dir, self.config, self.env)
        for factory in self._service_factories:
            node.services.add(factory(node))
        methods = Methods(node, DaemonHooks(status=self._status, reload=self.reload))
        server = self.server = RpcServer(
            self.socket_path,
            methods,
            limits=server_limits(self.config.limits),
            shutdown_grace=self.config.limits.shutdown_grace_seconds,
        )
        server.bind()  # a socket in use or a bad path surfaces as an error before READY
        code = 0
        start_error: ServiceStartError | None = None
        try:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
            await self._serve(node, server)
        except* ServiceStartError as failed:
            start_error = _first_leaf(failed)  # raised below, once the node is closed
        except* Exception:
            log.exception("the daemon failed")
            code = 1
        finally:
            # The handlers stay while the stores close: a second SIGTERM or Ctrl-C must not kill
            # the process half way through (stop() is idempotent, so it changes nothing).
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await node.close()
            except Exception:
                log.exception("error while closing the node")
                code = 1
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
            self.notifier.close()
            log.info("stopped")
        if start_error is not None:
            raise start_error
        return code

    async def _serve(self, node: Node, server: RpcServer) -> None:
        assert self._stop_event is not None
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            try:
                server_task = tg.create_task(server.serve(), name="rpc-server")
                background: list[asyncio.Task[Any]] = []
                interval = watchdog_interval(self.env, os.getpid())
                if interval is not None:
                    background.append(tg.create_task(self._watchdog(interval), name="watchdog"))
                for service in node.services:
                    background.append(tg.create_task(service.run(), name=f"service-{service.name}"))
                await node.tenants.auto_unlock(self.config)
                for service in node.services:  # a service that fails to start cancels this
                    await service.wait_started()
                self.notifier.ready(self._status_line())
                self.ready.set()
                log.info("mindood ready on %s (data in %s)", self.socket_path, self.data_dir)
                await self._stop_event.wait()
                log.info("shutting down")
                self.notifier.stopping()
                server.close()
                await server_task
                for task in background:
                    task.cancel()
            finally:
                self._tg = None

    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)


def _first_leaf(group: BaseExceptionGroup[ServiceStartError]) -> ServiceStartError:
    """The first error of a (possibly nested) group of start failures."""
    first = group.exceptions[0]
    return first if isinstance(first, ServiceStartError) else _first_leaf(first)


__all__ = ["CLOSE_TIMEOUT", "Daemon", "DaemonOptions", "ServiceFactory", "server_limits"]
