"""Tenants: create, join, unlock and lock them; admit and revoke members; carry sessions."""

from __future__ import annotations

from mindood.rpc.schema.common import ADMIN_PASSWORD, PASSWORD, TENANT
from mindood.rpc.schema.model import Method, opt, req

_OPENED = "{tenant, user, state}"

METHODS = (
    Method(
        "tenant.list",
        "Tenants on this node and their state.",
        (),
        "{tenants: [...]}",
        cli="tenant list",
    ),
    Method(
        "tenant.create",
        "Create a tenant here: a new administrator and a first user.",
        (
            TENANT,
            req("admin_name", "string", "the administrator's user name (cn=.../o=...)"),
            ADMIN_PASSWORD,
            req("user_name", "string", "the first user's name"),
            req("user_password", "string", "the first user's password"),
        ),
        _OPENED,
        cli="tenant create",
        errors=("AlreadyExistsError",),
    ),
    Method(
        "tenant.unlock",
        "Open a tenant's keys with the user's password.",
        (TENANT, PASSWORD),
        "{tenant, state, changed}",
        cli="tenant unlock",
        errors=("WrongPasswordRpcError", "NotFoundError"),
    ),
    Method(
        "tenant.lock",
        "Drop a tenant's keys from memory.",
        (TENANT,),
        "{tenant, state, changed}",
        cli="tenant lock",
    ),
    Method(
        "tenant.join_request",
        "Make a join request: a new identity, sealed under its password, as an mdb:// URI.",
        (
            req("user_name", "string", "the name to join as"),
            PASSWORD,
            opt("label", "string", "a label for this device"),
        ),
        "{request}",
        cli="tenant request",
    ),
    Method(
        "tenant.approve",
        "Admin: approve a join request and answer it with a join response.",
        (
            TENANT,
            req("request", "string", "the join request URI"),
            ADMIN_PASSWORD,
            opt("username", "string", "register under this name instead of the requested one"),
            opt("label", "string", "the device label to record"),
            opt("share_password", "string", "seal the shared keys under this password"),
            opt("relay", "boolean", "register a relay: it may read the directory, nothing else"),
        ),
        "{response}",
        cli="tenant approve",
        errors=("WrongPasswordRpcError", "PermissionDeniedError"),
    ),
    Method(
        "tenant.revoke",
        "Admin: revoke every device of a user; their sessions close.",
        (TENANT, req("username", "string", "the user to revoke"), ADMIN_PASSWORD),
        "{revoked}",
        cli="tenant revoke",
    ),
    Method(
        "tenant.join",
        "Join a tenant with a join response made for this node's request.",
        (
            req("response", "string", "the join response URI"),
            PASSWORD,
            opt("share_password", "string", "the password the shared keys were sealed with"),
        ),
        _OPENED,
        cli="tenant join",
    ),
    Method(
        "tenant.export_session",
        "The tenant's identity and keys in one blob sealed under the user's password.",
        (TENANT, PASSWORD),
        "{tenant, session: binary}",
        cli="tenant export",
    ),
    Method(
        "tenant.import_session",
        "Open a tenant from an exported session.",
        (req("session", "binary", "the exported blob"), PASSWORD),
        _OPENED,
        cli="tenant import",
    ),
)

__all__ = ["METHODS"]
