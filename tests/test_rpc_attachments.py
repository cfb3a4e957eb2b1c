"""Attachments over the RPC against a real daemon: streamed both ways in pieces, bounded memory.

One daemon and one tenant (created through the CLI) serve the module; every test makes its own
document. The big file exists only as a stream: each 1 MiB piece is derived from its index, so
the test regenerates what it expects instead of keeping a copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from mindood.cli_attach import parse_range
from mindood.cli_common import UsageError
from mindood.client import MindoodClient
from mindood.rpc.errors import (
    DocumentDeletedRpcError,
    InvalidParamsError,
    LimitExceededError,
    NotFoundError,
    TenantLockedError,
)
from mindood.rpc.schema.attachments import MAX_PIECE_BYTES
from tests.daemon_helpers import DaemonProcess

TENANT, DB = "acme", "files"
MIB = 1024 * 1024
IDLE_SECONDS = 3
CONFIG = f"""
[limits]
max_uploads_per_connection = 2
upload_idle_seconds = {IDLE_SECONDS}
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("attach")
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


@pytest.fixture
async def client(daemon: DaemonProcess) -> AsyncIterator[MindoodClient]:
    async with await daemon.client() as connected:
        await connected.db_create(TENANT, DB)
        yield connected


async def new_doc(client: MindoodClient) -> str:
    doc_id: str = (await client.doc_create(TENANT, DB, {"title": "with files"}))["id"]
    return doc_id


def piece(index: int, size: int = MIB) -> bytes:
    """Piece ``index`` of a deterministic pseudo-random file (nothing in it deduplicates)."""
    return hashlib.shake_256(b"mindood-attachment-%d" % index).digest(size)


async def pieces(count: int) -> AsyncIterator[bytes]:
    for index in range(count):
        yield piece(index)


