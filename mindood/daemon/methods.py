"""The RPC methods: one table from method name to handler, each validating its own parameters.

Handlers take the node, the request's :class:`Params` and the :class:`Connection` (for
subscriptions), and return MessagePack data. They raise ``RpcError`` subclasses or library
errors; :mod:`mindood.rpc.errors` turns either into a coded error response.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mindood.daemon.admin_methods import ADMIN_METHODS
from mindood.daemon.attachment_methods import ATTACHMENT_METHODS
from mindood.daemon.docops import (
    Op,
    apply_ops,
    doc_to_wire,
    initial_data,
    parse_changes,
    parse_doc_ids,
    parse_new_docs,
    parse_ops,
)
from mindood.daemon.events import TOPICS, DocChanged, Event, SubscriptionClosedError, SyncProgress
from mindood.daemon.events import Subscription as EventSubscription
from mindood.daemon.history_methods import HISTORY_METHODS
from mindood.daemon.node import Node
from mindood.daemon.params import MAX_URI_CHARS, Handler, Params
from mindood.daemon.view_methods import VIEW_METHODS
from mindood.db import MindooDoc
from mindood.rpc.connection import Connection
from mindood.rpc.errors import (
    InvalidParamsError,
    LimitExceededError,
    MethodNotFoundError,
    NotFoundError,
)
from mindood.rpc.schema import SCHEMA
from mindood.tenant.session import MAX_SESSION_BYTES
from store.base import ScanCursor
from store.entry import EntryType

log = logging.getLogger("mindood.rpc.methods")

_SUBSCRIPTIONS = "subscriptions"


@dataclass(frozen=True, slots=True)
class DaemonHooks:
    """What methods need from the daemon around the node."""

    status: Callable[[], dict[str, Any]]
    reload: Callable[[], Awaitable[dict[str, Any]]]


# -- tenants -------------------------------------------------------------------------------------
async def _tenant_list(node: Node, p: Params, conn: Connection) -> Any:
    p.finish()
    return {"tenants": node.tenants.describe()}


async def _tenant_create(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    admin_name = p.text("admin_name", max_chars=4096)
    admin_password = p.new_password("admin_password")
    user_name = p.text("user_name", max_chars=4096)
    user_password = p.new_password("user_password")
    p.finish()
    configured = node.config.tenant(tenant_id)
    tenant = await node.tenants.create(
        tenant_id,
        admin_name=admin_name,
        admin_password=admin_password,
        user_name=user_name,
        user_password=user_password,
        databases=configured.databases if configured else (),
    )
    return {"tenant": tenant.tenant_id, "user": tenant.user.username, "state": "unlocked"}


async def _tenant_unlock(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    password = p.password("password")
    p.finish()
    configured = node.config.tenant(tenant_id)
    changed = await node.tenants.unlock(
        tenant_id, password, configured.databases if configured else ()
    )
    return {"tenant": tenant_id, "state": "unlocked", "changed": changed}


async def _tenant_lock(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    p.finish()
    changed = await node.tenants.lock(tenant_id)
    return {"tenant": tenant_id, "state": "locked", "changed": changed}


async def _tenant_join_request(node: Node, p: Params, conn: Connection) -> Any:
    user_name = p.text("user_name", max_chars=4096)
    password = p.new_password("password")
    label = p.opt_text("label", max_chars=4096)
    p.finish()
    return {"request": await node.tenants.join_request(user_name, password, label)}


async def _tenant_approve(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    request = p.text("request", max_chars=MAX_URI_CHARS)
    admin_password = p.password("admin_password")
    username = p.opt_text("username", max_chars=4096)
    label = p.opt_text("label", max_chars=4096)
    share_password = p.opt_new_password("share_password")
    relay = p.opt_bool("relay", False)
    p.finish()
    response = await node.tenants.approve(
        tenant_id,
        request,
        admin_password=admin_password,
        username=username,
        label=label,
        share_password=share_password,
        relay=relay,
    )
    return {"response": response}


async def _tenant_revoke(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    username = p.text("username", max_chars=4096)
    admin_password = p.password("admin_password")
    p.finish()
    revoked = await node.tenants.revoke(tenant_id, username, admin_password=admin_password)
    return {"revoked": revoked}


async def _tenant_join(node: Node, p: Params, conn: Connection) -> Any:
    response = p.text("response", max_chars=MAX_URI_CHARS)
    password = p.password("password")
    share_password = p.opt_password("share_password")
    p.finish()
    tenant = await node.tenants.join(response, password, share_password, ())
    configured = node.config.tenant(tenant.tenant_id)
    for name in configured.databases if configured else ():
        await node.tenants.open_db(tenant.tenant_id, name, create=True)
    return {"tenant": tenant.tenant_id, "user": tenant.user.username, "state": "unlocked"}


async def _tenant_export_session(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    password = p.password("password")
    p.finish()
    return {"tenant": tenant_id, "session": await node.tenants.export_session(tenant_id, password)}


async def _tenant_import_session(node: Node, p: Params, conn: Connection) -> Any:
    blob = p.binary("session", max_bytes=MAX_SESSION_BYTES)
    password = p.password("password")
    p.finish()
    tenant = await node.tenants.import_session(blob, password)
    return {"tenant": tenant.tenant_id, "user": tenant.user.username, "state": "unlocked"}


# -- databases -----------------------------------------------------------------------------------
async def _db_list(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id = p.tenant()
    p.finish()
    return {"tenant": tenant_id, "databases": node.tenants.databases(tenant_id)}


async def _db_create(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db = p.tenant(), p.db()
    p.finish()
    existed = db in node.tenants.databases(tenant_id)
    await node.tenants.open_db(tenant_id, db, create=True)
    sync = node.sync_or_none()
    if sync is not None:
        await sync.follow_database(tenant_id, db)
    return {"tenant": tenant_id, "db": db, "created": not existed}


async def _db_drop(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db = p.tenant(), p.db()
    p.finish()
    sync = node.sync_or_none()
    await node.tenants.drop_db(tenant_id, db, sync.forget_database if sync else None)
    return {"tenant": tenant_id, "db": db, "dropped": True}


# -- documents -----------------------------------------------------------------------------------
async def _doc_create(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name = p.tenant(), p.db()
    data = initial_data(p.opt_map("data"))
    doc_id = p.opt_text("doc_id", max_chars=256)
    key_id = p.opt_text("key_id", max_chars=256) or "default"
    p.finish()
    db = await node.tenants.open_db(tenant_id, db_name)
    doc = await db.create_document(data, doc_id=doc_id, key_id=key_id)
    return doc_to_wire(doc)


async def _doc_change(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name = p.tenant(), p.db()
    doc_id = p.text("doc_id", max_chars=256)
    ops = parse_ops(p.raw("ops"), max_ops=node.config.limits.max_ops_per_change)
    p.finish()
    db = await node.tenants.open_db(tenant_id, db_name)
    doc = await db.change_doc(doc_id, lambda d: apply_ops(d, ops))
    return doc_to_wire(doc)


async def _doc_create_many(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name = p.tenant(), p.db()
    specs = parse_new_docs(p.raw("docs"), max_docs=node.config.limits.max_docs_per_batch)
    p.finish()
    db = await node.tenants.open_db(tenant_id, db_name)
    return {"docs": [doc_to_wire(doc) for doc in await db.create_documents(specs)]}


async def _doc_change_many(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name = p.tenant(), p.db()
    limits = node.config.limits
    changes = parse_changes(
        p.raw("changes"), max_docs=limits.max_docs_per_batch, max_ops=limits.max_ops_per_change
    )
    p.finish()
    db = await node.tenants.open_db(tenant_id, db_name)
    batch = [(doc_id, _applier(ops)) for doc_id, ops in changes]
    return {"docs": [doc_to_wire(doc) for doc in await db.change_docs(batch)]}


def _applier(ops: list[Op]) -> Callable[[MindooDoc], None]:
    return lambda d: apply_ops(d, ops)


async def _doc_get_many(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name = p.tenant(), p.db()
    doc_ids = parse_doc_ids(p.raw("doc_ids"), max_docs=node.config.limits.max_docs_per_batch)
    p.finish()
    db = await node.tenants.open_db(tenant_id, db_name)
    return {"docs": [doc_to_wire(doc) for doc in await db.get_documents(doc_ids)]}


async def _doc_get(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name = p.tenant(), p.db()
    doc_id = p.text("doc_id", max_chars=256)
    p.finish()
    db = await node.tenants.open_db(tenant_id, db_name)
    return doc_to_wire(await db.get_document(doc_id))


async def _doc_list(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name = p.tenant(), p.db()
    p.finish()
    db = await node.tenants.open_db(tenant_id, db_name)
    return {"tenant": tenant_id, "db": db_name, "doc_ids": await db.get_all_document_ids()}


async def _doc_delete(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name = p.tenant(), p.db()
    doc_id = p.text("doc_id", max_chars=256)
    p.finish()
    db = await node.tenants.open_db(tenant_id, db_name)
    await db.delete_document(doc_id)
    return {"id": doc_id, "deleted": True}


def _cursor(raw: object) -> tuple[str, ScanCursor] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"epoch", "order", "id"}:
        raise InvalidParamsError("parameter 'cursor' must be {epoch, order, id} or nil")
    epoch, order, entry_id = raw["epoch"], raw["order"], raw["id"]
    if (
        not isinstance(epoch, str)
        or not isinstance(entry_id, str)
        or isinstance(order, bool)
        or not isinstance(order, int)
        or order < 0
    ):
        raise InvalidParamsError("parameter 'cursor' has fields of the wrong type")
    return epoch, ScanCursor(order, entry_id)


async def _doc_changes(node: Node, p: Params, conn: Connection) -> Any:
    """Ids of documents with entries after ``cursor`` in the store's receipt order (key-free)."""
    tenant_id, db_name = p.tenant(), p.db()
    given = _cursor(p.raw("cursor"))
    limits = node.config.limits
    limit = p.opt_int("limit", low=1, high=limits.max_changes_page, default=1000)
    p.finish()
    store = await node.tenants.open_store(tenant_id, db_name)
    head = await store.get_store_head()
    reset = given is not None and given[0] != head.epoch
    start = given[1] if given is not None and not reset else None
    page = await store.scan_entries_since(start, limit)
    doc_ids = sorted({m.doc_id for m in page.entries if m.entry_type is not EntryType.DOC_SNAPSHOT})
    cursor = None
    if page.next_cursor is not None:
        cursor = {
            "epoch": head.epoch,
            "order": page.next_cursor.receipt_order,
            "id": page.next_cursor.id,
        }
    return {"doc_ids": doc_ids, "cursor": cursor, "has_more": page.has_more, "reset": reset}


