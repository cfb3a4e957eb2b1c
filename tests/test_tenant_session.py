"""Sessions: the sealed blob format, and restoring a tenant from disk in a new process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mindood import OnDiskStoreFactory, TenantFactory
from mindood.crypto.kdf import TEST_ITERATIONS_ENV
from mindood.errors import SessionFormatError, WrongPasswordError
from mindood.keybag import KeyVersion
from mindood.storefactory import InMemoryStoreFactory
from mindood.tenant.session import MAGIC, SessionData, open_session, seal_session
from tests.tenant_helpers import (
    FAST_ITERATIONS,
    TENANT_ID,
    admin_creds,
    fast_kdf,
    identity,
    new_tenant,
    password,
    username,
)

_fast = pytest.fixture(autouse=True, scope="module")(fast_kdf)

ROOT = Path(__file__).resolve().parent.parent


def _data() -> SessionData:
    admin = identity("admin")
    return SessionData(
        tenant_id=TENANT_ID,
        admin_signing_public_key=admin.signing_public_key,
        admin_encryption_public_key=admin.encryption_public_key,
        user=identity("alice"),
        keys={"default": [KeyVersion(b"k" * 32, 2), KeyVersion(b"j" * 32, 1)]},
        tenant_label="Acme",
    )


def test_seal_and_open_round_trip() -> None:
    blob = seal_session(_data(), "pw")
    assert blob.startswith(MAGIC)
    assert b"alice" not in blob
    opened = open_session(blob, "pw")
    assert opened.tenant_id == TENANT_ID
    assert opened.user == identity("alice")
    assert [v.key for v in opened.keys["default"]] == [b"k" * 32, b"j" * 32]
    assert [v.created_at for v in opened.keys["default"]] == [2, 1]
    assert opened.tenant_label == "Acme"


def test_wrong_password_and_tampering_are_wrong_password_errors() -> None:
    blob = seal_session(_data(), "pw")
    with pytest.raises(WrongPasswordError):
        open_session(blob, "wrong")
    for position in (5, 22, len(blob) - 1, len(blob) // 2):  # salt, iterations, tag, body
        damaged = bytearray(blob)
        damaged[position] ^= 0x01
        with pytest.raises((WrongPasswordError, SessionFormatError)):
            open_session(bytes(damaged), "pw")


@pytest.mark.parametrize(
    "blob",
    [b"", b"MDBS", b"XXXX" + bytes(100), b"MDBS\x02" + bytes(100), "text"],
)
def test_malformed_blobs_are_format_errors(blob: object) -> None:
    with pytest.raises(SessionFormatError):
        open_session(blob, "pw")  # type: ignore[arg-type]


def test_absurd_iteration_count_is_refused_before_any_work() -> None:
    blob = bytearray(seal_session(_data(), "pw"))
    blob[21:25] = (0xFFFFFFFF).to_bytes(4, "big")
    with pytest.raises(SessionFormatError):
        open_session(bytes(blob), "pw")


async def test_export_needs_the_users_password_and_restores() -> None:
    stores = InMemoryStoreFactory()
    created = await new_tenant(stores)
    db = await created.tenant.open_db("todos")
    doc = await db.create_document({"a": 1})
    with pytest.raises(WrongPasswordError):
        await created.tenant.export_session("not-alices")
    blob = await created.tenant.export_session(password("alice"))
    factory = TenantFactory(stores)
    with pytest.raises(WrongPasswordError):
        await factory.restore_session(blob, "wrong")
    restored = await factory.restore_session(blob, password("alice"))
    assert restored.user.username == username("alice")
    assert restored.key_bag.get(TENANT_ID, "default") == created.key_bag.get(TENANT_ID, "default")
    again = await (await restored.open_db("todos")).get_document(doc.get_id())
    assert again.get_data() == {"a": 1}
    await created.tenant.save_session(password("alice"))
    loaded = await factory.load_session(TENANT_ID, password("alice"))
    assert loaded is not None and loaded.tenant_id == TENANT_ID
    assert await factory.load_session("nobody", password("alice")) is None


_RESTORE_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    from mindood import OnDiskStoreFactory, TenantFactory
    from mindood.crypto.kdf import apply_test_pbkdf2_iterations_from_env

    async def main() -> None:
        apply_test_pbkdf2_iterations_from_env()
        base, password, doc_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
        stores = OnDiskStoreFactory(base)
        try:
            tenant = await TenantFactory(stores).load_session("acme", password)
            assert tenant is not None
            db = await tenant.open_db("todos")
            doc = await db.get_document(doc_id)
            directory = tenant.get_directory()
            print(json.dumps({
                "data": doc.get_data(),
                "user": tenant.user.username,
                "usernames": directory.get_usernames(),
                "groups": directory.get_groups(),
                "settings": tenant.get_tenant_settings(),
            }))
            await tenant.close()
        finally:
            await stores.close()

    asyncio.run(main())
    """
)


async def test_on_disk_tenant_restored_in_a_new_process(tmp_path: Path) -> None:
    stores = OnDiskStoreFactory(tmp_path)
    try:
        created = await new_tenant(stores)
        tenant = created.tenant
        creds = admin_creds()
        await tenant.create_group("team", [username("alice")], **creds)
        await tenant.change_tenant_settings(lambda d: d.get_data().update(color="blue"), **creds)
        db = await tenant.open_db("todos")
        doc = await db.create_document({"title": "Persist me"})
        await db.change_doc(doc, lambda d: d.get_data().update(done=True))
        await tenant.save_session(password("alice"))
        await tenant.close()
    finally:
        await stores.close()

    env = {**os.environ, TEST_ITERATIONS_ENV: str(FAST_ITERATIONS)}
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _RESTORE_SCRIPT, str(tmp_path), password("alice"), doc.get_id()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out == {
        "data": {"title": "Persist me", "done": True},
        "user": username("alice"),
        "usernames": [username("alice")],
        "groups": ["team"],
        "settings": {"color": "blue"},
    }