# -- memory: the daemon's RSS while 50 MiB go in and out ------------------------------------------
def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class RssWatch:
    """The daemon's peak RSS over a stretch: sampled every few ms by a thread, and the kernel's
    own high-water mark (VmHWM) when it can be reset for this stretch (``clear_refs``)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.start_kib = _status_kib(pid, "VmRSS")
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := the current RSS
            self._hwm = True
        except OSError:
            self._hwm = False
        self.peak_kib = self.start_kib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-watch", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak_kib = max(self.peak_kib, _status_kib(self._pid, "VmRSS"))

    def stop(self) -> int:
        """The growth in KiB from the start to the peak."""
        self._stop.set()
        self._thread.join(timeout=5)
        if self._hwm:
            self.peak_kib = max(self.peak_kib, _status_kib(self._pid, "VmHWM"))
        return self.peak_kib - self.start_kib


async def _round_trip(client: MindoodClient, pid: int, mib: int) -> tuple[int, int]:
    """Upload ``mib`` MiB, read it back comparing every byte; the peak RSS (KiB) of each way."""
    doc_id = await new_doc(client)
    watch = RssWatch(pid)
    try:
        info = await client.attachment_upload(
            TENANT, DB, doc_id, pieces(mib), file_name="big.bin", mime_type="application/x-test"
        )
    finally:
        watch.stop()
    up = watch.peak_kib
    assert info["size"] == mib * MIB and info["file_name"] == "big.bin"
    watch = RssWatch(pid)
    index = 0
    try:
        async for got in client.attachment_stream(TENANT, DB, doc_id, info["id"]):
            assert len(got) == MIB  # reads come in whole pieces until the last
            assert got == piece(index), f"MiB {index} differs"
            index += 1
    finally:
        watch.stop()
    assert index == mib
    return up, watch.peak_kib


async def test_a_50_mib_file_goes_in_and_out_byte_identical_in_bounded_daemon_memory(
    daemon: DaemonProcess, client: MindoodClient
) -> None:
    await new_doc(client)
    baseline = _status_kib(daemon.pid, "VmRSS")  # before any attachment was written or read
    first = await _round_trip(client, daemon.pid, 1)
    before_small = _status_kib(daemon.pid, "VmRSS")
    small = await _round_trip(client, daemon.pid, 8)
    before_large = _status_kib(daemon.pid, "VmRSS")
    large = await _round_trip(client, daemon.pid, 50)
    overall = max(*first, *small, *large) - baseline
    small_growth = max(small) - before_small
    large_growth = max(large) - before_large
    print(
        f"daemon RSS {baseline / 1024:.1f} MiB; peak growth over everything "
        f"{overall / 1024:.1f} MiB; round trip of 8 MiB {small_growth / 1024:.1f} MiB, "
        f"of 50 MiB {large_growth / 1024:.1f} MiB"
    )
    # The daemon never holds the file. A round trip costs a small fraction of the file, and
    # no more for 50 MiB than for 8; the first use of attachments adds one-off costs (the
    # store's cache, the writer's 4 MiB batches, allocator arenas: about 27 MiB measured here,
    # the same for a 1 GiB file), bounded with margin below.
    assert large_growth < 0.25 * 50 * 1024
    assert large_growth < small_growth + 4 * 1024
    assert overall < 36 * 1024


# -- reading ranges ------------------------------------------------------------------------------
async def test_range_reads_return_exactly_the_bytes_asked_for(client: MindoodClient) -> None:
    doc_id = await new_doc(client)
    data = piece(7, 3 * MIB + 12_345)  # chunk boundaries (256 KiB) fall inside most ranges
    info = await client.attachment_upload(TENANT, DB, doc_id, data, file_name="r.bin")
    att = info["id"]
    for start, end in ((0, 10), (262_140, 262_200), (MIB - 1, 2 * MIB + 1), (3 * MIB, 4 * MIB)):
        assert await client.attachment_range(TENANT, DB, doc_id, att, start, end) == data[start:end]
    read = await client.attachment_read(TENANT, DB, doc_id, att, offset=len(data), length=10)
    assert read["data"] == b"" and read["size"] == len(data)
    backwards = [
        await client.attachment_range(TENANT, DB, doc_id, att, s, s + 1000)
        for s in (2 * MIB, MIB, 0)
    ]
    assert backwards == [data[2 * MIB : 2 * MIB + 1000], data[MIB : MIB + 1000], data[:1000]]
    with pytest.raises(InvalidParamsError, match="'length' must be between"):
        await client.attachment_read(TENANT, DB, doc_id, att, length=MAX_PIECE_BYTES + 1)
    with pytest.raises(InvalidParamsError, match="'offset' must be between"):
        await client.attachment_read(TENANT, DB, doc_id, att, offset=-1)
    with pytest.raises(NotFoundError, match="no attachment"):
        await client.attachment_read(TENANT, DB, doc_id, "0190-no-such-file")
    with pytest.raises(NotFoundError):
        await client.attachment_list(TENANT, DB, "nosuchdoc")


async def test_locking_the_tenant_stops_a_read_in_progress(client: MindoodClient) -> None:
    doc_id = await new_doc(client)
    data = piece(5, 3 * MIB)
    att = (await client.attachment_upload(TENANT, DB, doc_id, data, file_name="l.bin"))["id"]
    stream = client.attachment_stream(TENANT, DB, doc_id, att)
    assert await anext(stream) == data[:MIB]
    await client.tenant_lock(TENANT)
    try:
        with pytest.raises(TenantLockedError):
            await anext(stream)
    finally:
        await client.tenant_unlock(TENANT, "alice-pw")
    rest = await client.attachment_range(TENANT, DB, doc_id, att, MIB, 3 * MIB)
    assert rest == data[MIB:]


async def test_download_to_a_path_streams_into_place(client: MindoodClient, tmp_path: Path) -> None:
    doc_id = await new_doc(client)
    data = piece(3, 2 * MIB + 5)
    info = await client.attachment_upload(TENANT, DB, doc_id, data, file_name="d.bin")
    seen: list[int] = []
    target = tmp_path / "copy.bin"
    written = await client.attachment_download(
        TENANT, DB, doc_id, info["id"], target, progress=seen.append
    )
    assert written == len(data) and target.read_bytes() == data
    assert seen == [MIB, 2 * MIB, len(data)]
    assert os.listdir(tmp_path) == ["copy.bin"]  # no .part file left


# -- writing: append, remove, list ---------------------------------------------------------------
async def test_append_remove_and_list(client: MindoodClient, tmp_path: Path) -> None:
    doc_id = await new_doc(client)
    first, more = piece(1, 300_000), piece(2, 1_500_000)
    source = tmp_path / "notes.txt"
    source.write_bytes(first)
    added = await client.attachment_upload(TENANT, DB, doc_id, source, mime_type="text/plain")
    assert (added["file_name"], added["mime_type"], added["size"]) == (
        "notes.txt",
        "text/plain",
        300_000,
    )
    att = added["id"]
    grown = await client.attachment_append(TENANT, DB, doc_id, att, [more[:1000], more[1000:]])
    assert grown["id"] == att and grown["size"] == len(first) + len(more)
    whole = b"".join([p async for p in client.attachment_stream(TENANT, DB, doc_id, att)])
    assert whole == first + more
    other = await client.attachment_upload(TENANT, DB, doc_id, b"", file_name="empty")
    listed = await client.attachment_list(TENANT, DB, doc_id)
    assert [(f["id"], f["size"]) for f in listed] == [(att, len(whole)), (other["id"], 0)]
    assert listed[0]["created_by"].startswith("-----BEGIN PUBLIC KEY-----")
    await client.attachment_remove(TENANT, DB, doc_id, att)
    assert [f["id"] for f in await client.attachment_list(TENANT, DB, doc_id)] == [other["id"]]
    with pytest.raises(NotFoundError, match="no attachment"):
        await client.attachment_read(TENANT, DB, doc_id, att)
    with pytest.raises(NotFoundError, match="no attachment"):
        await client.attachment_remove(TENANT, DB, doc_id, att)
    with pytest.raises(NotFoundError, match="no attachment"):
        await client.attachment_append_begin(TENANT, DB, doc_id, att)
    await client.doc_delete(TENANT, DB, doc_id)
    with pytest.raises(DocumentDeletedRpcError):
        await client.attachment_upload_begin(TENANT, DB, doc_id, "late.bin")


# -- uploads that do not finish ------------------------------------------------------------------
async def test_a_dropped_connection_aborts_its_upload_and_the_daemon_serves_on(
    daemon: DaemonProcess, client: MindoodClient
) -> None:
    doc_id = await new_doc(client)
    before = await client.doc_get(TENANT, DB, doc_id)
    dropping = await daemon.client()
    upload = await dropping.attachment_upload_begin(TENANT, DB, doc_id, "half.bin")
    for index in range(3):
        await dropping.attachment_upload_chunk(upload, piece(index))
    await dropping.close()  # mid-way: no finish, no abort
    async with asyncio.timeout(20):  # the document's lock is free again once the change unwound
        assert await client.attachment_list(TENANT, DB, doc_id) == []
    assert await client.doc_get(TENANT, DB, doc_id) == before
    assert "ended with its connection after 3145728 bytes" in daemon.log()
    assert await client.ping() == "pong"
    info = await client.attachment_upload(TENANT, DB, doc_id, b"whole", file_name="next.bin")
    assert await client.attachment_range(TENANT, DB, doc_id, info["id"], 0, 5) == b"whole"


async def test_an_aborted_upload_leaves_the_document_unchanged(client: MindoodClient) -> None:
    doc_id = await new_doc(client)
    upload = await client.attachment_upload_begin(TENANT, DB, doc_id, "x.bin")
    await client.attachment_upload_chunk(upload, piece(0))
    await client.attachment_upload_abort(upload)
    assert await client.attachment_list(TENANT, DB, doc_id) == []
    with pytest.raises(NotFoundError, match=f"no upload {upload}"):
        await client.attachment_upload_chunk(upload, b"more")

    async def failing() -> AsyncIterator[bytes]:
        yield piece(1)
        raise OSError("the source broke")

    with pytest.raises(OSError, match="the source broke"):  # the helper aborts for the caller
        await client.attachment_upload(TENANT, DB, doc_id, failing(), file_name="y.bin")
    assert await client.attachment_list(TENANT, DB, doc_id) == []


async def test_an_idle_upload_times_out_and_releases_its_document(client: MindoodClient) -> None:
    doc_id = await new_doc(client)
    upload = await client.attachment_upload_begin(TENANT, DB, doc_id, "idle.bin")
    await client.attachment_upload_chunk(upload, b"some bytes")
    # The open change holds the document; reading it waits until the upload is dropped.
    async with asyncio.timeout(IDLE_SECONDS + 15):
        assert await client.attachment_list(TENANT, DB, doc_id) == []
    with pytest.raises(LimitExceededError, match=r"no data for 3 s \(limits.upload_idle_seconds\)"):
        await client.attachment_upload_chunk(upload, b"too late")
    with pytest.raises(NotFoundError):  # reported once, then gone
        await client.attachment_upload_finish(upload)


async def test_upload_mistakes_are_typed_errors(
    daemon: DaemonProcess, client: MindoodClient
) -> None:
    doc_id, other_doc, third_doc = [await new_doc(client) for _ in range(3)]
    with pytest.raises(NotFoundError, match="no upload 999999"):
        await client.attachment_upload_chunk(999_999, b"x")
    with pytest.raises(NotFoundError):
        await client.attachment_upload_begin(TENANT, DB, "nosuchdoc", "a.bin")
    with pytest.raises(NotFoundError, match="no database"):
        await client.attachment_upload_begin(TENANT, "nosuchdb", doc_id, "a.bin")
    upload = await client.attachment_upload_begin(TENANT, DB, doc_id, "a.bin")
    with pytest.raises(InvalidParamsError, match="'data' is larger than 1048576 bytes"):
        await client.attachment_upload_chunk(upload, bytes(MAX_PIECE_BYTES + 1))
    assert await client.attachment_upload_chunk(upload, b"abc", offset=0) == 3
    with pytest.raises(InvalidParamsError, match="offset 0, but 3 bytes were received"):
        await client.attachment_upload_chunk(upload, b"abc", offset=0)
    with pytest.raises(LimitExceededError, match="uploads to one document take turns"):
        await client.attachment_upload_begin(TENANT, DB, doc_id, "b.bin")
    async with await daemon.client() as elsewhere:
        with pytest.raises(NotFoundError, match="opened on another connection"):
            await elsewhere.attachment_upload_chunk(upload, b"x")
    second = await client.attachment_upload_begin(TENANT, DB, other_doc, "c.bin")
    with pytest.raises(LimitExceededError, match="at most 2 open uploads per connection"):
        await client.attachment_upload_begin(TENANT, DB, third_doc, "d.bin")
    await client.attachment_upload_abort(second)
    done = await client.attachment_upload_finish(upload)
    assert (done["doc_id"], done["size"]) == (doc_id, 3)
    with pytest.raises(NotFoundError, match=f"no upload {upload}"):
        await client.attachment_upload_finish(upload)
    listed = await client.attachment_list(TENANT, DB, doc_id)
    assert [f["file_name"] for f in listed] == ["a.bin"]


# -- the CLI -------------------------------------------------------------------------------------
def _json(daemon: DaemonProcess, *args: str) -> Any:
    return json.loads(daemon.cli("attach", *args, "--json").stdout)


async def test_cli_add_get_append_remove(
    daemon: DaemonProcess, client: MindoodClient, tmp_path: Path
) -> None:
    doc_id = await new_doc(client)
    text = "".join(hashlib.sha256(b"%d" % i).hexdigest() + "\n" for i in range(5000))
    original = tmp_path / "report.txt"
    original.write_text(text)
    added = _json(daemon, "add", TENANT, DB, doc_id, str(original))
    assert (added["file_name"], added["mime_type"], added["size"]) == (
        "report.txt",
        "text/plain",
        len(text),
    )
    att = added["id"]
    copy = tmp_path / "copy.txt"
    daemon.cli("attach", "get", TENANT, DB, doc_id, att, "--out", str(copy))
    assert copy.read_text() == text
    ranged = daemon.cli("attach", "get", TENANT, DB, doc_id, att, "--range", "130:200")
    assert ranged.stdout == text[130:200]
    (tmp_path / "tail.txt").write_text("the end\n")
    grown = _json(daemon, "append", TENANT, DB, doc_id, att, str(tmp_path / "tail.txt"))
    assert grown["size"] == len(text) + 8
    listing = daemon.cli("attach", "list", TENANT, DB, doc_id).stdout
    assert att in listing and "report.txt" in listing and str(len(text) + 8) in listing
    daemon.cli("attach", "remove", TENANT, DB, doc_id, att)
    missing = daemon.cli("attach", "get", TENANT, DB, doc_id, att, check=False)
    assert missing.returncode == 1 and "NotFoundError" in missing.stderr
    assert _json(daemon, "list", TENANT, DB, doc_id)["attachments"] == []
    big = tmp_path / "big.bin"
    big.write_bytes(b"".join(piece(i) for i in range(9)))  # big enough to show progress
    shown = daemon.cli("attach", "add", TENANT, DB, doc_id, str(big))
    lines = shown.stderr.splitlines()
    assert lines[0].startswith("sent ") and lines[-1] == "sent 9.0 / 9.0 MiB (100%)", lines
    assert len(lines) <= 11  # a line per tenth, not per piece
    assert shown.stdout.strip() == (await client.attachment_list(TENANT, DB, doc_id))[0]["id"]


def test_cli_ranges() -> None:
    assert parse_range("10:20") == (10, 20)
    assert parse_range("10:") == (10, None)
    assert parse_range(":20") == (0, 20)
    for bad in ("9:3", "x:1", "10", "-1:5"):
        with pytest.raises(UsageError, match="START:END"):
            parse_range(bad)
