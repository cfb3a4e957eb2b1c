"""Databases of a tenant: documents as signed, encrypted Automerge changes in a store."""

from mindood.db.database import DBOptions, MindooDB, SyncResult
from mindood.db.doc import MindooDoc
from mindood.db.keys import KeyBagKeys, KeyProvider, Signer, UserSigner, signer_for
from mindood.db.trust import AdminOnlyTrust, OpenTrust, TrustPolicy

__all__ = [
    "AdminOnlyTrust",
    "DBOptions",
    "KeyBagKeys",
    "KeyProvider",
    "MindooDB",
    "MindooDoc",
    "OpenTrust",
    "Signer",
    "SyncResult",
    "TrustPolicy",
    "UserSigner",
    "signer_for",
]
