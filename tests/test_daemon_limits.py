"""The entry size limit through the real daemon and CLI: a document too large to sync is refused
with a clear message and a nonzero exit, nothing is stored, and the daemon keeps serving.

Two sizes matter: a request the RPC accepts whose document is still over the 16 MiB entry
limit (refused by the database, ``TOO_LARGE``), and one over the RPC request limit itself
(refused while reading, before any work; the connection is closed, not the daemon).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mindood.daemon.config import Limits
from mindood.rpc.errors import TOO_LARGE
from store.limits import MAX_ENTRY_BYTES
from tests.daemon_helpers import DaemonProcess

TENANT = "acme"
MIB = 1024 * 1024

CONFIG = """
[tenants.acme]
databases = ["contacts"]
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("limits")
    config = root / "mindood.toml"
    config.write_text(CONFIG)
    proc = DaemonProcess(root, args=["--config", str(config)])
    proc.start()
    try:
        proc.cli(
            "tenant",
            "create",
            TENANT,
            "--admin",
            "cn=admin/o=acme",
            "--user",
            "cn=alice/o=acme",
            stdin="admin-pw\nalice-pw\n",
        )
        yield proc
    finally:
        proc.close()


def data_file(directory: Path, size: int) -> Path:
    """A ``--data`` file holding one string of ``size`` random (incompressible) characters."""
    blob = base64.b64encode(os.urandom(size * 3 // 4 + 3)).decode("ascii")[:size]
    path = directory / f"doc-{size}.json"
    path.write_text(json.dumps({"blob": blob}))
    return path


def assert_still_serving(daemon: DaemonProcess) -> None:
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert TENANT in daemon.cli("status").stdout
    doc_id = daemon.cli("doc", "create", TENANT, "contacts", "--data", '{"n": 1}').stdout.strip()
    assert doc_id in daemon.cli("doc", "list", TENANT, "contacts").stdout.split()


def test_a_document_over_the_entry_limit_is_refused_with_a_clear_error(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    before = daemon.cli("doc", "list", TENANT, "contacts").stdout.split()
    size = MAX_ENTRY_BYTES + 2 * MIB  # 18 MiB: within the RPC's request limit
    assert size < Limits().max_frame_bytes - MIB
    created = daemon.cli(
        "doc", "create", TENANT, "contacts", "--data", f"@{data_file(tmp_path, size)}", check=False
    )
    assert created.returncode == 1
    assert created.stdout == ""
    error = created.stderr
    assert "new document of 18.0 MiB" in error
    assert "exceeds the tenant-wide limit of 16 MiB per entry" in error
    assert "store large content as an attachment" in error
    assert f"[EntryTooLargeError {TOO_LARGE}]" in error
    assert "Traceback" not in error
    assert daemon.cli("doc", "list", TENANT, "contacts").stdout.split() == before
    assert_still_serving(daemon)


def test_a_request_over_the_rpc_limit_is_refused_with_a_clear_error(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    before = daemon.cli("doc", "list", TENANT, "contacts").stdout.split()
    created = daemon.cli(
        "doc",
        "create",
        TENANT,
        "contacts",
        "--data",
        f"@{data_file(tmp_path, 34 * MIB)}",
        check=False,
    )
    assert created.returncode == 1
    error = created.stderr
    assert "request larger than the daemon's limit of 20 MiB per request" in error
    assert "limits.max_frame_bytes" in error
    assert "attachment" in error
    assert "Traceback" not in error and "never retrieved" not in error
    assert daemon.cli("doc", "list", TENANT, "contacts").stdout.split() == before
    assert_still_serving(daemon)