# -- subscriptions -------------------------------------------------------------------------------
def _subscriptions(conn: Connection) -> dict[int, EventSubscription]:
    subs: dict[int, EventSubscription] = conn.state.setdefault(_SUBSCRIPTIONS, {})
    return subs


def _filter(tenant: str | None, db: str | None) -> Callable[[Event], bool] | None:
    if tenant is None and db is None:
        return None

    def accept(event: Event) -> bool:
        event_tenant = getattr(event, "tenant", None)
        if tenant is not None and event_tenant is not None and event_tenant != tenant:
            return False
        if db is not None and isinstance(event, DocChanged | SyncProgress):
            return event.db == db
        return True

    return accept


async def _forward(sub: EventSubscription, conn: Connection) -> None:
    try:
        while True:
            event = await sub.get()
            await conn.notify(event.topic, {**event.to_wire(), "subscription": sub.id})
    except SubscriptionClosedError:
        return
    except (ConnectionError, OSError):
        sub.close()


async def _subscribe(node: Node, p: Params, conn: Connection) -> Any:
    raw_topics = p.opt_list("topics", max_items=len(TOPICS))
    tenant = p.tenant() if p.raw("tenant") is not None else None
    db = p.db() if p.raw("db") is not None else None
    p.finish()
    topics = TOPICS
    if raw_topics is not None:
        if not all(isinstance(t, str) for t in raw_topics) or not set(raw_topics) <= TOPICS:
            raise InvalidParamsError(f"parameter 'topics' may contain {', '.join(sorted(TOPICS))}")
        topics = frozenset(raw_topics)
    subs = _subscriptions(conn)
    limits = node.config.limits
    if len(subs) >= limits.max_subscriptions_per_connection:
        raise LimitExceededError(
            f"at most {limits.max_subscriptions_per_connection} subscriptions per connection"
        )
    sub = node.bus.subscribe(topics, maxsize=limits.subscription_queue, accept=_filter(tenant, db))
    subs[sub.id] = sub
    conn.on_close(sub.close)
    conn.start_task(_forward(sub, conn), name=f"subscription-{sub.id}")
    return {"subscription": sub.id, "topics": sorted(topics)}


