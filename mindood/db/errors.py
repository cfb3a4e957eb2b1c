"""Errors of the database layer beyond the shared ones in ``mindood.errors``.

They live next to the code that raises them (this package owns them) and all derive from
``DatabaseError``, so ``except DatabaseError`` keeps catching everything a database refuses.
"""

from __future__ import annotations

from mindood.errors import DatabaseError, DocumentNotFoundError


class ReadOnlyDatabaseError(DatabaseError):
    """A time-travel view was asked to write: the past cannot be changed."""


class ReadOnlyDocumentError(DatabaseError):
    """An attachment was to be written outside ``change_doc`` (writes belong to a change)."""


class AttachmentNotFoundError(DatabaseError):
    """The document has no attachment with this id (never added, or removed)."""


class AttachmentUnavailableError(DatabaseError):
    """Chunks of an attachment are missing or inconsistent (not synced yet, or forged)."""


class DocumentPurgedError(DocumentNotFoundError):
    """The document's history was purged on request; it may not be written or received again."""


class InvalidCursorError(DatabaseError):
    """A change cursor string is malformed (not one ``ChangeCursor.encode`` produced)."""
