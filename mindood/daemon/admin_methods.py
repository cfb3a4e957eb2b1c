"""RPC methods for named keys, coordinated purge, groups and settings.

Directory changes (purge requests, groups, settings) are signed by the tenant's administrator:
the node must hold the admin identity (the one the tenant was created on) and the request
carries the admin password, which unlocks the admin key for that call only.

Named keys live in the member's KeyBag, which is part of the saved session. Creating or
importing one therefore re-seals the session with the user's password (checked before anything
changes), so the key survives a restart; exporting asks for the same password, as exporting the
whole session does. Key bytes leave the daemon only sealed under a share password.

Settings change with the operations of ``doc.change`` (set/delete/insert/splice/increment on a
path), applied as one change to the settings document: a map merge is a list of ``set``s, and
removing a setting is a ``delete``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mindood.daemon.docops import apply_ops, parse_ops
from mindood.daemon.node import Node
from mindood.daemon.params import Handler, Params
from mindood.db import MindooDoc
from mindood.errors import WrongPasswordError
from mindood.rpc.connection import Connection
from mindood.rpc.errors import (
    AlreadyExistsError,
    InvalidParamsError,
    NotFoundError,
    WrongPasswordRpcError,
)
from mindood.tenant.directory import DEFAULT_KEY_ID, DIRECTORY_DB_ID
from mindood.tenant.hashing import MAX_NAME_LENGTH, normalize_name
from mindood.tenant.purge import MAX_DOCS_PER_REQUEST, PurgeRecord

log = logging.getLogger("mindood.rpc.admin")


MAX_KEY_ID_CHARS = 256
MAX_GROUP_NAME_CHARS = 256
MAX_MEMBERS = 1000
MAX_REASON_CHARS = 4096
#: Fields of a settings document that say what it is; changing them would orphan the settings.
SETTINGS_IDENTITY_FIELDS = frozenset({"form", "dbid"})


def _strings(raw: list[Any], name: str, *, max_chars: int) -> list[str]:
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not item.strip():
            raise InvalidParamsError(f"parameter {name!r}[{i}] must be a non-empty string")
        if len(item) > max_chars:
            raise InvalidParamsError(f"parameter {name!r}[{i}] is longer than {max_chars}")
    return list(raw)


def _existing_db(node: Node, tenant_id: str, db: str) -> str:
    known = node.tenants.databases(tenant_id)
    if db not in known:
        raise NotFoundError(
            f"no database {db!r} in tenant {tenant_id!r} (it has: {', '.join(known)})"
        )
    return db


# -- named keys ----------------------------------------------------------------------------------
def _named_key_id(p: Params) -> str:
    key_id = p.text("key_id", max_chars=MAX_KEY_ID_CHARS)
    if key_id == DEFAULT_KEY_ID or key_id.startswith("$"):
        raise InvalidParamsError(
            f"parameter 'key_id': {key_id!r} is a tenant key, not a named key "
            "(named keys are any other id not starting with '$')"
        )
    return key_id


async def _key_list(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    p.finish()
    bag = node.tenants.unlocked(tenant_id).key_bag
    keys = []
    for key_id in bag.list_keys(tenant_id):
        versions = bag.versions(tenant_id, key_id)
        keys.append({"id": key_id, "versions": len(versions), "created_at": versions[0].created_at})
    return {"tenant": tenant_id, "keys": keys}


async def _key_create(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    key_id = _named_key_id(p)
    password = p.password("password")
    share_password = p.new_password("share_password")
    rotate = p.opt_bool("rotate", False)
    p.finish()
    async with node.tenants.slot(tenant_id).lock:  # one creation of a key id at a time
        tenant = await node.tenants.check_password(tenant_id, password)
        existed = tenant.key_bag.has(tenant_id, key_id)
        if existed and not rotate:
            raise AlreadyExistsError(
                f"key {key_id!r} exists (export it, or pass rotate for a newer version)"
            )
        exported = await tenant.create_doc_encryption_key(key_id, share_password)
        await tenant.save_session(password)
    log.info("named key %s %s in tenant %s", key_id, "rotated" if existed else "created", tenant_id)
    return {"tenant": tenant_id, "key_id": key_id, "exported": exported, "rotated": existed}


async def _key_export(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    key_id = _named_key_id(p)
    password = p.password("password")
    share_password = p.new_password("share_password")
    p.finish()
    tenant = await node.tenants.check_password(tenant_id, password)
    exported = await asyncio.to_thread(
        tenant.key_bag.encrypt_and_export_key, tenant_id, key_id, share_password
    )
    log.info("named key %s of tenant %s exported", key_id, tenant_id)
    return {"tenant": tenant_id, "key_id": key_id, "exported": exported.to_json()}


async def _key_import(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    key_id = _named_key_id(p)
    exported = p.opt_map("exported")
    share_password = p.password("share_password")
    password = p.password("password")
    p.finish()
    if exported is None:
        raise InvalidParamsError("missing parameter 'exported'")
    async with node.tenants.slot(tenant_id).lock:
        tenant = await node.tenants.check_password(tenant_id, password)
        bag = tenant.key_bag
        before = len(bag.versions(tenant_id, key_id))
        try:
            await asyncio.to_thread(
                bag.decrypt_and_import_key, tenant_id, key_id, exported, share_password
            )
        except WrongPasswordError:
            raise WrongPasswordRpcError(
                f"the share password does not open this key, or it was exported as another "
                f"key than {key_id!r} or from another tenant"
            ) from None
        added = len(bag.versions(tenant_id, key_id)) > before
        if added:
            await tenant.save_session(password)
    if added:
        await tenant.refresh_directory(full=True)  # directory documents it may open now
        log.info("named key %s imported into tenant %s", key_id, tenant_id)
    return {"tenant": tenant_id, "key_id": key_id, "added": added}


# -- purge ---------------------------------------------------------------------------------------
def _record_to_wire(record: PurgeRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "db": record.db_id,
        "doc_ids": list(record.doc_ids),
        "entries_removed": record.entries_removed,
        "applied_at": record.applied_at,
        "skipped": record.skipped,
    }


async def _purge_request(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db = p.tenant(), p.db()
    doc_ids = _strings(p.array("doc_ids", max_items=MAX_DOCS_PER_REQUEST), "doc_ids", max_chars=256)
    admin_password = p.password("admin_password")
    reason = p.opt_text("reason", max_chars=MAX_REASON_CHARS) or ""
    p.finish()
    if db == DIRECTORY_DB_ID:
        raise InvalidParamsError("the directory's documents cannot be purged")
    _existing_db(node, tenant_id, db)
    if not doc_ids:
        raise InvalidParamsError("parameter 'doc_ids' must name at least one document")
    tenant = node.tenants.unlocked(tenant_id)
    admin = await node.tenants.admin_identity(tenant_id)
    request = await tenant.publish_purge_request(
        db, doc_ids, reason=reason, admin_signing_key=admin, admin_password=admin_password
    )
    # Publishing refreshed the directory, which applied the request on this node already.
    record = next(
        (r for r in tenant.get_purge_records() if r.request_doc_id == request.doc_id), None
    )
    log.info("purge of %d document(s) in %s/%s requested", len(request.doc_ids), tenant_id, db)
    return {
        "request_id": request.request_id,
        "db": request.db_id,
        "doc_ids": list(request.doc_ids),
        "requested_at": request.requested_at,
        "entries_removed": record.entries_removed if record is not None else 0,
    }


async def _purge_apply(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    p.finish()
    done = await node.tenants.unlocked(tenant_id).apply_pending_purges()
    return {"tenant": tenant_id, "applied": [_record_to_wire(r) for r in done]}


async def _purge_list(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    db = p.db() if p.raw("db") is not None else None
    p.finish()
    tenant = node.tenants.unlocked(tenant_id)
    directory = tenant.get_directory()
    records = [r for r in tenant.get_purge_records() if db is None or r.db_id == db]
    applied = {r.request_doc_id for r in records}
    requests = [
        {
            "request_id": r.request_id,
            "db": r.db_id,
            "doc_ids": list(r.doc_ids),
            "requested_at": r.requested_at,
            "reason": directory.get_purge_reason(r),
            "applied": r.doc_id in applied,
        }
        for r in tenant.get_requested_purges()
        if db is None or r.db_id == db
    ]
    return {
        "tenant": tenant_id,
        "requests": requests,
        "records": [_record_to_wire(r) for r in records],
    }


# -- groups --------------------------------------------------------------------------------------
def _group_name(p: Params) -> str:
    return p.text("name", max_chars=MAX_GROUP_NAME_CHARS)


def _members(p: Params, *, required: bool = True) -> list[str]:
    if not required and p.raw("members") is None:
        return []
    raw = p.array("members", max_items=MAX_MEMBERS)
    members = _strings(raw, "members", max_chars=MAX_NAME_LENGTH)
    if required and not members:
        raise InvalidParamsError("parameter 'members' must name at least one member")
    return members


def _require_group(node: Node, tenant_id: str, name: str) -> None:
    if normalize_name(name) not in node.tenants.unlocked(tenant_id).get_directory().get_groups():
        raise NotFoundError(f"no group {normalize_name(name)!r} in tenant {tenant_id!r}")


def _group_result(node: Node, tenant_id: str, name: str) -> dict[str, Any]:
    directory = node.tenants.unlocked(tenant_id).get_directory()
    return {
        "tenant": tenant_id,
        "name": normalize_name(name),
        "members": directory.get_group_members(name),
    }


async def _group_list(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    p.finish()
    groups = node.tenants.unlocked(tenant_id).get_directory().get_groups()
    return {"tenant": tenant_id, "groups": groups}


async def _group_members(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, name = p.tenant(), _group_name(p)
    p.finish()
    _require_group(node, tenant_id, name)
    return _group_result(node, tenant_id, name)


async def _group_create(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, name = p.tenant(), _group_name(p)
    admin_password = p.password("admin_password")
    members = _members(p, required=False)
    p.finish()
    tenant = node.tenants.unlocked(tenant_id)
    if normalize_name(name) in tenant.get_directory().get_groups():
        raise AlreadyExistsError(f"group {normalize_name(name)!r} exists: add members instead")
    admin = await node.tenants.admin_identity(tenant_id)
    await tenant.create_group(name, members, admin_signing_key=admin, admin_password=admin_password)
    log.info("group %s created in tenant %s", normalize_name(name), tenant_id)
    return _group_result(node, tenant_id, name)


async def _change_members(node: Node, p: Params, *, adding: bool) -> Any:
    tenant_id, name = p.tenant(), _group_name(p)
    members = _members(p)
    admin_password = p.password("admin_password")
    p.finish()
    _require_group(node, tenant_id, name)
    tenant = node.tenants.unlocked(tenant_id)
    admin = await node.tenants.admin_identity(tenant_id)
    change = tenant.add_users_to_group if adding else tenant.remove_users_from_group
    await change(name, members, admin_signing_key=admin, admin_password=admin_password)
    log.info(
        "%d member(s) %s group %s in tenant %s",
        len(members),
        "added to" if adding else "removed from",
        name,
        tenant_id,
    )
    return _group_result(node, tenant_id, name)


async def _group_add(node: Node, p: Params, conn: Connection) -> Any:
    return await _change_members(node, p, adding=True)


async def _group_remove(node: Node, p: Params, conn: Connection) -> Any:
    return await _change_members(node, p, adding=False)


async def _group_delete(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, name = p.tenant(), _group_name(p)
    admin_password = p.password("admin_password")
    p.finish()
    _require_group(node, tenant_id, name)
    tenant = node.tenants.unlocked(tenant_id)
    admin = await node.tenants.admin_identity(tenant_id)
    await tenant.delete_group(name, admin_signing_key=admin, admin_password=admin_password)
    log.info("group %s deleted in tenant %s", normalize_name(name), tenant_id)
    return {"tenant": tenant_id, "name": normalize_name(name), "deleted": True}


# -- settings ------------------------------------------------------------------------------------
def _settings_result(node: Node, tenant_id: str, db: str | None) -> dict[str, Any]:
    tenant = node.tenants.unlocked(tenant_id)
    settings = tenant.get_tenant_settings() if db is None else tenant.get_db_settings(db)
    return {"tenant": tenant_id, "db": db, "settings": settings}


async def _settings_get(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    db = p.db() if p.raw("db") is not None else None
    p.finish()
    if db is not None:
        _existing_db(node, tenant_id, db)
    return _settings_result(node, tenant_id, db)


async def _settings_change(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    db = p.db() if p.raw("db") is not None else None
    ops = parse_ops(p.raw("ops"), max_ops=node.config.limits.max_ops_per_change)
    admin_password = p.password("admin_password")
    p.finish()
    for i, op in enumerate(ops):
        if op.path[0] in SETTINGS_IDENTITY_FIELDS:
            raise InvalidParamsError(f"ops[{i}].path: {op.path[0]!r} is maintained by MindooDB")
    if db is not None:
        _existing_db(node, tenant_id, db)
    tenant = node.tenants.unlocked(tenant_id)
    admin = await node.tenants.admin_identity(tenant_id)

    def change(doc: MindooDoc) -> None:
        apply_ops(doc, ops)

    if db is None:
        await tenant.change_tenant_settings(
            change, admin_signing_key=admin, admin_password=admin_password
        )
    else:
        await tenant.change_db_settings(
            db, change, admin_signing_key=admin, admin_password=admin_password
        )
    log.info("settings of %s changed (%d operation(s))", db or f"tenant {tenant_id}", len(ops))
    return _settings_result(node, tenant_id, db)


ADMIN_METHODS: dict[str, Handler] = {
    "key.list": _key_list,
    "key.create": _key_create,
    "key.export": _key_export,
    "key.import": _key_import,
    "purge.request": _purge_request,
    "purge.apply": _purge_apply,
    "purge.list": _purge_list,
    "group.list": _group_list,
    "group.members": _group_members,
    "group.create": _group_create,
    "group.add": _group_add,
    "group.remove": _group_remove,
    "group.delete": _group_delete,
    "settings.get": _settings_get,
    "settings.change": _settings_change,
}

__all__ = ["ADMIN_METHODS"]
