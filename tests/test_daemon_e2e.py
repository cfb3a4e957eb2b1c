"""The real daemon in a subprocess, driven through the CLI and the client.

One daemon (and one tenant, created through the CLI) is shared by the module; tests that restart
it come last. systemd is played by a datagram socket bound as ``$NOTIFY_SOCKET``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mindood.client import (
    DaemonConnectionError,
    MindoodClient,
    counter,
    op_delete,
    op_increment,
    op_insert,
    op_set,
    op_splice,
    text,
)
from mindood.rpc.errors import (
    DocumentDeletedRpcError,
    InvalidParamsError,
    MethodNotFoundError,
    NotFoundError,
    TenantLockedError,
    WrongPasswordRpcError,
)
from tests.daemon_helpers import DaemonProcess, base_env

TENANT = "acme"
ADMIN, ADMIN_PW = "cn=admin/o=acme", "admin-pw"
ALICE, ALICE_PW = "cn=alice/o=acme", "alice-pw"
WATCHDOG_USEC = 200_000


def write_config(path: Path, body: str) -> None:
    path.write_text(body)


GOOD_CONFIG = """
[daemon]
log_level = "INFO"

[limits]
max_connections = 32

[tenants.acme]
databases = ["contacts"]
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("e2e")
    config = root / "mindood.toml"
    write_config(config, GOOD_CONFIG)
    proc = DaemonProcess(
        root,
        env={"WATCHDOG_USEC": str(WATCHDOG_USEC)},
        args=["--config", str(config)],
    )
    proc.start()
    try:
        created = proc.cli(
            "tenant",
            "create",
            TENANT,
            "--admin",
            ADMIN,
            "--user",
            ALICE,
            "--json",
            stdin=f"{ADMIN_PW}\n{ALICE_PW}\n",
        )
        assert json.loads(created.stdout)["state"] == "unlocked"
        yield proc
    finally:
        proc.close()


def cli_json(daemon: DaemonProcess, *args: str, stdin: str | None = None) -> object:
    return json.loads(daemon.cli(*args, "--json", stdin=stdin).stdout)


# -- readiness and watchdog -----------------------------------------------------------------------
def test_ready_and_watchdog_are_sent_over_notify_socket(daemon: DaemonProcess) -> None:
    ready = daemon.notify.wait_for("READY")
    assert ready["MAINPID"] == str(daemon.pid)
    assert "serving" in ready["STATUS"]
    before = daemon.notify.count("WATCHDOG")
    # WATCHDOG_USEC=200ms: a ping every 100ms; wait (bounded) for two more.
    deadline = time.monotonic() + 10
    while daemon.notify.count("WATCHDOG") < before + 2:
        assert time.monotonic() < deadline, daemon.notify.messages
        daemon.notify.wait_for("WATCHDOG", timeout=5, after=len(daemon.notify.messages))
    status = cli_json(daemon, "status")
    assert isinstance(status, dict)
    assert status["systemd"] == {"notify": True, "watchdog": True}
    assert "test_kdf_iterations" not in status  # test settings stay off the user surface
    assert "TEST MODE: PBKDF2 lowered to 1000" in daemon.log()


# -- the CLI --------------------------------------------------------------------------------------
def test_cli_documents_round_trip(daemon: DaemonProcess) -> None:
    tenants = cli_json(daemon, "tenant", "list")
    assert isinstance(tenants, dict)
    [acme] = tenants["tenants"]
    assert acme["id"] == TENANT and acme["state"] == "unlocked" and acme["user"] == ALICE
    assert "contacts" in acme["databases"]  # opened from the config's [tenants.acme]

    created = daemon.cli(
        "doc", "create", TENANT, "contacts", "--data", '{"name": "Ada", "visits": {"$counter": 1}}'
    )
    doc_id = created.stdout.strip()
    changed = cli_json(
        daemon,
        "doc",
        "change",
        TENANT,
        "contacts",
        doc_id,
        "--set",
        "city=Berlin",
        "--set",
        'tags=["x", "y"]',
        "--increment",
        "visits=4",
    )
    assert isinstance(changed, dict)
    assert changed["data"] == {"name": "Ada", "visits": 5, "city": "Berlin", "tags": ["x", "y"]}
    got = cli_json(daemon, "doc", "get", TENANT, "contacts", doc_id)
    assert isinstance(got, dict) and got["data"] == changed["data"]
    readable = daemon.cli("doc", "get", TENANT, "contacts", doc_id).stdout
    assert f"id:       {doc_id}" in readable and '"city": "Berlin"' in readable
    assert doc_id in daemon.cli("doc", "list", TENANT, "contacts").stdout.split()

    daemon.cli("doc", "delete", TENANT, "contacts", doc_id)
    listed = cli_json(daemon, "doc", "list", TENANT, "contacts")
    assert isinstance(listed, dict) and doc_id not in listed["doc_ids"]

    status = daemon.cli("status").stdout
    assert "acme" in status and "unlocked" in status