async def _unsubscribe(node: Node, p: Params, conn: Connection) -> Any:
    sub_id = p.opt_int("subscription", low=0, high=2**63, default=-1)
    p.finish()
    sub = _subscriptions(conn).pop(sub_id, None)
    if sub is None:
        raise NotFoundError(f"no subscription {sub_id} on this connection")
    sub.close()
    return {"subscription": sub_id, "closed": True}


# -- daemon, peers, sync -------------------------------------------------------------------------
async def _ping(node: Node, p: Params, conn: Connection) -> Any:
    p.finish()
    return "pong"


async def _peers_list(node: Node, p: Params, conn: Connection) -> Any:
    p.finish()
    return {
        "peers": [peer.to_wire() for peer in node.peers.list()],
        "configured": [
            {"address": peer.address, "tenants": list(peer.tenants)} for peer in node.config.peers
        ],
        "upstreams": [{"address": up.address, "tenant": up.tenant} for up in node.config.upstreams],
    }


async def _sync_status(node: Node, p: Params, conn: Connection) -> Any:
    p.finish()
    return node.sync().status()


async def _sync_now(node: Node, p: Params, conn: Connection) -> Any:
    tenant = p.tenant() if p.raw("tenant") is not None else None
    db = p.db() if p.raw("db") is not None else None
    peer = p.opt_text("peer", max_chars=1024)
    p.finish()
    return await node.sync().sync_now(tenant, db, peer)


