"""Databases of a tenant: documents as signed, encrypted Automerge changes in a store."""

from mindood.db.attachments import AttachmentInfo
from mindood.db.changes import ChangeCursor
from mindood.db.database import DBOptions, MindooDB, NewDocument, SyncResult
from mindood.db.doc import MindooDoc
from mindood.db.errors import (
    AttachmentNotFoundError,
    AttachmentUnavailableError,
    DocumentPurgedError,
    InvalidCursorError,
    ReadOnlyDatabaseError,
    ReadOnlyDocumentError,
)
from mindood.db.history import DocumentVersion, Timestamp, TimeTravelDB
from mindood.db.keys import KeyBagKeys, KeyProvider, Signer, UserSigner, signer_for
from mindood.db.trust import AdminOnlyTrust, OpenTrust, TrustPolicy

__all__ = [
    "AdminOnlyTrust",
    "AttachmentInfo",
    "AttachmentNotFoundError",
    "AttachmentUnavailableError",
    "ChangeCursor",
    "DBOptions",
    "DocumentPurgedError",
    "DocumentVersion",
    "InvalidCursorError",
    "KeyBagKeys",
    "KeyProvider",
    "MindooDB",
    "MindooDoc",
    "NewDocument",
    "OpenTrust",
    "ReadOnlyDatabaseError",
    "ReadOnlyDocumentError",
    "Signer",
    "SyncResult",
    "TimeTravelDB",
    "Timestamp",
    "TrustPolicy",
    "UserSigner",
    "signer_for",
]
