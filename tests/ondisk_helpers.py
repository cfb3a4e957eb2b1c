"""Helpers shared by the on-disk store tests: writer processes and a full-store verifier."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from store.bloom import BloomSummary
from store.ondisk import OnDiskStore, OnDiskStoreOptions

REPO = Path(__file__).resolve().parent.parent


@dataclass
class WriterLog:
    """What a writer process acknowledged: id -> content hash, and documents it purged.

    ``purging`` holds documents whose purge was under way when the writer died: either
    outcome is correct for them, so the verifier checks neither.
    """

    acked: dict[str, str] = field(default_factory=dict)
    purged: set[str] = field(default_factory=set)
    purging: set[str] = field(default_factory=set)
    done: bool = False

    def merge(self, other: WriterLog) -> None:
        self.acked.update(other.acked)
        self.purged |= other.purged
        self.purging |= other.purging


def parse_output(text: str) -> WriterLog:
    """Only complete lines count: a line cut by SIGKILL was never acknowledged to anyone."""
    log = WriterLog()
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        parts = line.split()
        if parts[:1] == ["ACK"] and len(parts) == 3:
            log.acked[parts[1]] = parts[2]
        elif parts[:1] == ["PURGING"] and len(parts) == 2:
            log.purging.add(parts[1])
        elif parts[:1] == ["PURGED"] and len(parts) == 2:
            log.purged.add(parts[1])
            log.purging.discard(parts[1])
        elif parts == ["DONE"]:
            log.done = True
    return log


class Writer:
    """One ``tests.crashwriter`` process whose stdout goes to a file (survives SIGKILL)."""

    def __init__(self, store: Path, out: Path, args: Sequence[str]) -> None:
        self.out = out
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(out, "wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.crashwriter", str(store), *args],
                cwd=REPO,
                stdout=sink,
                stderr=subprocess.PIPE,
                env=env,
            )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.communicate(timeout=30)

    def wait(self, timeout: float = 120.0) -> None:
        _out, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, err.decode(errors="replace")[-2000:]

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.out.read_bytes().startswith(b"READY\n") or self.process.poll() is not None:
                return
            time.sleep(0.01)
        raise AssertionError("writer did not start")

    def log(self) -> WriterLog:
        return parse_output(self.out.read_text("utf-8", errors="replace"))


def append_bytes(path: Path, data: bytes) -> None:
    """Append to a file as a crash or a bad disk would leave it (tests call it from async code)."""
    with open(path, "ab") as out:
        out.write(data)


def doc_of(entry_id: str) -> str:
    return entry_id.split("_d_", 1)[0]


async def verify_store(
    path: Path, expected: WriterLog, options: OnDiskStoreOptions | None = None
) -> list[str]:
    """Open the store and check every acknowledged entry, bytes, uniqueness and order."""
    store = await OnDiskStore.open(path, options)
    try:
        ids = await store.get_all_ids()
        assert len(ids) == len(set(ids)), "an id is listed twice"
        metas = await store.get_metadata(ids)
        orders = [meta.receipt_order for meta in metas]
        assert len(set(orders)) == len(orders), "receipt orders repeat"
        assert orders == sorted(orders)
        head = await store.get_store_head()
        assert head.max_receipt_order >= (orders[-1] if orders else 0)
        present = set(ids)
        unsure = expected.purging
        wanted = {i for i in expected.acked if doc_of(i) not in expected.purged | unsure}
        missing = wanted - present
        assert not missing, f"{len(missing)} acknowledged entries lost, e.g. {sorted(missing)[:3]}"
        leftovers = [i for i in present if doc_of(i) in expected.purged]
        assert not leftovers, f"purged documents still have entries: {leftovers[:3]}"
        entries = await store.get_entries(ids)  # raises CorruptEntryError on any bad payload
        assert [entry.id for entry in entries] == ids
        for entry in entries:
            assert hashlib.sha256(entry.encrypted_data).hexdigest() == entry.metadata.content_hash
            if entry.id in expected.acked:
                assert entry.metadata.content_hash == expected.acked[entry.id]
        # concurrent writers, purges and crashes leave the Bloom blocks and tail exact
        assert await store.get_id_bloom_summary() == BloomSummary.of_ids(ids)
        return ids
    finally:
        await store.close()