_PLAIN: dict[str, Handler] = {
    "ping": _ping,
    "tenant.list": _tenant_list,
    "tenant.create": _tenant_create,
    "tenant.unlock": _tenant_unlock,
    "tenant.lock": _tenant_lock,
    "tenant.join_request": _tenant_join_request,
    "tenant.approve": _tenant_approve,
    "tenant.revoke": _tenant_revoke,
    "tenant.join": _tenant_join,
    "tenant.export_session": _tenant_export_session,
    "tenant.import_session": _tenant_import_session,
    "db.list": _db_list,
    "db.create": _db_create,
    "db.drop": _db_drop,
    "doc.create": _doc_create,
    "doc.change": _doc_change,
    "doc.get": _doc_get,
    "doc.create_many": _doc_create_many,
    "doc.change_many": _doc_change_many,
    "doc.get_many": _doc_get_many,
    "doc.list": _doc_list,
    "doc.delete": _doc_delete,
    "doc.changes": _doc_changes,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "peers.list": _peers_list,
    "sync.status": _sync_status,
    "sync.now": _sync_now,
    **VIEW_METHODS,
    **ATTACHMENT_METHODS,
    **HISTORY_METHODS,
    **ADMIN_METHODS,
}


class Methods:
    """The dispatcher the RPC server calls: exactly the methods :data:`SCHEMA` declares."""

    def __init__(self, node: Node, hooks: DaemonHooks) -> None:
        self._node = node
        self._hooks = hooks
        self._handlers: dict[str, Handler] = {
            **_PLAIN,
            "status": self._status,
            "config.reload": self._reload,
            "rpc.methods": self._rpc_methods,
        }
        drift = set(self._handlers) ^ set(SCHEMA)
        if drift:
            raise RuntimeError(f"handlers and the RPC schema differ: {sorted(drift)}")

    @staticmethod
    def names() -> list[str]:
        return list(SCHEMA)

    async def _status(self, node: Node, p: Params, conn: Connection) -> Any:
        p.finish()
        return {**node.status(), **self._hooks.status(), "pid": os.getpid()}

    async def _reload(self, node: Node, p: Params, conn: Connection) -> Any:
        p.finish()
        return await self._hooks.reload()

    async def _rpc_methods(self, node: Node, p: Params, conn: Connection) -> Any:
        p.finish()
        return {"methods": [method.to_wire() for method in SCHEMA.values()]}

    async def __call__(self, method: str, params: dict[str, Any], conn: Connection) -> Any:
        declared = SCHEMA.get(method)
        if declared is None:
            raise MethodNotFoundError(f"no method {method[:128]!r}")
        declared.check(params)
        return await self._handlers[method](self._node, Params(params, declared.param_names), conn)


__all__ = ["DaemonHooks", "Methods"]
