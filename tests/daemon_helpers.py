"""Run the real daemon as a subprocess, play systemd's ``$NOTIFY_SOCKET``, drive the CLI.

Every wait is bounded and driven by an observable event (a notify datagram, a process exit, a
line of output); nothing sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from mindood.client import MindoodClient
from mindood.errors import MindoodError

TEST_ITERATIONS = "1000"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class NotifyListener:
    """A datagram socket standing in for systemd's notify socket; collects every message.

    A daemon thread drains the socket continuously, as systemd does: the kernel queues only
    ``net.unix.max_dgram_qlen`` (10) datagrams, and watchdog pings would fill that in a second.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._changed = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, name="notify-listener", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._changed:
                self.messages.append(fields)
                self._changed.notify_all()

    def wait_for(
        self, key: str, value: str = "1", *, timeout: float = READY_TIMEOUT, after: int = 0
    ) -> dict[str, str]:
        """The first message (from index ``after`` on) with ``key=value``; AssertionError else."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for message in self.messages[after:]:
                    if message.get(key) == value:
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {key}={value} within {timeout}s: {self.messages}")
                self._changed.wait(remaining)

    def count(self, key: str, value: str = "1") -> int:
        with self._changed:
            return sum(1 for m in self.messages if m.get(key) == value)

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=5)
        self._sock.close()
        self.path.unlink(missing_ok=True)


def base_env(root: Path) -> dict[str, str]:
    """An environment that keeps the daemon away from the developer's real XDG directories."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "CREDENTIALS_DIRECTORY",
            "STATE_DIRECTORY",
            "RUNTIME_DIRECTORY",
            "CONFIGURATION_DIRECTORY",
            "MINDOOD_SOCKET",
            "JOURNAL_STREAM",
        }
    }
    env["MINDOOD_TEST_PBKDF2_ITERATIONS"] = TEST_ITERATIONS
    env["XDG_CONFIG_HOME"] = str(root / "xdg-config")
    env["XDG_DATA_HOME"] = str(root / "xdg-data")
    env["XDG_RUNTIME_DIR"] = str(root / "xdg-runtime")
    return env


