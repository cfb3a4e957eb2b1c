"""Typed errors of the ``mindood`` package.

Every check on bytes or JSON that come from outside (disk, wire, another user) raises one of these
narrow types, never a bare ``ValueError`` or whatever the underlying library happened to throw, so
callers can tell bad input from a bug. Any other exception escaping ``mindood`` is a bug.
"""

from __future__ import annotations


class MindoodError(Exception):
    """Base class of every error raised on purpose by ``mindood``."""


class CryptoError(MindoodError):
    """A cryptographic operation failed or was given unusable input."""


class InvalidKeyError(CryptoError):
    """A key has the wrong type or size for the operation (a caller mistake, not bad data)."""


class DecryptionError(CryptoError):
    """Ciphertext did not decrypt: wrong key, tampered or truncated data."""


class WrongPasswordError(CryptoError):
    """A password-protected blob did not decrypt: wrong password, or the blob was altered."""


class KeyFormatError(CryptoError):
    """A PEM, key blob or identity JSON is malformed, of the wrong type, or out of range."""


class KeyMismatchError(CryptoError):
    """A decrypted private key does not belong to the public key it is stored with."""


class SigningOnlyIdentityError(CryptoError):
    """An identity unlocked for signing only was asked for its encryption key."""


class KeyNotFoundError(MindoodError):
    """No key is stored under the requested key id."""


class KeyBagError(MindoodError):
    """A KeyBag operation failed (base for KeyBag-specific problems)."""


class KeyBagFormatError(KeyBagError, KeyFormatError):
    """A saved KeyBag blob or its decrypted JSON is malformed."""


class DatabaseError(MindoodError):
    """A database operation could not be carried out."""


class DocumentNotFoundError(DatabaseError):
    """No readable document has this id (never created, purged, or written by no trusted user)."""


class DocumentDeletedError(DatabaseError):
    """The document is deleted; it can be read but not changed."""


class DocumentExistsError(DatabaseError):
    """A create named a custom document id that the database already holds."""


class InvalidChangeError(DatabaseError):
    """A ``change_doc`` callback did something a change may not do (e.g. several changes)."""


class AccessRevokedError(DatabaseError):
    """The current user's key was revoked: its new changes would be refused everywhere."""


class EntryTooLargeError(DatabaseError):
    """A write would make an entry over the tenant-wide size limit, which could never sync.

    ``size`` is the entry's encrypted payload length and ``limit`` the maximum
    (``store.limits.MAX_ENTRY_BYTES``). Nothing was stored.
    """

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class CorruptDocumentError(DatabaseError):
    """Stored entries of a document decrypted but did not form a valid Automerge history."""


class QuarantinedEntryError(CorruptDocumentError):
    """An entry a document needs was damaged on disk and quarantined; a peer restores it."""

    def __init__(self, message: str, entry_ids: list[str] | None = None) -> None:
        super().__init__(message)
        self.entry_ids: list[str] = list(entry_ids or [])


class DocumentError(MindoodError):
    """An Automerge document operation failed (base of the ``mindood.document`` errors)."""


class DocumentLoadError(DocumentError):
    """Saved Automerge bytes did not load: truncated, corrupted, or not an Automerge document."""


class ChangeApplyError(DocumentError):
    """Changes were given to a document but not all of the expected ones are in it afterwards.

    ``missing`` lists the hex hashes that are still absent (typically: a dependency is missing, so
    Automerge holds the change back). Changes that did apply stay applied; the document is usable.
    """

    def __init__(self, message: str, missing: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing: list[str] = list(missing or [])


class ChangeFormatError(ChangeApplyError):
    """A change chunk is malformed: wrong magic, bad checksum, truncated, or not a change."""


class UnknownHeadsError(DocumentError):
    """Heads were given that name changes this document does not contain."""


class UnsupportedValueError(DocumentError, TypeError):
    """A value cannot be stored in (or read from) a document through this Automerge binding."""


class ProxyClosedError(DocumentError):
    """A live document proxy was used after the change it belongs to had ended."""


class TenantError(MindoodError):
    """A tenant, directory or join operation could not be carried out (base of tenant errors)."""


class InvalidNameError(TenantError, ValueError):
    """A tenant id, database name, key id or group name is not allowed (a caller mistake)."""


class InvalidUriError(TenantError):
    """An ``mdb://`` URI (or the payload object it carries) is malformed or over a size limit."""


class UnsupportedUriVersionError(InvalidUriError):
    """An ``mdb://`` payload carries a version ``v`` this implementation does not read."""


class InvalidJoinRequestError(InvalidUriError):
    """A join request is well-formed JSON but its fields are missing, mistyped or invalid."""


class InvalidJoinResponseError(InvalidUriError):
    """A join response is well-formed JSON but its fields are missing, mistyped or invalid."""


class WrongSharePasswordError(WrongPasswordError):
    """The one-time share password does not open the keys in a (legacy v2) join response."""


class SharePasswordRequiredError(TenantError):
    """A legacy v2 join response needs the one-time share password and none was given."""


class JoinResponseDeviceMismatchError(TenantError):
    """A join response is bound to a different device: this user's RSA key cannot open it."""


class NotAdminError(TenantError):
    """The identity given for an admin operation is not the tenant's administrator."""


class UserNotFoundError(TenantError):
    """No grant in the directory matches the username."""


class GroupNotFoundError(TenantError):
    """No group in the directory has this name."""


class SessionError(TenantError):
    """A saved session could not be written or restored (base of session errors)."""


class SessionFormatError(SessionError):
    """A session blob is truncated, of an unknown version, or its decrypted contents are invalid."""


class UserKeyError(TenantError):
    """A User-Key document, or a wrap in it, cannot be used (missing epoch, foreign key)."""


class InvalidKeyDistributionError(TenantError):
    """A key distribution breaks its invariants (protected key id, overlap, partial coverage)."""
