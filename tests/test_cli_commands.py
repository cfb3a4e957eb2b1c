"""The CLI as a user runs it, against real daemons: passwords, errors under --json, value typing.

Passwords come from standard input (one line each), as scripts give them, or from a pseudo
terminal where the test reads each prompt before it answers, as a person would.
"""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from mindood.client import op_delete, op_set
from tests.daemon_helpers import DaemonProcess, base_env

TENANT = "acme"
ADMIN, ADMIN_PW = "cn=admin/o=acme", "admin-password"
ALICE, ALICE_PW = "cn=alice/o=acme", "alice-password"
BOB, BOB_PW = "cn=bob/o=acme", "bob-password"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("cli"))
    proc.start()
    try:
        proc.cli(
            "tenant", "create", TENANT, "--admin", ADMIN, "--user", ALICE,
            stdin=f"{ADMIN_PW}\n{ALICE_PW}\n",
        )  # fmt: skip
        proc.cli("db", "create", TENANT, "contacts")
        yield proc
    finally:
        proc.close()


class Terminal:
    """``python -m mindood ARGS`` on a pseudo terminal: read its prompts, type the answers."""

    def __init__(self, daemon: DaemonProcess, *args: str) -> None:
        master, slave = os.openpty()
        env = base_env(daemon.root)
        env["MINDOOD_SOCKET"] = str(daemon.socket)
        # A new session has no controlling terminal, so getpass reads this terminal on stdin.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mindood", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self._fd = master
        self.screen = ""

    def expect(self, text: str, timeout: float = 30.0) -> str:
        """Everything shown until ``text`` appears (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {text!r} on the terminal:\n{self.screen}"
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self._fd, 4096)
                except OSError:  # EIO: the process closed the terminal
                    chunk = b""
                assert chunk, f"the terminal closed before {text!r}:\n{self.screen}"
                self.screen += chunk.decode(errors="replace").replace("\r\n", "\n")
        return self.screen

    def type(self, line: str) -> None:
        os.write(self._fd, line.encode() + b"\n")

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        """Wait for the exit; its code and everything the terminal showed."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"the command did not finish:\n{self.screen}"
            ready, _, _ = select.select([self._fd], [], [], min(remaining, 0.5))
            chunk = b""
            if ready:
                try:
                    chunk = os.read(self._fd, 4096)
                except OSError:
                    chunk = b""
                self.screen += chunk.decode(errors="replace").replace("\r\n", "\n")
            if not chunk and self.proc.poll() is not None:
                break
        os.close(self._fd)
        return self.proc.wait(timeout=5), self.screen


# -- passwords -----------------------------------------------------------------------------------
def test_a_short_new_password_is_refused_and_nothing_is_created(daemon: DaemonProcess) -> None:
    short = daemon.cli(
        "tenant", "create", "beta", "--admin", "cn=admin/o=beta", "--user", "cn=u/o=beta",
        stdin="x\nlong-enough-pw\n", check=False,
    )  # fmt: skip
    assert short.returncode == 1
    assert "at least 8 characters" in short.stderr and "admin password" in short.stderr
    assert "beta" not in daemon.cli("tenant", "list").stdout
    request = daemon.cli("tenant", "request", "--user", BOB, stdin="1234567\n", check=False)
    assert request.returncode == 1 and "at least 8 characters" in request.stderr


def test_join_flow_confirms_new_passwords_shows_the_request_and_checks_the_response(
    daemon: DaemonProcess,
) -> None:
    node_b = DaemonProcess(daemon.root, name="b")
    node_b.start()
    try:
        # request: a new password, typed twice on a terminal
        term = Terminal(node_b, "tenant", "request", "--user", BOB, "--label", "bob's laptop")
        term.expect(f"password for {BOB}: ")
        term.type(BOB_PW)
        term.expect(f"password for {BOB} (again): ")
        term.type(BOB_PW)
        code, screen = term.finish()
        assert code == 0, screen
        [request] = [w for w in screen.split() if w.startswith("mdb://join-request/")]

        # approve: who asks is on screen before the admin password is asked
        term = Terminal(daemon, "tenant", "approve", TENANT, request)
        shown = term.expect(f"admin password for tenant {TENANT}: ")
        assert f'join request from {BOB} (device "bob\'s laptop")' in shown
        term.type(ADMIN_PW)
        code, screen = term.finish()
        assert code == 0, screen
        [response] = [w for w in screen.split() if w.startswith("mdb://join-response/")]

        # join: a damaged response fails before any password is read
        damaged = node_b.cli("tenant", "join", response[:-8], stdin="", check=False)
        assert damaged.returncode == 1
        assert "no password" not in damaged.stderr and "InvalidUriError" in damaged.stderr
        wrong_kind = node_b.cli("tenant", "join", request, stdin="", check=False)
        assert wrong_kind.returncode == 1 and "mdb://join-response" in wrong_kind.stderr

        joined = node_b.cli("tenant", "join", response, "--json", stdin=f"{BOB_PW}\n")
        assert json.loads(joined.stdout)["user"] == BOB
    finally:
        node_b.close()


