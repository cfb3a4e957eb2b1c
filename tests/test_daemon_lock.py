"""One daemon per data directory: the flock, the holder's pid in the refusal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mindood.daemon.lock import AlreadyRunningError, InstanceLock


def test_second_holder_is_refused_with_the_first_pid(tmp_path: Path) -> None:
    first = InstanceLock(tmp_path)
    first.acquire()
    try:
        assert first.held
        assert (tmp_path / "daemon.lock").read_text().strip() == str(os.getpid())
        with pytest.raises(AlreadyRunningError) as info:
            InstanceLock(tmp_path).acquire()  # another open file description: a real conflict
        assert info.value.pid == os.getpid()
        assert f"(pid {os.getpid()})" in str(info.value) and str(tmp_path) in str(info.value)
    finally:
        first.release()
    assert not first.held
    again = InstanceLock(tmp_path)
    again.acquire()
    again.release()
    again.release()  # idempotent
