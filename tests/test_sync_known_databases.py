"""The sync layer's saved database list: damage costs the list, never the tenant's unlock."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mindood.storefactory import InMemoryStoreFactory, OnDiskStoreFactory
from mindood.sync.known_databases import (
    MAX_FILE_BYTES,
    MAX_NAMES,
    META_NAME,
    load_known_databases,
    parse_known_databases,
    save_known_databases,
)


async def test_names_round_trip_sorted() -> None:
    factory = InMemoryStoreFactory()
    assert await load_known_databases(factory, "acme") == set()
    await save_known_databases(factory, "acme", {"notes", "contacts", "directory"})
    assert await factory.read_meta("acme", META_NAME) == b'["contacts", "directory", "notes"]'
    assert await load_known_databases(factory, "acme") == {"contacts", "directory", "notes"}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"\xff\x00{ not json", "not JSON"),
        (b'["contacts"', "not JSON"),
        (b'{"contacts": 1}', "not a JSON list but dict"),
        (b"42", "not a JSON list but int"),
        (json.dumps(["a"] * (MAX_NAMES + 1)).encode(), "over the limit"),
        (b" " * (MAX_FILE_BYTES + 1), "byte limit"),
    ],
)
async def test_a_damaged_file_reads_as_empty_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, raw: bytes, problem: str
) -> None:
    factory = OnDiskStoreFactory(tmp_path)
    await factory.write_meta("acme", META_NAME, raw)
    with caplog.at_level(logging.WARNING, logger="mindood.sync.known_databases"):
        assert await load_known_databases(factory, "acme") == set()
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert str(tmp_path / "acme" / ".tenant" / META_NAME) in record.getMessage()
    assert problem in record.getMessage()


def test_names_that_are_not_database_names_are_dropped_one_by_one() -> None:
    raw = json.dumps(["contacts", 5, None, "../etc", ".hidden", "x" * 129, ["n"], "notes"])
    names, problems = parse_known_databases(raw.encode())
    assert names == {"contacts", "notes"}
    assert problems == ["dropped 6 entries that are not valid database names"]


async def test_an_unreadable_file_reads_as_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    factory = OnDiskStoreFactory(tmp_path)
    (tmp_path / "acme" / ".tenant" / META_NAME).mkdir(parents=True)  # a directory: EISDIR
    with caplog.at_level(logging.WARNING, logger="mindood.sync.known_databases"):
        assert await load_known_databases(factory, "acme") == set()
    assert "unreadable" in caplog.text


async def test_saving_keeps_only_valid_names() -> None:
    factory = InMemoryStoreFactory()
    await save_known_databases(factory, "acme", ["b", "a/b", "a", "a"])
    assert await load_known_databases(factory, "acme") == {"a", "b"}