def test_approve_without_any_username_stops_before_the_password(daemon: DaemonProcess) -> None:
    """A request that names no user needs --username: said at once, no password asked."""
    from mindood.identity import create_user_id
    from mindood.tenant.joinrequest import JoinRequest

    user = create_user_id("cn=nameless/o=acme", "nameless-pw")
    anonymous = JoinRequest(user.signing_public_key, user.encryption_public_key).to_uri()
    result = daemon.cli("tenant", "approve", TENANT, anonymous, stdin="", check=False)
    assert result.returncode == 2 and "--username" in result.stderr
    assert "password" not in result.stderr


def test_tenant_export_is_readable_by_its_owner_only(daemon: DaemonProcess) -> None:
    target = daemon.root / "acme.session"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)  # an existing file is narrowed too
    daemon.cli("tenant", "export", TENANT, "--output", str(target), stdin=f"{ALICE_PW}\n")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes().startswith(b"MDBS")
    fresh = daemon.root / "fresh.session"
    daemon.cli("tenant", "export", TENANT, "-o", str(fresh), stdin=f"{ALICE_PW}\n")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600


# -- errors under --json -------------------------------------------------------------------------
def json_error(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.stdout == "", "an error prints no result"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    error = json.loads(lines[0])["error"]
    assert isinstance(error, dict) and set(error) == {"code", "type", "message"}
    return error


def test_errors_are_json_objects_on_stderr_under_json(daemon: DaemonProcess) -> None:
    missing = daemon.cli("doc", "get", TENANT, "contacts", "nope", "--json", check=False)
    assert missing.returncode == 1
    error = json_error(missing)
    assert error["code"] == -32002 and error["type"] == "DocumentNotFoundError"

    usage = daemon.cli("doc", "change", TENANT, "contacts", "x", "--json", check=False)
    assert usage.returncode == 2
    assert json_error(usage) == {
        "code": None,
        "type": "UsageError",
        "message": "nothing to change: give --ops, --set, --delete or --increment",
    }
    argparse_usage = daemon.cli("doc", "get", TENANT, "--json", check=False)
    assert argparse_usage.returncode == 2
    assert json_error(argparse_usage)["type"] == "UsageError"

    nobody = daemon.cli("status", "--socket", str(daemon.root / "none.sock"), "--json", check=False)
    assert nobody.returncode == 1
    assert json_error(nobody)["type"] == "DaemonConnectionError"

    plain = daemon.cli("doc", "get", TENANT, "contacts", "nope", check=False)
    assert plain.returncode == 1 and plain.stderr.startswith("mindood: error: ")


# -- values --------------------------------------------------------------------------------------
def test_set_values_are_json_when_they_are_json_else_strings(daemon: DaemonProcess) -> None:
    doc_id = daemon.cli("doc", "create", TENANT, "contacts").stdout.strip()
    changed = daemon.cli(
        "doc", "change", TENANT, "contacts", doc_id, "--json",
        "--set", "zip=01234", "--set", "n=1234", "--set", 'forced="1234"',
        "--set", "city=Oslo", "--set", "ok=true", "--set", "odd=NaN",
    )  # fmt: skip
    data = json.loads(changed.stdout)["data"]
    assert data == {
        "zip": "01234",
        "n": 1234,
        "forced": "1234",
        "city": "Oslo",
        "ok": True,
        "odd": "NaN",
    }
    assert "01234" in daemon.cli("doc", "change", "--help").stdout  # the rules are in the help


async def test_a_string_path_names_one_key(daemon: DaemonProcess) -> None:
    async with await daemon.client() as client:
        doc = await client.doc_create(TENANT, "contacts", {})
        changed = await client.call(
            "doc.change",
            {
                "tenant": TENANT,
                "db": "contacts",
                "doc_id": doc["id"],
                "ops": [{"op": "set", "path": "city", "value": "Oslo"}],
            },
        )
        assert changed["data"] == {"city": "Oslo"}
        # The client's builders pass a string through as one key, too.
        built = await client.doc_change(
            TENANT, "contacts", doc["id"], [op_set("zip", "0150"), op_delete("city")]
        )
    assert built["data"] == {"zip": "0150"}
