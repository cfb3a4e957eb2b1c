"""Entry and document ids (spec §3, reference-formats §2.3).

Doc entry ids commit the set of Automerge dependency hashes (``depsFingerprint``) and the change
hash, so an id alone tells which document and which change it is; chunk ids name the attachment.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from store.errors import EntryFormatError

#: Upper bound on any entry id; keeps ids usable as file names and wire fields.
MAX_ID_LENGTH = 512
#: Upper bound on a document id.
MAX_DOC_ID_LENGTH = 200

_DOC_ENTRY_ID = re.compile(r"^(.+)_d_([0-9a-f]+|0)_(.+)$", re.DOTALL)
_CHUNK_ID = re.compile(r"^(.+)_a_([^_]+)_(.+)$", re.DOTALL)
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_CUSTOM_DOC_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_GENERATED_DOC_ID = re.compile(r"^(?:[a-z][a-z0-9]{0,9}_)?[0-9a-f]{24}$")
_SAFE_ID = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True, slots=True)
class DocEntryId:
    """The parts of ``<docId>_d_<depsFingerprint>_<automergeHash>``."""

    doc_id: str
    deps_fingerprint: str
    automerge_hash: str


@dataclass(frozen=True, slots=True)
class ChunkId:
    """The parts of ``<docId>_a_<attachmentId>_<chunkId>``."""

    doc_id: str
    attachment_id: str
    chunk_id: str


def deps_fingerprint(dep_hashes: Iterable[str]) -> str:
    """First 8 hex chars of SHA-256 over the sorted dep hashes joined by commas; "0" if none."""
    deps = sorted(dep_hashes)
    if not deps:
        return "0"
    joined = deps[0] if len(deps) == 1 else ",".join(deps)  # most changes have one dep
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:8]


def doc_entry_id(
    doc_id: str, dep_hashes: Iterable[str], automerge_hash: str, *, checked: bool = False
) -> str:
    """Build the id of a doc_create/doc_change/doc_snapshot/doc_delete entry.

    ``checked``: ``doc_id`` passed ``check_doc_id`` before and ``automerge_hash`` is one the
    caller made itself, a change hash in lowercase hex or a snapshot's ``snapshot-<uuid>``. The
    id is then printable ASCII of at most 200 + 3 + 8 + 1 + 64 characters, so both checks
    (on every write of an author) are skipped: they could not fail.
    """
    entry_id = f"{doc_id}_d_{deps_fingerprint(dep_hashes)}_{automerge_hash}"
    if not checked:
        check_doc_id(doc_id)
        check_id(entry_id)
    return entry_id


def parse_doc_entry_id(entry_id: str) -> DocEntryId:
    """Split a doc entry id; raise ``EntryFormatError`` if it is not one."""
    match = _DOC_ENTRY_ID.match(entry_id)
    if match is None:
        raise EntryFormatError(f"not a document entry id: {entry_id[:80]!r}")
    return DocEntryId(match.group(1), match.group(2), match.group(3))


_HEX = frozenset("0123456789abcdef")


def doc_entry_hash(entry_id: str) -> str:
    """``parse_doc_entry_id(entry_id).automerge_hash``, without the regex for usual ids.

    Batch reads need the change hash of every entry they load. When the id ends in
    ``_d_<hex>_<hash>`` with no ``_`` in the hash, that split is the one the pattern's greedy
    match finds; anything else takes the full parse (and its error).
    """
    head, _, change = entry_id.rpartition("_")
    rest, mark, fingerprint = head.rpartition("_d_")
    if change and rest and mark and fingerprint and _HEX.issuperset(fingerprint):
        return change
    return parse_doc_entry_id(entry_id).automerge_hash


def doc_entry_doc_id(entry_id: str) -> str:
    """``parse_doc_entry_id(entry_id).doc_id``, without the regex for usual ids.

    A sync rebuilds (and its serving side compares) the document of every entry it moves.
    The pattern's greedy ``(.+)_d_`` tries the last ``_d_`` first; when what follows it is
    ``<hex>_<something>``, that split matches, so its head is the document. Anything else
    takes the full parse (and its error).
    """
    doc_id, mark, rest = entry_id.rpartition("_d_")
    fingerprint, underscore, change = rest.partition("_")
    if doc_id and mark and underscore and change and fingerprint and _HEX.issuperset(fingerprint):
        return doc_id
    return parse_doc_entry_id(entry_id).doc_id


def attachment_chunk_id(doc_id: str, attachment_id: str, chunk_id: str) -> str:
    """Build the id of an attachment chunk entry."""
    check_doc_id(doc_id)
    if "_" in attachment_id:
        raise EntryFormatError("an attachment id may not contain '_'")
    entry_id = f"{doc_id}_a_{attachment_id}_{chunk_id}"
    check_id(entry_id)
    return entry_id


def parse_attachment_chunk_id(entry_id: str) -> ChunkId:
    """Split an attachment chunk id; raise ``EntryFormatError`` if it is not one."""
    match = _CHUNK_ID.match(entry_id)
    if match is None:
        raise EntryFormatError(f"not an attachment chunk id: {entry_id[:80]!r}")
    return ChunkId(match.group(1), match.group(2), match.group(3))


def check_id(entry_id: str) -> None:
    """Refuse ids that are empty, too long, or contain whitespace/control/non-ASCII characters.

    Ids stay printable ASCII so that code-point order equals byte order on every platform and
    an id is safe inside a file name once escaped.
    """
    if not isinstance(entry_id, str) or not 0 < len(entry_id) <= MAX_ID_LENGTH:
        raise EntryFormatError("an id must be a non-empty string of at most 512 characters")
    if _SAFE_ID.match(entry_id) is None:
        raise EntryFormatError(f"an id must be printable ASCII without spaces: {entry_id[:80]!r}")


def check_doc_id(doc_id: str) -> None:
    """Refuse a doc id that could not round-trip through entry ids."""
    check_id(doc_id)
    if len(doc_id) > MAX_DOC_ID_LENGTH:
        raise EntryFormatError("a document id may have at most 200 characters")


def is_custom_doc_id(doc_id: str) -> bool:
    """Custom (application-chosen) ids are lowercase ``^[a-z][a-z0-9_]*$``."""
    return _CUSTOM_DOC_ID.match(doc_id) is not None


def is_generated_doc_id(doc_id: str) -> bool:
    """Generated ids are 24 hex chars, optionally behind a short lowercase prefix and ``_``."""
    return _GENERATED_DOC_ID.match(doc_id) is not None


class _ObjectIdGenerator:
    """MongoDB-style ObjectIds: seconds, 5 random per-process bytes, a 24-bit counter."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._process_bytes = secrets.token_bytes(5)
        self._counter = secrets.randbelow(1 << 24)

    def next(self, now_seconds: int | None = None) -> str:
        with self._lock:
            if os.getpid() != self._pid:  # a forked child must not repeat its parent's ids
                self._pid = os.getpid()
                self._process_bytes = secrets.token_bytes(5)
            self._counter = (self._counter + 1) & 0xFFFFFF
            counter = self._counter
        seconds = int(time.time()) if now_seconds is None else now_seconds
        raw = (seconds & 0xFFFFFFFF).to_bytes(4, "big") + self._process_bytes
        return (raw + counter.to_bytes(3, "big")).hex()


_OBJECT_IDS = _ObjectIdGenerator()


def generate_object_id() -> str:
    """A fresh 24-hex-char ObjectId (reference-formats §2.3)."""
    return _OBJECT_IDS.next()


def generate_doc_id(prefix: str | None = None) -> str:
    """A fresh document id, ``<prefix>_<objectid>`` when a prefix is given."""
    object_id = generate_object_id()
    if prefix is None:
        return object_id
    if _PREFIX.match(prefix) is None:
        raise EntryFormatError("a doc id prefix must match ^[a-z][a-z0-9]{0,9}$")
    return f"{prefix}_{object_id}"


def uuid7(now_ms: int | None = None) -> str:
    """An RFC 9562 UUIDv7 string: 48-bit ms timestamp, version 7, variant 10, random rest."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= secrets.randbits(12) << 64
    value |= 0b10 << 62
    value |= secrets.randbits(62)
    return str(uuid.UUID(int=value))