class DaemonProcess:
    """``python -m mindood run`` on a private data directory and socket."""

    def __init__(
        self,
        root: Path,
        *,
        name: str = "d",
        env: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.data_dir = root / f"{name}-data"
        self.socket = root / f"{name}.sock"
        self.log_path = root / f"{name}.log"
        self.extra_env = dict(env or {})
        self.extra_args = list(args)
        self.notify = NotifyListener(root / f"{name}-notify.sock")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env(self) -> dict[str, str]:
        env = base_env(self.root)
        env["NOTIFY_SOCKET"] = str(self.notify.path)
        env.update(self.extra_env)
        return env

    def command(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "mindood",
            "run",
            "--data-dir",
            str(self.data_dir),
            "--socket",
            str(self.socket),
            *self.extra_args,
            *extra,
        ]

    def start(self) -> None:
        """Start and wait for ``READY=1`` (fails fast, with the log, if the process dies)."""
        assert self.proc is None or self.proc.poll() is not None
        seen = len(self.notify.messages)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(), env=self.env(), stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                self.notify.wait_for("READY", timeout=0.5, after=seen)
                return
            except AssertionError:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"daemon exited with {self.proc.returncode}:\n{self.log()}"
                    ) from None
                if time.monotonic() > deadline:
                    raise AssertionError(f"daemon not ready in time:\n{self.log()}") from None

    def send_signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: signal.Signals | None = signal.SIGTERM) -> int:
        """Signal (unless ``sig`` is None: it was signalled already) and wait for the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon did not stop on {sig}:\n{self.log()}") from None

    def restart(self) -> None:
        assert self.stop() == 0, self.log()
        self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.notify.close()

    async def client(self) -> MindoodClient:
        return await MindoodClient.connect(self.socket)

    def cli(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -m mindood ARGS`` against this daemon (socket via ``$MINDOOD_SOCKET``)."""
        env = base_env(self.root)
        env["MINDOOD_SOCKET"] = str(self.socket)
        result = subprocess.run(
            [sys.executable, "-m", "mindood", *args],
            env=env,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"mindood {' '.join(args)} exited {result.returncode}:\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result


#: The tenant and admin password the daemon tests create through the admin RPC.
TENANT = "acme"
ADMIN_PW = "admin-pw"
#: The ``[http]`` lines of a daemon serving the HTTP sync API on an ephemeral port.
HTTP_LISTEN = ("[http]", 'listen = ["127.0.0.1:0"]')


@pytest.fixture
async def daemons() -> AsyncIterator[list[DaemonProcess]]:
    """Daemons a test started with :func:`start_daemon`; all closed at the end."""
    held: list[DaemonProcess] = []
    try:
        yield held
    finally:
        for daemon in held:
            daemon.close()


def write_config(root: Path, name: str, lines: Sequence[str]) -> Path:
    """``root/NAME.toml`` holding ``lines``: the file ``--config`` names."""
    config = root / f"{name}.toml"
    config.write_text("\n".join([*lines, ""]))
    return config


def start_daemon(
    root: Path, held: list[DaemonProcess], name: str, lines: Sequence[str]
) -> DaemonProcess:
    """A daemon NAME on the configuration ``lines``, started and added to ``held``."""
    config = write_config(root, name, lines)
    daemon = DaemonProcess(root, name=name, args=["--config", str(config)])
    held.append(daemon)
    daemon.start()
    return daemon


async def http_address(daemon: DaemonProcess) -> str:
    """The one ``[http]`` address the daemon reports it listens on."""
    async with await daemon.client() as client:
        [address] = (await client.sync_status())["http"]
    return str(address)


async def create_tenant(daemon: DaemonProcess) -> None:
    """Create :data:`TENANT` (admin and alice) on the daemon."""
    async with await daemon.client() as client:
        await client.tenant_create(
            TENANT,
            admin_name="cn=admin/o=acme",
            admin_password=ADMIN_PW,
            user_name="cn=alice/o=acme",
            user_password="alice-pw",
        )


async def join(
    admin_node: DaemonProcess, node: DaemonProcess, user: str, *, relay: bool = False
) -> None:
    """``node`` joins :data:`TENANT` as ``user``, approved by the admin on ``admin_node``."""
    async with await node.client() as client:
        request = await client.tenant_join_request(f"cn={user}/o=acme", f"{user}-password")
    async with await admin_node.client() as admin:
        response = await admin.tenant_approve(TENANT, request, admin_password=ADMIN_PW, relay=relay)
    async with await node.client() as client:
        await client.tenant_join(response, f"{user}-password")


async def poll_until(
    check: Callable[[], Awaitable[bool]], seconds: float = 30.0, every: float = 0.1
) -> None:
    """Look at the daemons (bounded in time) until ``check`` holds; TimeoutError else."""
    async with asyncio.timeout(seconds):
        for _ in range(100_000):
            if await check():
                return
            await asyncio.sleep(every)


async def read_doc(daemon: DaemonProcess, doc_id: str) -> dict[str, Any] | None:
    """The document's data in ``todos`` on the daemon, or None while it has not got it."""
    async with await daemon.client() as client:
        try:
            found: dict[str, Any] = (await client.doc_get(TENANT, "todos", doc_id))["data"]
            return found
        except MindoodError:
            return None


def has_doc(
    daemon: DaemonProcess, doc_id: str, expected: dict[str, Any]
) -> Callable[[], Awaitable[bool]]:
    """A check for :func:`poll_until`: the daemon's document reads ``expected``."""

    async def check() -> bool:
        return await read_doc(daemon, doc_id) == expected

    return check


async def create_doc(daemon: DaemonProcess, data: dict[str, Any], *, ensure_db: bool = True) -> str:
    """A new document in ``todos`` (created first unless ``ensure_db`` is False); its id."""
    async with await daemon.client() as client:
        if ensure_db:
            await client.db_create(TENANT, "todos")  # idempotent; documents need an existing db
        doc_id: str = (await client.doc_create(TENANT, "todos", data))["id"]
    return doc_id


async def set_field(daemon: DaemonProcess, doc_id: str, field: str, value: Any) -> None:
    """Set one top-level field of a ``todos`` document on the daemon."""
    async with await daemon.client() as client:
        await client.doc_change(
            TENANT, "todos", doc_id, [{"op": "set", "path": [field], "value": value}]
        )


__all__ = [
    "ADMIN_PW",
    "HTTP_LISTEN",
    "TENANT",
    "DaemonProcess",
    "NotifyListener",
    "base_env",
    "create_doc",
    "create_tenant",
    "daemons",
    "has_doc",
    "http_address",
    "join",
    "poll_until",
    "read_doc",
    "set_field",
    "start_daemon",
    "write_config",
]
