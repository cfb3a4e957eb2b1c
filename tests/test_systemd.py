"""The unit files pass ``systemd-analyze verify``; sysusers/tmpfiles files apply in a root dir.

``systemd-analyze verify`` checks that ExecStart's binary exists, so each unit is verified as a
copy whose ``/usr/bin/mindood`` points at this checkout's console script. It reports unknown or
misspelt settings only as warnings (exit code 0), so the tests also require empty output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "systemd"
MINDOOD = Path(sys.executable).parent / "mindood"

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (.ci/run installs it)",
)


def _copy_unit(source: Path, target_dir: Path) -> Path:
    assert MINDOOD.exists(), f"console script missing: {MINDOOD}"
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / source.name
    target.write_text(source.read_text().replace("/usr/bin/mindood", str(MINDOOD)))
    return target


def _verify(unit: Path, *, user: bool, runtime: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_COLOR": "0"}
    args = ["systemd-analyze", *(["--user"] if user else []), "verify", str(unit)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


@needs_analyze
@pytest.mark.parametrize(("relative", "user"), [("system", False), ("user", True)])
def test_units_verify_cleanly(tmp_path: Path, relative: str, user: bool) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    unit = _copy_unit(UNITS / relative / "mindood.service", tmp_path / relative)
    result = _verify(unit, user=user, runtime=runtime)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    assert str(unit) not in output and "mindood.service" not in output, output


@needs_analyze
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    unit = _copy_unit(UNITS / "system" / "mindood.service", tmp_path)
    unit.write_text(unit.read_text().replace("Type=notify", "Type=notifyy"))
    result = _verify(unit, user=False, runtime=runtime)
    assert "Failed to parse service type" in result.stdout + result.stderr


def test_system_unit_has_the_promised_settings() -> None:
    text = (UNITS / "system" / "mindood.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=30",
        "Restart=on-failure",
        "User=mindood",
        "StateDirectory=mindood",
        "RuntimeDirectory=mindood",
        "ProtectSystem=strict",
        "ProtectHome=true",
        "PrivateTmp=true",
        "NoNewPrivileges=true",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert f"\n{line}\n" in text, line
    assert "run --data-dir ${STATE_DIRECTORY} --socket ${RUNTIME_DIRECTORY}/mindood.sock" in text


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers/systemd-tmpfiles are not installed",
)
@pytest.mark.skipif(os.geteuid() != 0, reason="creating users and chowning needs root")
def test_sysusers_and_tmpfiles_apply_to_an_empty_root(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        (etc / name).touch()
    sysusers = UNITS / "sysusers.d" / "mindood.conf"
    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(sysusers)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    passwd = (etc / "passwd").read_text()
    assert passwd.startswith("mindood:") and ":/var/lib/mindood:" in passwd
    tmpfiles = UNITS / "tmpfiles.d" / "mindood.conf"
    subprocess.run(
        ["systemd-tmpfiles", f"--root={tmp_path}", "--create", str(tmpfiles)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    uid = int(passwd.split(":")[2])
    for path, mode in (("var/lib/mindood", 0o700), ("run/mindood", 0o700)):
        info = (tmp_path / path).stat()
        assert info.st_uid == uid and info.st_mode & 0o777 == mode
    config = (tmp_path / "etc/mindood").stat()
    assert config.st_uid == 0 and config.st_mode & 0o777 == 0o750
