"""Store factories: one store per (tenant, db, kind), metadata blobs, name checks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mindood.errors import InvalidNameError
from mindood.storefactory import InMemoryStoreFactory, OnDiskStoreFactory, check_component
from store.base import StoreState
from store.errors import StoreUnavailableError


async def test_in_memory_factory_shares_one_store_per_key() -> None:
    factory = InMemoryStoreFactory()
    docs = await factory.open_store("acme", "todos", "docs")
    assert await factory.open_store("acme", "todos", "docs") is docs
    assert await factory.open_store("acme", "todos", "attachments") is not docs
    assert await factory.open_store("acme", "notes", "docs") is not docs
    assert await factory.open_store("other", "todos", "docs") is not docs
    assert docs.get_id() == "acme/todos/docs"
    assert await factory.read_meta("acme", "session") is None
    await factory.write_meta("acme", "session", b"blob")
    assert await factory.read_meta("acme", "session") == b"blob"
    await factory.close()


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/b", ".hidden", "x" * 129, "a:b", "é"])
async def test_names_must_be_safe_path_components(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        check_component(bad, "name")
    with pytest.raises(InvalidNameError):
        await InMemoryStoreFactory().open_store(bad, "db", "docs")
    with pytest.raises(InvalidNameError):
        await InMemoryStoreFactory().open_store("acme", bad, "docs")


async def test_unknown_store_kind_is_refused() -> None:
    with pytest.raises(InvalidNameError):
        await InMemoryStoreFactory().open_store("acme", "db", "blobs")  # type: ignore[arg-type]


async def test_on_disk_factory_layout_caching_and_meta(tmp_path: Path) -> None:
    factory = OnDiskStoreFactory(tmp_path)
    try:
        first, second = await asyncio.gather(
            factory.open_store("acme", "todos", "docs"), factory.open_store("acme", "todos", "docs")
        )
        assert first is second
        await factory.open_store("acme", "todos", "attachments")
        assert (tmp_path / "acme" / "todos" / "docs").is_dir()
        assert (tmp_path / "acme" / "todos" / "attachments").is_dir()
        assert await factory.read_meta("acme", "session") is None
        await factory.write_meta("acme", "session", b"one")
        await factory.write_meta("acme", "session", b"two")
        assert await factory.read_meta("acme", "session") == b"two"
        assert sorted(p.name for p in (tmp_path / "acme" / ".tenant").iterdir()) == ["session"]
    finally:
        await factory.close()
    reopened = OnDiskStoreFactory(tmp_path)
    try:
        assert await reopened.read_meta("acme", "session") == b"two"
    finally:
        await reopened.close()


async def test_a_store_that_cannot_open_comes_back_failed_and_others_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "acme" / "notes" / "docs"
    blocked.parent.mkdir(parents=True)
    blocked.write_bytes(b"a file where a store directory belongs")
    factory = OnDiskStoreFactory(tmp_path)
    try:
        failed = await factory.open_store("acme", "notes", "docs")
        assert failed.health().state is StoreState.FAILED
        with pytest.raises(StoreUnavailableError, match=f"{blocked} exists but is not a directory"):
            await failed.get_all_ids()
        with pytest.raises(StoreUnavailableError, match="out of service"):
            await failed.put_entries([])
        health = factory.store_health("acme")
        assert list(health) == ["notes/docs"]
        assert health["notes/docs"].state is StoreState.FAILED
        assert "not a directory" in (health["notes/docs"].problem or "")
        assert "store cannot be opened" in caplog.text
        fine = await factory.open_store("acme", "notes", "attachments")
        assert await fine.get_all_ids() == []
        assert await (await factory.open_store("acme", "todos", "docs")).get_all_ids() == []
        blocked.unlink()  # the operator mends it: the next open tries again and succeeds
        mended = await factory.open_store("acme", "notes", "docs")
        assert mended.health().state is not StoreState.FAILED
        assert factory.store_health("acme") == {}
    finally:
        await factory.close()
