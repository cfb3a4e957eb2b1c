"""Attachments: chunk chains, ranges, streams, dedup, signed refs, sync, bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from mindood.bytesource import rechunk
from mindood.db import (
    AttachmentInfo,
    AttachmentNotFoundError,
    AttachmentUnavailableError,
    DBOptions,
    MindooDoc,
    ReadOnlyDocumentError,
)
from store.entry import AttachmentRef, EntryType, StoreEntry
from store.memory import InMemoryStore
from tests.db_helpers import KeySigner, default_keys, make_db

CHUNK = 1024
SMALL = DBOptions(attachment_chunk_size=CHUNK, attachment_write_batch_bytes=4 * CHUNK)
REPO = Path(__file__).resolve().parent.parent


class CountingStore(InMemoryStore):
    """Records which entries' payloads are read."""

    def __init__(self) -> None:
        super().__init__("attachments")
        self.fetched: list[str] = []

    async def get_entries(self, ids: Sequence[str]) -> list[StoreEntry]:
        self.fetched.extend(ids)
        return await super().get_entries(ids)


async def _add(doc: MindooDoc, data: bytes, name: str = "f.bin") -> AttachmentInfo:
    return await doc.add_attachment(data, name, "application/octet-stream")


async def test_add_read_range_stream_append_remove() -> None:
    files = CountingStore()
    db = make_db(KeySigner(), default_keys(), attachments=files, options=SMALL)
    doc = await db.create_document({"title": "report"})
    data = os.urandom(10 * CHUNK + 123)
    added: list[AttachmentInfo] = []

    async def add(d: MindooDoc) -> None:
        added.append(await _add(d, data, "report.pdf"))
        assert d.get_attachments() == added  # visible inside the change already

    doc = await db.change_doc(doc, add)
    [info] = doc.get_attachments()
    assert info == added[0]
    assert (info.file_name, info.mime_type, info.size) == (
        "report.pdf",
        "application/octet-stream",
        len(data),
    )
    assert info.decryption_key_id == "default" and info.created_by == db.get_signer().public_pem
    assert doc.get_data() == {"title": "report"}  # the references are not user data

    assert await doc.get_attachment(info.attachment_id) == data
    assert b"".join([p async for p in doc.stream_attachment(info.attachment_id)]) == data
    chunks = await files.find_new_entries_for_doc([], doc.get_id())
    assert len(chunks) == 11 and {m.entry_type for m in chunks} == {EntryType.ATTACHMENT_CHUNK}

    # A range in the middle reads exactly the chunks it overlaps (bytes 2500..5100: chunks 2-4).
    files.fetched.clear()
    assert await doc.get_attachment_range(info.attachment_id, 2500, 5100) == data[2500:5100]
    by_order = {m.id: i for i, m in enumerate(sorted(chunks, key=lambda m: m.receipt_order))}
    assert sorted(by_order[i] for i in files.fetched) == [2, 3, 4]
    assert await doc.get_attachment_range(info.attachment_id, len(data) - 5, 10**9) == data[-5:]
    assert await doc.get_attachment_range(info.attachment_id, 7, 7) == b""

    more = os.urandom(2 * CHUNK + 1)

    async def append(d: MindooDoc) -> None:
        await d.append_to_attachment(info.attachment_id, [more[:100], more[100:]])

    doc = await db.change_doc(doc, append)
    grown = doc.get_attachment_info(info.attachment_id)
    assert grown.size == len(data) + len(more) and grown.last_chunk_id != info.last_chunk_id
    assert await doc.get_attachment(info.attachment_id) == data + more
    assert await doc.get_attachment_range(info.attachment_id, len(data) - 3, len(data) + 3) == (
        data[-3:] + more[:3]
    )

    async def remove(d: MindooDoc) -> None:
        await d.remove_attachment(info.attachment_id)

    doc = await db.change_doc(doc, remove)
    assert doc.get_attachments() == []
    with pytest.raises(AttachmentNotFoundError):
        await doc.get_attachment(info.attachment_id)
    # The file is still part of the history: time travel reads it.
    before = await db.get_document_at_timestamp(doc.get_id(), doc.get_last_modified())
    assert before is not None
    assert await before.get_attachment(info.attachment_id) == data + more


