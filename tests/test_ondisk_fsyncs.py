"""Each awaited create and change is one fsync: the commit of its SQLite write-ahead log.

SQLite syncs from C, so the test counts the system calls themselves: a child process writes
documents one at a time under ``strace``, between two marker fsyncs. Skipped where ``strace``
is missing or cannot trace (a container without ptrace).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WRITES = 12
_CHILD = """
import asyncio, os, sys
from pathlib import Path
from mindood.db import DBOptions, KeyBagKeys, MindooDB, OpenTrust, signer_for
from mindood.identity import create_user_id, unlock
from mindood.keybag import KeyBag
from store.ondisk import OnDiskStore

def mark(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.fsync(fd)
    os.close(fd)

async def main(root, count):
    user = unlock(create_user_id("cn=t/o=mindood", "pw"), "pw")
    bag = KeyBag.for_user(user.private, "pw")
    bag.create_and_store_symmetric_key("t", "default")
    store = await OnDiskStore.open(root / "docs")
    db = MindooDB(tenant_id="t", db_id="t", store=store, signer=signer_for(user),
                  keys=KeyBagKeys(bag, "t"), trust=OpenTrust(), options=DBOptions())
    first = await db.create_document({"n": 0})
    mark(root / "begin-marker")
    ids = [(await db.create_document({"n": i})).get_id() for i in range(count)]
    for doc_id in ids:
        await db.change_doc(doc_id, lambda d: d.get_data().__setitem__("n", -1))
    mark(root / "end-marker")
    await store.close()

asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
"""


def _syncs(trace: str) -> list[str]:
    """The files fsync'd between the two markers, one per call, by name."""
    calls = re.findall(r"f(?:data)?sync\(\d+<([^>]*)>\)", trace)
    names = [Path(path).name for path in calls]
    return names[names.index("begin-marker") + 1 : names.index("end-marker")]


def _traced(root: Path, writes: int) -> list[str]:
    log = root / "trace"
    env = {**os.environ, "MINDOOD_TEST_PBKDF2_ITERATIONS": "1000"}
    strace = ["strace", "-f", "-y", "-e", "trace=fsync,fdatasync", "-o", str(log)]
    done = subprocess.run(
        [*strace, sys.executable, "-c", _CHILD, str(root), str(writes)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0 and "ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr[-2000:]
    return _syncs(log.read_text())


needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")


@needs_strace
def test_every_lone_create_and_change_costs_one_wal_fsync_and_nothing_else(
    tmp_path: Path,
) -> None:
    assert _traced(tmp_path, WRITES) == ["store.sqlite-wal"] * (2 * WRITES)


@needs_strace
def test_checkpoints_of_a_steady_writer_add_a_few_fsyncs_per_cycle_not_per_write(
    tmp_path: Path,
) -> None:
    """About 9 MiB of log, two triggers' worth: a checkpoint syncs the log and the database.

    A trigger on the log file's size, which a restarted log keeps, checkpointed after nearly
    every commit once the file had reached it (here: 34 database and 41 more log fsyncs).
    """
    writes = 150
    syncs = _traced(tmp_path, writes)
    database = syncs.count("store.sqlite")
    assert database <= 6, f"{database} database-file fsyncs for {2 * writes} writes"
    assert syncs.count("store.sqlite-wal") >= 2 * writes
    extra = len(syncs) - 2 * writes  # checkpoints', log restarts', the directory's
    assert extra <= 12, f"{extra} fsyncs beside the {2 * writes} commits"