def test_cli_errors_have_exit_codes_and_messages(daemon: DaemonProcess) -> None:
    missing = daemon.cli("doc", "get", TENANT, "contacts", "nope", check=False)
    assert missing.returncode == 1
    assert "NotFound" in missing.stderr or "-32002" in missing.stderr
    usage = daemon.cli("doc", "change", TENANT, "contacts", "x", check=False)
    assert usage.returncode == 2 and "nothing to change" in usage.stderr
    bad_json = daemon.cli("doc", "create", TENANT, "contacts", "--data", "{", check=False)
    assert bad_json.returncode == 2
    argparse_usage = daemon.cli("doc", "frobnicate", check=False)
    assert argparse_usage.returncode == 2
    no_password = daemon.cli("tenant", "unlock", TENANT, stdin="", check=False)
    assert no_password.returncode == 1 and "no password" in no_password.stderr


def test_a_typo_in_the_database_name_creates_nothing(daemon: DaemonProcess) -> None:
    typo = daemon.cli("doc", "create", TENANT, "contcts", "--data", '{"a": 1}', check=False)
    assert typo.returncode == 1
    assert "no database 'contcts'" in typo.stderr and "existing: contacts" in typo.stderr
    assert "mindood db create" in typo.stderr
    listed = cli_json(daemon, "db", "list", TENANT)
    assert isinstance(listed, dict) and "contcts" not in listed["databases"]
    created = cli_json(daemon, "db", "create", TENANT, "notes")
    assert created == {"tenant": TENANT, "db": "notes", "created": True}
    doc = daemon.cli("doc", "create", TENANT, "notes", "--data", '{"a": 1}')
    assert doc.stdout.strip()


def test_cli_watch_streams_notifications(daemon: DaemonProcess) -> None:
    env = base_env(daemon.root)
    env["MINDOOD_SOCKET"] = str(daemon.socket)
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mindood",
            "watch",
            "--json",
            "--count",
            "1",
            "--tenant",
            TENANT,
            "--topic",
            "doc.changed",
            "--timeout",
            "30",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        ready, _, _ = select.select([watch.stdout], [], [], 20)
        assert ready, "watch did not subscribe"
        assert "subscribed" in json.loads(watch.stdout.readline())
        doc_id = daemon.cli("doc", "create", TENANT, "contacts", "--data", '{"n": 1}').stdout
        out, err = watch.communicate(timeout=20)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.communicate()
    assert watch.returncode == 0, err
    note = json.loads(out.strip().splitlines()[-1])
    assert note["method"] == "doc.changed"
    assert note["params"]["doc_ids"] == [doc_id.strip()]


# -- the client -----------------------------------------------------------------------------------
async def test_client_change_operations(daemon: DaemonProcess) -> None:
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    async with await daemon.client() as client:
        doc = await client.doc_create(
            TENANT,
            "contacts",
            {
                "name": "Grace",
                "notes": text("hello world"),
                "visits": counter(2),
                "tags": ["a", "c"],
                "address": {"city": "Paris", "zip": "75001"},
                "avatar": b"\x00\x01\x02",
                "born": when,
            },
        )
        doc_id = doc["id"]
        changed = await client.doc_change(
            TENANT,
            "contacts",
            doc_id,
            [
                op_splice(["notes"], 0, 5, "HELLO"),
                op_increment(["visits"], 3),
                op_insert(["tags"], 1, "b"),
                op_set(["address", "city"], "Lyon"),
                op_delete(["address", "zip"]),
                op_set(["tags", 0], "A"),
                op_delete(["tags", 2]),
            ],
        )
        expected = {
            "name": "Grace",
            "notes": "HELLO world",
            "visits": 5,
            "tags": ["A", "b"],
            "address": {"city": "Lyon"},
            "avatar": b"\x00\x01\x02",
            "born": when,
        }
        assert changed["data"] == expected
        assert (await client.doc_get(TENANT, "contacts", doc_id))["data"] == expected
        assert doc_id in await client.doc_list(TENANT, "contacts")

        # A second change merges into the text and counter, not over them.
        again = await client.doc_change(
            TENANT, "contacts", doc_id, [op_splice(["notes"], 11, 0, "!"), op_increment(["visits"])]
        )
        assert again["data"]["notes"] == "HELLO world!" and again["data"]["visits"] == 6


