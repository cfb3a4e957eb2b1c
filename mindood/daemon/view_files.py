"""The files a view leaves in its tenant's directory, sealed like everything else there.

Layout, under the data directory (``.tenant`` is the tenant's metadata directory, which no
database name can take)::

    tenants/<tenant>/.tenant/views/<stem>.view    the definition
    tenants/<tenant>/.tenant/views/<stem>.state   the built state: column values and cursors

``<stem>`` is the view's name when that is a plain file name, else ``~`` and a hash of it (the
name itself is inside the file). Both files hold document data (field names, filter values,
column values), and a locked tenant keeps only ciphertext on disk, so both are AES-256-GCM
sealed under a key derived (HKDF-SHA256) from the tenant user's private signing key, which
only an unlocked tenant holds. Each file is written whole: temp file, fsync, rename, fsync of
the directory, so a crash leaves the old file or the new one.

The sealed content is MessagePack: ``{"kind", "name", ...}``; a file whose kind or name is not
the one its place promises is refused like a damaged one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgpack
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mindood.crypto.aead import decrypt_payload, encrypt_payload
from mindood.daemon.paths import TENANTS_DIR
from mindood.errors import DecryptionError, MindoodError
from mindood.storefactory import META_DIR
from store.atomicfile import atomic_write, fsync_dir

MAGIC = b"MDVIEW1\n"
VIEWS_DIR = "views"
DEFINITION_SUFFIX = ".view"
STATE_SUFFIX = ".state"
#: A view file larger than this is refused before it is read (a state of ~1M small rows fits).
MAX_FILE_BYTES = 512 * 1024 * 1024
_PLAIN_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HASHED_STEM = re.compile(r"^~[0-9a-f]{40}$")
_KEY_SALT = b"mindood view files v1"

FileKind = Literal["definition", "state"]


class ViewFileError(MindoodError):
    """A view file cannot be read (damaged, truncated, sealed by another user) or written."""


def stem_for(name: str) -> str:
    """The file stem of a view name (the name itself when it is a plain file name)."""
    if _PLAIN_STEM.match(name) and ".." not in name:
        return name
    return "~" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:40]


def name_of_stem(stem: str) -> str | None:
    """The view name a stem spells, when it is not a hash."""
    return None if stem.startswith("~") else stem


def is_stem(text: str) -> bool:
    return bool(_HASHED_STEM.match(text)) or (stem_for(text) == text)


def views_dir(data_dir: Path, tenant_id: str) -> Path:
    return data_dir / TENANTS_DIR / tenant_id / META_DIR / VIEWS_DIR


def file_key(signing_key: Ed25519PrivateKey, tenant_id: str) -> bytes:
    """The key sealing one tenant's view files: from the user's key, apart for each tenant."""
    raw = signing_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=_KEY_SALT, info=tenant_id.encode("utf-8")
    )
    return hkdf.derive(raw)


@dataclass(frozen=True, slots=True)
class ViewFiles:
    """The two files of one view in one tenant's directory."""

    directory: Path
    stem: str

    @property
    def definition_path(self) -> Path:
        return self.directory / f"{self.stem}{DEFINITION_SUFFIX}"

    @property
    def state_path(self) -> Path:
        return self.directory / f"{self.stem}{STATE_SUFFIX}"

    def path(self, kind: FileKind) -> Path:
        return self.definition_path if kind == "definition" else self.state_path

    async def write(self, kind: FileKind, key: bytes, name: str, body: dict[str, Any]) -> int:
        """Seal and durably replace one file; returns its size."""
        return await asyncio.to_thread(self._write, kind, key, name, body)

    def _write(self, kind: FileKind, key: bytes, name: str, body: dict[str, Any]) -> int:
        try:
            plain: bytes = msgpack.packb(
                {"kind": kind, "name": name, **body}, use_bin_type=True, datetime=True
            )
        except (TypeError, ValueError, OverflowError) as exc:
            raise ViewFileError(f"view {name!r}: its {kind} cannot be saved: {exc}") from exc
        sealed = MAGIC + encrypt_payload(key, plain)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(self.path(kind), sealed)
        except OSError as exc:
            raise ViewFileError(f"view {name!r}: cannot write its {kind} file: {exc}") from exc
        return len(sealed)

    async def read(self, kind: FileKind, key: bytes, name: str | None) -> dict[str, Any] | None:
        """The content of one file (None if there is none); ViewFileError if it is unusable.

        ``name`` is the view name the caller expects; None accepts the one inside (hashed
        stems, whose name is known only once the file is open).
        """
        return await asyncio.to_thread(self._read, kind, key, name)

    def _read(self, kind: FileKind, key: bytes, name: str | None) -> dict[str, Any] | None:
        path = self.path(kind)
        try:
            with path.open("rb") as handle:
                sealed = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ViewFileError(f"{path.name}: cannot be read: {exc}") from exc
        if len(sealed) > MAX_FILE_BYTES:
            raise ViewFileError(f"{path.name}: larger than {MAX_FILE_BYTES} bytes")
        if not sealed.startswith(MAGIC):
            raise ViewFileError(f"{path.name}: not a mindood view file")
        try:
            plain = decrypt_payload(key, sealed[len(MAGIC) :])
        except DecryptionError:
            raise ViewFileError(
                f"{path.name}: damaged, or sealed by another user of this tenant"
            ) from None
        try:
            body = msgpack.unpackb(plain, raw=False, strict_map_key=False, timestamp=3)
        except (ValueError, TypeError) as exc:  # sealed garbage: a bug, not bit rot
            raise ViewFileError(f"{path.name}: unreadable content: {exc}") from None
        if not isinstance(body, dict) or body.get("kind") != kind:
            raise ViewFileError(f"{path.name}: not a view {kind}")
        inside = body.get("name")
        if not isinstance(inside, str) or stem_for(inside) != self.stem:
            raise ViewFileError(f"{path.name}: holds a view of another name")
        if name is not None and inside != name:
            raise ViewFileError(f"{path.name}: holds view {inside!r}, not {name!r}")
        return body

    async def delete(self, kind: FileKind | None = None) -> None:
        """Remove one file (or both), durably; a file already gone is fine."""
        kinds: tuple[FileKind, ...] = (kind,) if kind is not None else ("state", "definition")
        await asyncio.to_thread(self._delete, kinds)

    def _delete(self, kinds: tuple[FileKind, ...]) -> None:
        removed = False
        for each in kinds:
            with contextlib.suppress(FileNotFoundError):
                self.path(each).unlink()
                removed = True
        if removed:
            try:
                fsync_dir(self.directory)
            except OSError as exc:
                raise ViewFileError(f"cannot sync {self.directory}: {exc}") from exc


def list_stems(directory: Path) -> list[str]:
    """The stems of the definitions in a views directory (temp files and strays skipped)."""
    try:
        names = [p.name for p in directory.iterdir()]
    except FileNotFoundError:
        return []
    stems = [n[: -len(DEFINITION_SUFFIX)] for n in names if n.endswith(DEFINITION_SUFFIX)]
    return sorted(s for s in stems if is_stem(s))


__all__ = [
    "ViewFileError",
    "ViewFiles",
    "file_key",
    "list_stems",
    "name_of_stem",
    "stem_for",
    "views_dir",
]
