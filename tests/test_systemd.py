"""The unit files pass ``systemd-analyze verify`` as shipped, with mindood where
``scripts/install-systemd`` puts it; sysusers/tmpfiles files apply in a root dir.

``verify`` checks that ExecStart's binary exists, so the command must be where the unit says: the
user unit (``%h/.local/bin/mindood``) is installed by the script itself into a temporary home,
linked to the venv running these tests (``--venv``: no package to download); the system unit
(``/usr/local/bin/mindood``) is verified in a private mount namespace whose ``/usr/local/bin``
holds that link, since a test must not write to the real one. ``verify`` reports unknown or
misspelt settings only as warnings (exit code 0), so the tests also require empty output; in this
container it prints nothing about other units, so nothing is filtered.
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
INSTALL = ROOT / "scripts" / "install-systemd"
VENV = Path(sys.prefix)  # the venv running the tests: mindood is installed in it

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (scripts/test-deps installs it)",
)
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _private_env(tmp_path: Path) -> dict[str, str]:
    """A home and runtime dir of our own: no real user manager or config is reached."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("XDG_") and k not in {"DBUS_SESSION_BUS_ADDRESS", "HOME"}
    }
    home, runtime = tmp_path / "home", tmp_path / "runtime"
    home.mkdir(exist_ok=True)
    runtime.mkdir(mode=0o700, exist_ok=True)
    env.update(HOME=str(home), XDG_RUNTIME_DIR=str(runtime), SYSTEMD_LOG_COLOR="0")
    return env


def _verify(
    unit: Path, env: dict[str, str], *, user: bool, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    args = [*prefix, "systemd-analyze", *(["--user"] if user else []), "verify", str(unit)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def _install_user_unit(env: dict[str, str]) -> Path:
    """``install-systemd --user`` into the private home; the path of the installed unit."""
    assert (VENV / "bin" / "mindood").exists(), f"no console script in {VENV}"
    result = subprocess.run(
        [str(INSTALL), "--user", "--venv", str(VENV), "--no-start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    home = Path(env["HOME"])
    link = home / ".local" / "bin" / "mindood"
    assert link.resolve() == (VENV / "bin" / "mindood").resolve()
    return home / ".config" / "systemd" / "user" / "mindood.service"


def _assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, output
    assert output == "", output


@needs_analyze
def test_user_unit_verifies_as_installed(tmp_path: Path) -> None:
    env = _private_env(tmp_path)
    installed = _install_user_unit(env)
    shipped = UNITS / "user" / "mindood.service"
    assert installed.read_bytes() == shipped.read_bytes()
    _assert_clean(_verify(installed, env, user=True))


@needs_analyze
def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    env = _private_env(tmp_path)
    installed = _install_user_unit(env)
    installed.write_text(installed.read_text().replace("Type=notify", "Type=notifyy"))
    result = _verify(installed, env, user=True)
    assert "Failed to parse service type" in result.stdout + result.stderr


def _mount_namespace_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=10)
    return probe.returncode == 0


def _verify_system_unit(
    unit: Path, usr_local_bin: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` in a mount namespace where ``usr_local_bin`` is /usr/local/bin."""
    script = 'mount --bind "$1" /usr/local/bin && shift && exec "$@"'
    args = ["unshare", "--mount", "--", "sh", "-c", script, "sh", str(usr_local_bin)]
    args += ["systemd-analyze", "verify", str(unit)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


@needs_analyze
@pytest.mark.skipif(not _mount_namespace_works(), reason="needs root and unshare --mount")
def test_system_unit_verifies_as_shipped(tmp_path: Path) -> None:
    env = _private_env(tmp_path)
    unit = UNITS / "system" / "mindood.service"
    installed = tmp_path / "installed"
    installed.mkdir()
    # What install-systemd makes: /usr/local/bin/mindood -> <venv>/bin/mindood.
    (installed / "mindood").symlink_to(VENV / "bin" / "mindood")
    _assert_clean(_verify_system_unit(unit, installed, env))
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = _verify_system_unit(unit, empty, env)
    assert "/usr/local/bin/mindood is not executable" in missing.stdout + missing.stderr


@needs_root
def test_install_refuses_a_venv_the_system_unit_cannot_read(tmp_path: Path) -> None:
    prefix = Path("/home") / f"mindood-test-{os.getpid()}" / "venv"
    result = subprocess.run(
        [str(INSTALL), "--prefix", str(prefix), "--no-start"],
        env=_private_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "ProtectHome=true" in result.stderr
    assert not prefix.parent.exists()


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
        "ExecStart=/usr/local/bin/mindood run --data-dir ${STATE_DIRECTORY}"
        " --socket ${RUNTIME_DIRECTORY}/mindood.sock",
    ):
        assert f"\n{line}\n" in text, line


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers/systemd-tmpfiles are not installed",
)
@needs_root
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