async def test_bad_operations_write_nothing(daemon: DaemonProcess) -> None:
    async with await daemon.client() as client:
        doc = await client.doc_create(TENANT, "contacts", {"notes": text("abc"), "n": 1})
        doc_id = doc["id"]
        bad_batches: list[list[dict[str, object]]] = [
            [op_set(["n"], 2), op_increment(["notes"])],  # second op fails: first rolls back
            [op_set(["n"], 2), op_splice(["notes"], 2, 5, "x")],  # past the end
            [op_set(["n"], 2), op_delete(["missing"])],
            [op_set(["n"], 2), op_insert(["n"], 0, 1)],  # not a list
            [{"op": "set", "path": ["n"]}],  # no value
            [{"op": "teleport", "path": ["n"]}],
            [{"op": "set", "path": [], "value": 1}],
            [{"op": "set", "path": ["_attachments"], "value": 1}],
            [{"op": "set", "path": ["n"], "value": 1, "extra": True}],
            [{"op": "set", "path": [1.5], "value": 1}],
            [{"op": "set", "path": ["n"], "value": {"": 1}}],
            [{"op": "set", "path": ["n"], "value": 2**64 - 1}],
            [],
        ]
        for ops in bad_batches:
            with pytest.raises(InvalidParamsError):
                await client.doc_change(TENANT, "contacts", doc_id, ops)
        after = await client.doc_get(TENANT, "contacts", doc_id)
        assert after["data"] == {"notes": "abc", "n": 1}
        assert after["last_modified"] == doc["last_modified"]


async def test_typed_errors(daemon: DaemonProcess) -> None:
    async with await daemon.client() as client:
        with pytest.raises(NotFoundError):
            await client.doc_get("nosuchtenant", "contacts", "x")
        with pytest.raises(NotFoundError):
            await client.doc_list(TENANT, "nosuchdb")
        with pytest.raises(NotFoundError):
            await client.doc_get(TENANT, "contacts", "nosuchdoc")
        with pytest.raises(MethodNotFoundError):
            await client.call("doc.teleport")
        with pytest.raises(
            InvalidParamsError, match=r"unknown parameter 'tenantt' \(doc.list takes"
        ):
            await client.call("doc.list", {"tenantt": TENANT, "db": "contacts"})
        with pytest.raises(InvalidParamsError, match="missing parameter 'tenant'"):
            await client.call("doc.list", {"db": "contacts"})
        with pytest.raises(InvalidParamsError, match="unknown parameter 'dbb'"):
            await client.call("doc.list", {"tenant": TENANT, "db": "contacts", "dbb": "x"})
        with pytest.raises(InvalidParamsError, match="tenant"):
            await client.call("doc.list", {"tenant": 5, "db": "contacts"})
        with pytest.raises(InvalidParamsError):
            await client.call("doc.list", {"tenant": "../etc", "db": "contacts"})
        doc = await client.doc_create(TENANT, "contacts", {"a": 1})
        await client.doc_delete(TENANT, "contacts", doc["id"])
        with pytest.raises(DocumentDeletedRpcError):
            await client.doc_change(TENANT, "contacts", doc["id"], [op_set(["a"], 2)])
        assert (await client.doc_get(TENANT, "contacts", doc["id"]))["deleted"] is True


async def test_changes_since_a_cursor(daemon: DaemonProcess) -> None:
    async with await daemon.client() as client:
        await client.db_create(TENANT, "feed")
        first = await client.doc_create(TENANT, "feed", {"i": 1})
        page = await client.doc_changes(TENANT, "feed")
        assert page["doc_ids"] == [first["id"]] and not page["has_more"] and not page["reset"]
        cursor = page["cursor"]
        second = await client.doc_create(TENANT, "feed", {"i": 2})
        await client.doc_change(TENANT, "feed", second["id"], [op_set(["i"], 3)])
        page = await client.doc_changes(TENANT, "feed", cursor)
        assert page["doc_ids"] == [second["id"]]
        empty = await client.doc_changes(TENANT, "feed", page["cursor"])
        assert empty["doc_ids"] == [] and empty["cursor"] == page["cursor"]
        stale = {**cursor, "epoch": "another-epoch"}
        reset = await client.doc_changes(TENANT, "feed", stale)
        assert reset["reset"] and set(reset["doc_ids"]) == {first["id"], second["id"]}
        with pytest.raises(InvalidParamsError):
            await client.doc_changes(TENANT, "feed", {"epoch": 1, "order": "x", "id": 2})


