"""Named keys, coordinated purge, groups and settings.

Changes to the directory (purge requests, groups, settings) are admin operations: they need the
admin password, and the node must hold the admin identity (the node the tenant was created on).
Key operations that put key material in or out need the user's own password, which also re-seals
the saved session so an imported or created key survives a restart.
"""

from __future__ import annotations

from mindood.rpc.schema.common import ADMIN_PASSWORD, DB, PASSWORD, TENANT
from mindood.rpc.schema.model import Method, opt, req

_KEY_ID = req("key_id", "string", "the named key's id (not 'default', not starting with '$')")
_SHARE = req("share_password", "string", "the password the exported key is sealed under")
_GROUP = req("name", "string", "the group's name (case-insensitive)")
_MEMBERS = req("members", "array", "user names and/or names of other groups")
_OPS = req("ops", "array", "set/delete/insert/splice/increment operations, as for doc.change")
_OPT_DB = opt("db", "string", "a database's settings instead of the tenant's")
_EXPORTED = "{tenant, key_id, exported: {ciphertext, iv, tag, salt, iterations, createdAt}}"
_GROUP_RESULT = "{tenant, name, members: [string]}"
_SETTINGS = "{tenant, db, settings: map}"
_ADMIN_ERRORS = ("WrongPasswordRpcError", "PermissionDeniedError")

KEYS = (
    Method(
        "key.list",
        "Ids of the keys this member holds for a tenant, with version counts (never key bytes).",
        (TENANT,),
        "{tenant, keys: [{id, versions, created_at}]}",
        cli="key list",
    ),
    Method(
        "key.create",
        "Create a named key and return it sealed under a share password, to pass on.",
        (
            TENANT,
            _KEY_ID,
            PASSWORD,
            _SHARE,
            opt("rotate", "boolean", "add a newer version to an existing key"),
        ),
        _EXPORTED,
        cli="key create",
        errors=("AlreadyExistsError", "WrongPasswordRpcError"),
    ),
    Method(
        "key.export",
        "A key this member holds (its newest version), sealed under a share password.",
        (TENANT, _KEY_ID, PASSWORD, _SHARE),
        _EXPORTED,
        cli="key export",
        errors=("NoKeyError", "WrongPasswordRpcError"),
    ),
    Method(
        "key.import",
        "Import a key someone shared; documents it opens become readable.",
        (
            TENANT,
            _KEY_ID,
            req("exported", "map", "the exported key, as key.create/key.export return it"),
            _SHARE,
            PASSWORD,
        ),
        "{tenant, key_id, added}",
        cli="key import",
        errors=("WrongPasswordRpcError",),
    ),
)

PURGE = (
    Method(
        "purge.request",
        "Admin: ask every node to erase documents' whole history; this node does it at once.",
        (
            TENANT,
            DB,
            req("doc_ids", "array", "ids of the documents to purge"),
            ADMIN_PASSWORD,
            opt("reason", "string", "why (readable by members only)"),
        ),
        "{request_id, db, doc_ids, requested_at, entries_removed}",
        cli="purge request",
        errors=(*_ADMIN_ERRORS, "NotFoundError"),
    ),
    Method(
        "purge.apply",
        "Carry out purge requests not yet applied here (runs by itself when the directory syncs).",
        (TENANT,),
        "{tenant, applied: [record]}",
        cli="purge apply",
    ),
    Method(
        "purge.list",
        "Purge requests in the directory, and what this node did about each.",
        (TENANT, opt("db", "string", "only this database")),
        "{tenant, requests: [{request_id, db, doc_ids, requested_at, reason, applied}], "
        "records: [{request_id, db, doc_ids, entries_removed, applied_at, skipped}]}",
        cli="purge list",
    ),
)

GROUPS = (
    Method(
        "group.list",
        "Names of the tenant's groups.",
        (TENANT,),
        "{tenant, groups: [string]}",
        cli="group list",
    ),
    Method(
        "group.members",
        "Direct members of a group (names this member can read).",
        (TENANT, _GROUP),
        _GROUP_RESULT,
        cli="group show",
        errors=("NotFoundError",),
    ),
    Method(
        "group.create",
        "Admin: create a group (an existing name is an error: add members instead).",
        (TENANT, _GROUP, ADMIN_PASSWORD, opt("members", "array", "its first members")),
        _GROUP_RESULT,
        cli="group create",
        errors=(*_ADMIN_ERRORS, "AlreadyExistsError"),
    ),
    Method(
        "group.add",
        "Admin: add members to a group.",
        (TENANT, _GROUP, _MEMBERS, ADMIN_PASSWORD),
        _GROUP_RESULT,
        cli="group add",
        errors=(*_ADMIN_ERRORS, "NotFoundError"),
    ),
    Method(
        "group.remove",
        "Admin: remove members from a group.",
        (TENANT, _GROUP, _MEMBERS, ADMIN_PASSWORD),
        _GROUP_RESULT,
        cli="group remove",
        errors=(*_ADMIN_ERRORS, "NotFoundError"),
    ),
    Method(
        "group.delete",
        "Admin: delete a group.",
        (TENANT, _GROUP, ADMIN_PASSWORD),
        "{tenant, name, deleted}",
        cli="group delete",
        errors=(*_ADMIN_ERRORS, "NotFoundError"),
    ),
)

SETTINGS = (
    Method(
        "settings.get",
        "The tenant's settings, or a database's.",
        (TENANT, _OPT_DB),
        _SETTINGS,
        cli="settings get",
        errors=("NotFoundError",),
    ),
    Method(
        "settings.change",
        "Admin: change the tenant's (or a database's) settings with doc.change operations.",
        (TENANT, _OPS, ADMIN_PASSWORD, _OPT_DB),
        _SETTINGS,
        cli="settings change",
        errors=(*_ADMIN_ERRORS, "NotFoundError"),
    ),
)

METHODS = (*KEYS, *PURGE, *GROUPS, *SETTINGS)

__all__ = ["GROUPS", "KEYS", "METHODS", "PURGE", "SETTINGS"]
