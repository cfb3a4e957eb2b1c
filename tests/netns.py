"""Network namespaces for tests: hosts, links, bridges and NAT routers that a test builds itself.

Everything is named with a per-run prefix and removed on ``close`` (also after a failure):
processes started here are killed by pid, namespaces deleted (which deletes their links and
nftables rules). Addresses are the test's own, inside namespaces it created; nothing here touches
the host's interfaces. Needs root and iproute2; NAT needs nftables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
from collections.abc import Sequence

_TIMEOUT = 20


def unavailable(*tools: str) -> str | None:
    """Why namespace tests cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", *tools):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs it)"
    probe = f"mdprobe{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=_TIMEOUT)
    if done.returncode != 0:
        return f"cannot create a network namespace: {done.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=_TIMEOUT)
    return None


class Netns:
    """The namespaces, links and processes of one test."""

    def __init__(self) -> None:
        self.prefix = f"md{os.getpid() % 100000}{os.urandom(2).hex()}"
        self.namespaces: list[str] = []
        self.processes: list[asyncio.subprocess.Process] = []
        self._links = 0

    # -- building ----------------------------------------------------------------------------
    def host(self, name: str) -> str:
        full = f"{self.prefix}-{name}"
        _ip("netns", "add", full)
        self.namespaces.append(full)
        _ip("-n", full, "link", "set", "lo", "up")
        return full

    def link(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        """A veth pair: ``if_a`` in ``ns_a``, ``if_b`` in ``ns_b``, both up."""
        self._links += 1
        tmp_a, tmp_b = f"{self.prefix}a{self._links}"[-15:], f"{self.prefix}b{self._links}"[-15:]
        _ip("link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        for tmp, ns, name in ((tmp_a, ns_a, if_a), (tmp_b, ns_b, if_b)):
            _ip("link", "set", tmp, "netns", ns)
            _ip("-n", ns, "link", "set", tmp, "name", name)
            _ip("-n", ns, "link", "set", name, "up")

    def bridge(self, ns: str, name: str, ports: Sequence[str]) -> None:
        _ip("-n", ns, "link", "add", name, "type", "bridge")
        for port in ports:
            _ip("-n", ns, "link", "set", port, "master", name)
        _ip("-n", ns, "link", "set", name, "up")

    def address(self, ns: str, ifname: str, cidr: str) -> None:
        _ip("-n", ns, "addr", "add", cidr, "dev", ifname)

    def default_route(self, ns: str, via: str) -> None:
        _ip("-n", ns, "route", "add", "default", "via", via)

    def router(self, ns: str, public_if: str, *, block: Sequence[str] = ()) -> None:
        """Forward and masquerade out of ``public_if``; drop forwarded UDP/TCP to ``block``."""
        self.run(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        drops = "".join(f"    ip daddr {addr} drop\n" for addr in block)
        ruleset = (
            "table ip mindood_nat {\n"
            "  chain nat_postrouting {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f'    oifname "{public_if}" masquerade\n'
            "  }\n"
            # Unsolicited packets to the router itself are dropped before conntrack confirms
            # them, as a home router's firewall does; otherwise an early hole-punching probe
            # would claim the port mapping the host is about to use and force a new one.
            "  chain filter_input {\n"
            "    type filter hook input priority filter; policy accept;\n"
            f'    iifname "{public_if}" ct state new drop\n'
            "  }\n"
            "  chain filter_forward {\n"
            "    type filter hook forward priority filter; policy accept;\n"
            f"{drops}"
            "  }\n"
            "}\n"
        )
        self.run(ns, "nft", "-f", "-", stdin=ruleset)

    def run(self, ns: str, *cmd: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", ns, *cmd],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} in {ns} failed: {done.stderr.strip()}")
        return done.stdout

    async def spawn(
        self, ns: str, *cmd: str, stdout: int | None = asyncio.subprocess.PIPE
    ) -> asyncio.subprocess.Process:
        """A process inside ``ns`` (``ip netns exec`` execs it: the pid is the process's)."""
        process = await asyncio.create_subprocess_exec(
            "ip",
            "netns",
            "exec",
            ns,
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=stdout,
            stderr=None,
            limit=4 * 1024 * 1024,
        )
        self.processes.append(process)
        return process

    # -- teardown ----------------------------------------------------------------------------
    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
        for process in self.processes:
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        await process.wait()
        await asyncio.to_thread(self._delete_namespaces)

    def _delete_namespaces(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=_TIMEOUT)
        self.namespaces.clear()


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
