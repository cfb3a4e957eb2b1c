"""Typed errors of the store layer.

Everything that enters a store from outside (disk, wire, another process) is checked at the
boundary; a check that fails raises one of these narrow types, never a bare ``ValueError`` or
whatever the decoding library happened to throw.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error raised by ``store/``."""


class EntryFormatError(StoreError):
    """A record (metadata, entry, id) is malformed, of the wrong type, or over a size limit."""


class EntryIntegrityError(StoreError):
    """An entry's content does not match its metadata (content hash, sizes, id vs. doc id)."""


class EntrySignatureError(EntryIntegrityError):
    """An entry's author signature does not verify over its signing bytes."""


class CorruptEntryError(StoreError):
    """Bytes read back from storage do not match the hash they were stored under."""


class StoreClosedError(StoreError):
    """The store was used after ``close()``."""


class StoreLockedError(StoreError):
    """Another store instance holds an exclusive lock this operation needs."""


class StoreCorruptionError(StoreError):
    """Files of an on-disk store are damaged in a way the store cannot repair by itself."""


class StoreFormatError(StoreError):
    """A store directory holds a format this version does not read (older, newer, foreign)."""


class StoreUnavailableError(StoreError):
    """A store's files cannot be opened, read or written (permissions, I/O error, disk full)."""


class StoreFullError(StoreUnavailableError):
    """The disk is full: writes fail until space is freed, what is stored stays readable."""