async def test_subscriptions_push_notifications(daemon: DaemonProcess) -> None:
    async with await daemon.client() as watcher, await daemon.client() as writer:
        docs = await watcher.subscribe(["doc.changed"], tenant=TENANT, db="contacts")
        others = await watcher.subscribe(["doc.changed"], tenant=TENANT, db="elsewhere")
        states = await watcher.subscribe(["tenant.state"])
        doc = await writer.doc_create(TENANT, "contacts", {"x": 1})
        await writer.doc_change(TENANT, "contacts", doc["id"], [op_set(["x"], 2)])
        async with asyncio.timeout(10):
            created = await docs.get()
            changed = await docs.get()
        assert created.method == "doc.changed"
        assert created.params["doc_ids"] == [doc["id"]] == changed.params["doc_ids"]
        assert created.params["subscription"] == docs.id

        await writer.tenant_lock(TENANT)
        try:
            async with asyncio.timeout(10):
                locked = await states.get()
            assert locked.params == {"tenant": TENANT, "state": "locked", "subscription": states.id}
            with pytest.raises(TenantLockedError):
                await writer.doc_get(TENANT, "contacts", doc["id"])
            with pytest.raises(WrongPasswordRpcError):
                await writer.tenant_unlock(TENANT, "not-the-password")
        finally:
            result = await writer.tenant_unlock(TENANT, ALICE_PW)
        assert result["changed"] is True
        async with asyncio.timeout(10):
            assert (await states.get()).params["state"] == "unlocked"
        await others.close()
        await docs.close()
        with pytest.raises(NotFoundError):
            await watcher.call("unsubscribe", {"subscription": docs.id})
        assert others.dropped == 0


async def test_session_export_and_wrong_password(daemon: DaemonProcess) -> None:
    async with await daemon.client() as client:
        blob = await client.tenant_export_session(TENANT, ALICE_PW)
        assert isinstance(blob, bytes) and blob.startswith(b"MDBS")
        with pytest.raises(WrongPasswordRpcError):
            await client.tenant_export_session(TENANT, "wrong")


async def test_join_from_a_second_node(daemon: DaemonProcess) -> None:
    other = DaemonProcess(daemon.root, name="b")
    other.start()
    try:
        request = other.cli(
            "tenant", "request", "--user", "cn=bob/o=acme", stdin="bob-password\n"
        ).stdout.strip()
        assert request.startswith("mdb://")
        async with await daemon.client() as admin:
            with pytest.raises(WrongPasswordRpcError):
                await admin.tenant_approve(TENANT, request, admin_password="nope")
            response = await admin.tenant_approve(TENANT, request, admin_password=ADMIN_PW)
        joined_out = other.cli("tenant", "join", response, "--json", stdin="bob-password\n").stdout
        joined = json.loads(joined_out)
        assert joined == {"tenant": TENANT, "user": "cn=bob/o=acme", "state": "unlocked"}
        async with await other.client() as bob:
            [tenant] = await bob.tenant_list()
            assert tenant["state"] == "unlocked" and tenant["user"] == "cn=bob/o=acme"
    finally:
        other.close()


# -- signals, restarts ----------------------------------------------------------------------------
def test_sighup_reloads_and_keeps_the_old_config_on_errors(daemon: DaemonProcess) -> None:
    config = daemon.root / "mindood.toml"
    status = cli_json(daemon, "status")
    assert isinstance(status, dict)
    reloads = status["reloads"]

    write_config(config, GOOD_CONFIG.replace("max_connections = 32", "max_connections = 33"))
    seen = len(daemon.notify.messages)
    daemon.send_signal(signal.SIGHUP)
    reloading = daemon.notify.wait_for("RELOADING", after=seen, timeout=20)
    assert int(reloading["MONOTONIC_USEC"]) > 0
    daemon.notify.wait_for("READY", after=seen, timeout=20)
    status = cli_json(daemon, "status")
    assert isinstance(status, dict) and status["reloads"] == reloads + 1

    write_config(config, "[limits]\nmax_connections = 'many'\n")
    seen = len(daemon.notify.messages)
    daemon.send_signal(signal.SIGHUP)
    daemon.notify.wait_for("READY", after=seen, timeout=20)
    status = cli_json(daemon, "status")
    assert isinstance(status, dict) and status["reloads"] == reloads + 1  # not applied
    assert "limits.max_connections: expected an integer" in daemon.log()

    write_config(config, GOOD_CONFIG)
    result = cli_json(daemon, "reload")
    assert isinstance(result, dict) and result["ok"] is True


