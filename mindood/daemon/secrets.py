"""Reading passwords from files: systemd credentials, ``password_file`` settings, CLI flags.

A password file holds the password and at most one line ending; it is read whole, bounded, and
never logged. ``$CREDENTIALS_DIRECTORY`` is where systemd puts ``LoadCredential=`` files (0400,
readable only by the service), so a system service can unlock its tenants at boot without a
password in the unit file or on a command line.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from mindood.errors import MindoodError

log = logging.getLogger("mindood.secrets")

MAX_PASSWORD_BYTES = 4096
#: Shortest password accepted where one is chosen (existing ones are only checked for being right).
MIN_NEW_PASSWORD_CHARS = 8
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


class PasswordFileError(MindoodError):
    """A password file is missing, not a regular file, empty, too long, or not UTF-8."""


def read_password_file(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise PasswordFileError(f"cannot open password file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PasswordFileError(f"password file {path} is not a regular file")
        if info.st_mode & 0o004:
            log.warning("password file %s is readable by every user", path)
        data = os.read(fd, MAX_PASSWORD_BYTES + 2)
    finally:
        os.close(fd)
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if len(data) > MAX_PASSWORD_BYTES:
        raise PasswordFileError(f"password file {path} is longer than {MAX_PASSWORD_BYTES} bytes")
    if not data:
        raise PasswordFileError(f"password file {path} is empty")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PasswordFileError(f"password file {path} is not UTF-8") from None


def credential_path(env: Mapping[str, str], name: str) -> Path | None:
    """``$CREDENTIALS_DIRECTORY/<name>`` if systemd provides that credential, else None."""
    directory = env.get(CREDENTIALS_ENV, "").strip()
    if not directory or "/" in name or name in ("", ".", ".."):
        return None
    path = Path(directory) / name
    return path if path.is_file() else None


__all__ = ["CREDENTIALS_ENV", "PasswordFileError", "credential_path", "read_password_file"]
