"""The whole conformance suite again, against ``OnDiskStore`` in scan mode (no index kept).

The tests are imported from ``test_store_conformance``; only the fixtures are replaced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tests.test_store_conformance as suite
from store.base import ContentAddressedStore
from store.ondisk import OnDiskStore, OnDiskStoreOptions
from tests.store_conformance import OnDiskFactory, StoreFactory

SCAN_MODE = OnDiskStoreOptions(fsync=False, indexing_enabled=False)


class _ScanModeStore:
    @staticmethod
    async def open(path: Path) -> OnDiskStore:
        return await OnDiskStore.open(path, SCAN_MODE)


@pytest.fixture
async def store_factory(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    factory = OnDiskFactory(tmp_path, _ScanModeStore)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
async def store(store_factory: StoreFactory) -> ContentAddressedStore:
    return await store_factory()


globals().update({name: getattr(suite, name) for name in dir(suite) if name.startswith("test_")})
