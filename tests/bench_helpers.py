"""Running ``mindood bench`` as a user does: the real command in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_sync_bench(workdir: Path, entries: int, *flags: str) -> tuple[dict[str, Any], str]:
    """``mindood bench sync`` at ``entries`` (cheap PBKDF2): its JSON result and its stderr."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "mindood", "bench", "sync", *flags),
            *("--entries", str(entries), "--dir", str(workdir)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MINDOOD_TEST_PBKDF2_ITERATIONS": "1000"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result, done.stderr
