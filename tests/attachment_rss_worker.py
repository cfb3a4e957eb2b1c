"""Subprocess for the bounded-memory test: stream a large attachment in and out, report peak RSS.

Run as ``python -m tests.attachment_rss_worker <MiB> <dir> [write batch MiB]``; prints one JSON
line. Its own process, so ``ru_maxrss`` (the lifetime peak) measures this run and nothing else.
The file is random (nothing deduplicates) and exists only as a stream on both sides: a SHA-256
is taken going in and coming out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from mindood.db import DBOptions, MindooDoc
from store.ondisk.options import OnDiskStoreOptions
from store.ondisk.store import OnDiskStore
from tests.db_helpers import KeySigner, default_keys, make_db

MIB = 1024 * 1024
PIECE = 64 * 1024


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def run(size_mib: int, path: Path, batch_mib: int | None) -> dict[str, float]:
    options = OnDiskStoreOptions(fsync=False)
    docs = await OnDiskStore.open(path / "docs", options)
    files = await OnDiskStore.open(path / "attachments", options)
    db = make_db(
        KeySigner(),
        default_keys(),
        docs,
        files,
        options=DBOptions(attachment_write_batch_bytes=batch_mib * MIB) if batch_mib else None,
    )
    doc = await db.create_document({"name": "big"})

    async def warm_up(d: MindooDoc) -> None:  # first use of every code path, before measuring
        info = await d.add_attachment(os.urandom(3 * PIECE), "warm.bin")
        assert await d.get_attachment(info.attachment_id)

    doc = await db.change_doc(doc, warm_up)
    baseline = peak_mib()
    sent = hashlib.sha256()

    async def source() -> AsyncIterator[bytes]:
        for _ in range(size_mib * MIB // PIECE):
            piece = os.urandom(PIECE)
            sent.update(piece)
            yield piece

    async def add(d: MindooDoc) -> None:
        await d.add_attachment_stream(source(), "big.bin", "application/octet-stream")

    doc = await db.change_doc(doc, add)
    info = doc.get_attachments()[-1]
    assert info.size == size_mib * MIB
    after_write = peak_mib()
    received = hashlib.sha256()
    async for piece in doc.stream_attachment(info.attachment_id):
        received.update(piece)
    assert received.digest() == sent.digest(), "the file came back different"
    peak = peak_mib()
    await docs.close()
    await files.close()
    return {
        "size_mib": size_mib,
        "baseline_mib": round(baseline, 1),
        "write_growth_mib": round(after_write - baseline, 1),
        "growth_mib": round(peak - baseline, 1),
    }


def main() -> None:
    size_mib, path = int(sys.argv[1]), Path(sys.argv[2])
    batch_mib = int(sys.argv[3]) if len(sys.argv) > 3 else None  # None: the default
    print(json.dumps(asyncio.run(run(size_mib, path, batch_mib))))


if __name__ == "__main__":
    main()