def test_second_daemon_on_the_same_data_dir_is_refused(daemon: DaemonProcess) -> None:
    env = base_env(daemon.root)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mindood",
            "run",
            "--data-dir",
            str(daemon.data_dir),
            "--socket",
            str(daemon.root / "second.sock"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"another mindood daemon (pid {daemon.pid})" in result.stderr
    assert "already using the data directory" in result.stderr
    assert not (daemon.root / "second.sock").exists()
    # ... and a second daemon on another data directory but the same socket is refused too.
    busy = subprocess.run(
        [
            sys.executable,
            "-m",
            "mindood",
            "run",
            "--data-dir",
            str(daemon.root / "elsewhere"),
            "--socket",
            str(daemon.socket),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert busy.returncode == 2 and "already listening" in busy.stderr


async def test_restart_finds_everything_again(daemon: DaemonProcess) -> None:
    before = {}
    listed = cli_json(daemon, "doc", "list", TENANT, "contacts")
    assert isinstance(listed, dict) and listed["doc_ids"]
    for doc_id in listed["doc_ids"]:
        doc = cli_json(daemon, "doc", "get", TENANT, "contacts", doc_id)
        assert isinstance(doc, dict)
        before[doc_id] = doc["data"]

    # SIGTERM while writes are in flight: every write that was answered is durable, the rest
    # fail on the client side with a lost connection; nothing is half-written.
    seen = len(daemon.notify.messages)
    async with await daemon.client() as client:
        writes = [
            asyncio.create_task(client.doc_create(TENANT, "contacts", {"burst": n}))
            for n in range(60)
        ]
        await asyncio.wait(writes, return_when=asyncio.FIRST_COMPLETED)
        daemon.send_signal(signal.SIGTERM)
        outcomes = await asyncio.gather(*writes, return_exceptions=True)
    answered = [o for o in outcomes if isinstance(o, dict)]
    assert answered and all(
        isinstance(o, DaemonConnectionError) for o in outcomes if not isinstance(o, dict)
    )
    before.update({o["id"]: o["data"] for o in answered})
    daemon.send_signal(signal.SIGTERM)  # a second SIGTERM during shutdown changes nothing
    assert daemon.stop(None) == 0, daemon.log()
    daemon.notify.wait_for("STOPPING", after=seen, timeout=1)
    assert not daemon.socket.exists()  # removed on a clean shutdown
    daemon.start()

    status = cli_json(daemon, "status")
    assert isinstance(status, dict)
    assert [t["state"] for t in status["tenants"]] == ["locked"]
    locked = daemon.cli("doc", "list", TENANT, "contacts", check=False)
    assert locked.returncode == 1 and "locked" in locked.stderr

    password_file = daemon.root / "alice.password"
    password_file.write_text(ALICE_PW + "\n")
    os.chmod(password_file, 0o600)
    daemon.cli("tenant", "unlock", TENANT, "--password-file", str(password_file))
    after = cli_json(daemon, "doc", "list", TENANT, "contacts")
    assert isinstance(after, dict) and sorted(after["doc_ids"]) == sorted(before)
    for doc_id, data in before.items():
        doc = cli_json(daemon, "doc", "get", TENANT, "contacts", doc_id)
        assert isinstance(doc, dict) and doc["data"] == data


def test_credential_unlocks_at_startup(daemon: DaemonProcess) -> None:
    credentials = daemon.root / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / TENANT).write_text(ALICE_PW)
    os.chmod(credentials / TENANT, 0o400)
    assert daemon.stop(signal.SIGINT) == 0
    daemon.extra_env["CREDENTIALS_DIRECTORY"] = str(credentials)
    try:
        daemon.start()
        status = cli_json(daemon, "status")
        assert isinstance(status, dict)
        assert [t["state"] for t in status["tenants"]] == ["unlocked"]
    finally:
        del daemon.extra_env["CREDENTIALS_DIRECTORY"]


async def test_client_reports_a_missing_daemon(tmp_path: Path) -> None:
    with pytest.raises(DaemonConnectionError, match="no mindood daemon"):
        await MindoodClient.connect(tmp_path / "nothing.sock")