async def test_streams_of_any_shape_and_empty_files() -> None:
    db = make_db(KeySigner(), default_keys(), options=SMALL)
    doc = await db.create_document()
    parts = [os.urandom(n) for n in (1, 999, 2048, 7, 3000)]

    async def pieces() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    infos: list[AttachmentInfo] = []

    async def add(d: MindooDoc) -> None:
        infos.append(await d.add_attachment_stream(pieces(), "a.bin"))
        infos.append(await d.add_attachment_stream(iter(parts), "b.bin"))
        infos.append(await _add(d, b"", "empty.txt"))

    doc = await db.change_doc(doc, add)
    for info in infos[:2]:
        assert await doc.get_attachment(info.attachment_id) == b"".join(parts)
    assert infos[2].size == 0 and await doc.get_attachment(infos[2].attachment_id) == b""
    sizes = [len(c) async for c in rechunk(pieces(), CHUNK)]
    assert sizes == [CHUNK] * 5 + [sum(map(len, parts)) - 5 * CHUNK]


async def test_writes_belong_in_a_change() -> None:
    db = make_db(KeySigner(), default_keys())
    doc = await db.create_document()
    with pytest.raises(ReadOnlyDocumentError):
        await _add(doc, b"outside")
    with pytest.raises(AttachmentNotFoundError):
        await db.change_doc(doc, lambda d: d.remove_attachment("nope"))
    failed: list[str] = []

    async def fails(d: MindooDoc) -> None:
        failed.append((await _add(d, b"abandoned")).attachment_id)
        raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await db.change_doc(doc, fails)
    assert (await db.get_document(doc.get_id())).get_attachments() == []


async def test_doc_entries_carry_signed_sorted_refs_and_a_delete_releases_them() -> None:
    store = InMemoryStore()
    db = make_db(KeySigner(), default_keys(), store, options=SMALL)
    doc = await db.create_document()
    infos: list[AttachmentInfo] = []

    async def add(d: MindooDoc) -> None:
        for name in ("b", "a", "c"):
            infos.append(await _add(d, os.urandom(1500), name))

    doc = await db.change_doc(doc, add)
    await db.change_doc(doc, lambda d: d.get_data().update(note="plain edit"))
    await db.delete_document(doc)
    metas = sorted(
        await store.find_new_entries_for_doc([], doc.get_id()), key=lambda m: m.receipt_order
    )
    expected = tuple(sorted((i.ref() for i in infos), key=lambda r: r.attachment_id))
    assert [m.attachment_refs for m in metas] == [(), expected, expected, ()]
    assert all(isinstance(r, AttachmentRef) for r in expected)


async def test_identical_files_are_stored_once() -> None:
    files = InMemoryStore("attachments")
    db = make_db(KeySigner(), default_keys(), attachments=files, options=SMALL)
    content = os.urandom(8 * CHUNK)
    first, second = await db.create_document(), await db.create_document()
    for doc in (first, second):
        await db.change_doc(doc, lambda d: _add(d, content, "same.bin"))
    # Two files of 8 chunks each: 16 chunk entries, 8 payloads (same key, same IV, same bytes).
    assert len(await files.get_all_ids()) == 16
    assert files.payload_count() == 8
    first = await db.get_document(first.get_id())
    assert await first.get_attachment(first.get_attachments()[0].attachment_id) == content


async def test_attachments_sync_with_their_database_and_missing_chunks_say_so() -> None:
    keys = default_keys()
    source = make_db(KeySigner(), keys, options=SMALL)
    doc = await source.create_document()
    data = os.urandom(5 * CHUNK)
    doc = await source.change_doc(doc, lambda d: _add(d, data))
    attachment_id = doc.get_attachments()[0].attachment_id

    partial = make_db(KeySigner(), keys)
    await partial.pull_changes_from(source.get_store())  # documents only, no chunks
    copy = await partial.get_document(doc.get_id())
    with pytest.raises(AttachmentUnavailableError, match="not in this store"):
        await copy.get_attachment(attachment_id)

    full = make_db(KeySigner(), keys)
    result = await full.pull_changes_from(source)
    assert result.transferred == 2 + 5 and not result.rejected
    copy = await full.get_document(doc.get_id())
    assert await copy.get_attachment(attachment_id) == data


def _peak_growth(size_mib: int, path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.attachment_rss_worker", str(size_mib), str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_50_mib_attachment_streams_in_and_out_in_bounded_memory(tmp_path: Path) -> None:
    small = _peak_growth(8, tmp_path / "small")
    large = _peak_growth(50, tmp_path / "large")
    print(f"peak RSS growth (MiB): 8 MiB file {small['growth_mib']}, 50 MiB {large['growth_mib']}")
    # Nowhere near holding the file (let alone twice), and not growing with its size.
    assert large["growth_mib"] < 40
    assert large["growth_mib"] < small["growth_mib"] + 12
