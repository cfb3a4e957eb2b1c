"""Run the real daemon as a subprocess, play systemd's ``$NOTIFY_SOCKET``, drive the CLI.

Every wait is bounded and driven by an observable event (a notify datagram, a process exit, a
line of output); nothing sleeps to synchronise.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from mindood.client import MindoodClient

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


__all__ = ["DaemonProcess", "NotifyListener", "base_env"]
