"""Where the daemon keeps things when nobody says: XDG base directories, or systemd's.

Precedence, highest first: a command-line flag, the configuration file, systemd's variables
(``$STATE_DIRECTORY``, ``$RUNTIME_DIRECTORY``, ``$CONFIGURATION_DIRECTORY``, set by the unit's
``StateDirectory=`` etc.), the XDG variables, the XDG defaults under ``~``.

Every function takes the environment as an argument, so tests never patch ``os.environ``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from mindood.errors import MindoodError

APP = "mindood"
SOCKET_NAME = "mindood.sock"
CONFIG_NAME = "mindood.toml"
#: Where tenants (their stores and metadata) live under the data directory.
TENANTS_DIR = "tenants"
#: A client finds a daemon with a non-default socket through this variable (or ``--socket``).
SOCKET_ENV = "MINDOOD_SOCKET"


class UnsafeDirectoryError(MindoodError):
    """A directory meant to be private is owned by someone else or open to other users."""


def _first(env: Mapping[str, str], name: str) -> Path | None:
    """systemd passes several directories colon-separated; ours is the first."""
    raw = env.get(name, "")
    first = raw.split(":", 1)[0].strip()
    return Path(first) if first else None


def _home(env: Mapping[str, str]) -> Path:
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def _xdg(env: Mapping[str, str], name: str, fallback: str) -> Path:
    raw = env.get(name, "").strip()
    path = Path(raw) if raw else None
    if path is None or not path.is_absolute():  # the spec says relative values are ignored
        return _home(env) / fallback
    return path


def default_data_dir(env: Mapping[str, str]) -> Path:
    return _first(env, "STATE_DIRECTORY") or _xdg(env, "XDG_DATA_HOME", ".local/share") / APP


def default_config_file(env: Mapping[str, str]) -> Path:
    configured = _first(env, "CONFIGURATION_DIRECTORY")
    if configured is not None:
        return configured / CONFIG_NAME
    return _xdg(env, "XDG_CONFIG_HOME", ".config") / APP / CONFIG_NAME


def default_socket(env: Mapping[str, str]) -> Path:
    """``$RUNTIME_DIRECTORY/mindood.sock``, ``$XDG_RUNTIME_DIR/mindood/mindood.sock``, else
    ``/tmp/mindood-<uid>/mindood.sock`` (a private directory, checked before use)."""
    runtime = _first(env, "RUNTIME_DIRECTORY")
    if runtime is not None:
        return runtime / SOCKET_NAME
    xdg = env.get("XDG_RUNTIME_DIR", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP / SOCKET_NAME
    return Path("/tmp") / f"{APP}-{os.getuid()}" / SOCKET_NAME


def client_socket(env: Mapping[str, str]) -> Path:
    """The socket a client connects to without ``--socket``: ``$MINDOOD_SOCKET`` or the default."""
    explicit = env.get(SOCKET_ENV, "").strip()
    return Path(explicit) if explicit else default_socket(env)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (0700) or check an existing one is ours and closed to others."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectoryError(f"{path} is not a directory")
    if info.st_uid != os.getuid():
        raise UnsafeDirectoryError(f"{path} belongs to uid {info.st_uid}, not to us")
    if info.st_mode & 0o077:
        raise UnsafeDirectoryError(
            f"{path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); "
            "it should be 0700"
        )
    return path


__all__ = [
    "CONFIG_NAME",
    "SOCKET_ENV",
    "SOCKET_NAME",
    "TENANTS_DIR",
    "UnsafeDirectoryError",
    "client_socket",
    "default_config_file",
    "default_data_dir",
    "default_socket",
    "ensure_private_dir",
]
