"""The client's typed methods, one per RPC method of :data:`mindood.rpc.schema.SCHEMA`.

``@rpc("name")`` records which method each wraps, so a test can prove the client covers the
schema exactly; the daemon checks the parameters again, so these stay thin.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])

#: RPC method name -> the client attribute that calls it.
CLIENT_METHODS: dict[str, str] = {}


def rpc(*names: str) -> Callable[[F], F]:
    def mark(fn: F) -> F:
        for name in names:
            CLIENT_METHODS[name] = fn.__name__
        return fn

    return mark


class ApiMethods:
    """Mixed into :class:`mindood.client.MindoodClient`, which provides :meth:`call`."""

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    # -- daemon --------------------------------------------------------------------------------
    @rpc("ping")
    async def ping(self) -> str:
        result: str = await self.call("ping")
        return result

    @rpc("status")
    async def status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("status")
        return result

    @rpc("config.reload")
    async def reload_config(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("config.reload")
        return result

    @rpc("rpc.methods")
    async def rpc_methods(self) -> list[dict[str, Any]]:
        """Every method the daemon serves, with its parameters and docs."""
        result: list[dict[str, Any]] = (await self.call("rpc.methods"))["methods"]
        return result

    @rpc("peers.list")
    async def peers(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("peers.list")
        return result

    @rpc("sync.status")
    async def sync_status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("sync.status")
        return result

    @rpc("sync.now")
    async def sync_now(
        self, *, tenant: str | None = None, db: str | None = None, peer: str | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "sync.now", {"tenant": tenant, "db": db, "peer": peer}
        )
        return result

    # -- tenants -------------------------------------------------------------------------------
    @rpc("tenant.list")
    async def tenant_list(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.call("tenant.list"))["tenants"]
        return result

    @rpc("tenant.create")
    async def tenant_create(
        self,
        tenant: str,
        *,
        admin_name: str,
        admin_password: str,
        user_name: str,
        user_password: str,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "tenant.create",
            {
                "tenant": tenant,
                "admin_name": admin_name,
                "admin_password": admin_password,
                "user_name": user_name,
                "user_password": user_password,
            },
        )
        return result

    @rpc("tenant.unlock")
    async def tenant_unlock(self, tenant: str, password: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "tenant.unlock", {"tenant": tenant, "password": password}
        )
        return result

    @rpc("tenant.lock")
    async def tenant_lock(self, tenant: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("tenant.lock", {"tenant": tenant})
        return result

    @rpc("tenant.join_request")
    async def tenant_join_request(
        self, user_name: str, password: str, *, label: str | None = None
    ) -> str:
        result: str = (
            await self.call(
                "tenant.join_request",
                {"user_name": user_name, "password": password, "label": label},
            )
        )["request"]
        return result

    @rpc("tenant.approve")
    async def tenant_approve(
        self,
        tenant: str,
        request: str,
        *,
        admin_password: str,
        username: str | None = None,
        label: str | None = None,
        share_password: str | None = None,
        relay: bool = False,
    ) -> str:
        """Approve a join request; ``relay=True`` shares only ``$publicinfos`` (a keyless node)."""
        result: str = (
            await self.call(
                "tenant.approve",
                {
                    "tenant": tenant,
                    "request": request,
                    "admin_password": admin_password,
                    "username": username,
                    "label": label,
                    "share_password": share_password,
                    "relay": relay,
                },
            )
        )["response"]
        return result

    @rpc("tenant.revoke")
    async def tenant_revoke(self, tenant: str, username: str, *, admin_password: str) -> int:
        """Revoke every device of ``username`` (admin identity must be on this node)."""
        result: int = (
            await self.call(
                "tenant.revoke",
                {"tenant": tenant, "username": username, "admin_password": admin_password},
            )
        )["revoked"]
        return result

    @rpc("tenant.join")
    async def tenant_join(
        self, response: str, password: str, *, share_password: str | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "tenant.join",
            {"response": response, "password": password, "share_password": share_password},
        )
        return result

    @rpc("tenant.export_session")
    async def tenant_export_session(self, tenant: str, password: str) -> bytes:
        result: bytes = (
            await self.call("tenant.export_session", {"tenant": tenant, "password": password})
        )["session"]
        return result

    @rpc("tenant.import_session")
    async def tenant_import_session(self, session: bytes, password: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "tenant.import_session", {"session": session, "password": password}
        )
        return result

    # -- databases and documents ---------------------------------------------------------------
    @rpc("db.list")
    async def db_list(self, tenant: str) -> list[str]:
        result: list[str] = (await self.call("db.list", {"tenant": tenant}))["databases"]
        return result

    @rpc("db.create")
    async def db_create(self, tenant: str, db: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("db.create", {"tenant": tenant, "db": db})
        return result

    @rpc("db.drop")
    async def db_drop(self, tenant: str, db: str) -> dict[str, Any]:
        """Delete this node's copy of ``db`` (other nodes keep theirs)."""
        result: dict[str, Any] = await self.call("db.drop", {"tenant": tenant, "db": db})
        return result

    @rpc("doc.create")
    async def doc_create(
        self,
        tenant: str,
        db: str,
        data: Mapping[str, Any] | None = None,
        *,
        doc_id: str | None = None,
        key_id: str | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "doc.create",
            {
                "tenant": tenant,
                "db": db,
                "data": dict(data) if data is not None else None,
                "doc_id": doc_id,
                "key_id": key_id,
            },
        )
        return result

    @rpc("doc.change")
    async def doc_change(
        self, tenant: str, db: str, doc_id: str, ops: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "doc.change",
            {"tenant": tenant, "db": db, "doc_id": doc_id, "ops": [dict(op) for op in ops]},
        )
        return result

    @rpc("doc.get")
    async def doc_get(self, tenant: str, db: str, doc_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "doc.get", {"tenant": tenant, "db": db, "doc_id": doc_id}
        )
        return result

    @rpc("doc.create_many")
    async def doc_create_many(
        self, tenant: str, db: str, docs: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Create documents (maps of ``data``, ``doc_id``, ``key_id``) in one durable write."""
        result: list[dict[str, Any]] = (
            await self.call(
                "doc.create_many", {"tenant": tenant, "db": db, "docs": [dict(d) for d in docs]}
            )
        )["docs"]
        return result

    @rpc("doc.change_many")
    async def doc_change_many(
        self, tenant: str, db: str, changes: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
    ) -> list[dict[str, Any]]:
        """Apply ``(doc_id, ops)`` pairs, each as its own change, in one durable write."""
        wire = [{"doc_id": doc_id, "ops": [dict(op) for op in ops]} for doc_id, ops in changes]
        result: list[dict[str, Any]] = (
            await self.call("doc.change_many", {"tenant": tenant, "db": db, "changes": wire})
        )["docs"]
        return result

    @rpc("doc.get_many")
    async def doc_get_many(
        self, tenant: str, db: str, doc_ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """The current state of several documents, in the order asked."""
        result: list[dict[str, Any]] = (
            await self.call("doc.get_many", {"tenant": tenant, "db": db, "doc_ids": list(doc_ids)})
        )["docs"]
        return result

    @rpc("doc.list")
    async def doc_list(self, tenant: str, db: str) -> list[str]:
        result: list[str] = (await self.call("doc.list", {"tenant": tenant, "db": db}))["doc_ids"]
        return result

    @rpc("doc.delete")
    async def doc_delete(self, tenant: str, db: str, doc_id: str) -> None:
        await self.call("doc.delete", {"tenant": tenant, "db": db, "doc_id": doc_id})

    @rpc("doc.changes")
    async def doc_changes(
        self,
        tenant: str,
        db: str,
        cursor: Mapping[str, Any] | None = None,
        *,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """Ids of documents changed after ``cursor`` (None: from the beginning) and the next
        cursor; ``reset`` is true when the store's epoch changed and the scan restarted."""
        result: dict[str, Any] = await self.call(
            "doc.changes",
            {
                "tenant": tenant,
                "db": db,
                "cursor": dict(cursor) if cursor else None,
                "limit": limit,
            },
        )
        return result

    # -- views ---------------------------------------------------------------------------------
    @rpc("view.define")
    async def view_define(
        self,
        name: str,
        columns: Sequence[Mapping[str, Any]],
        sources: Sequence[Mapping[str, Any]],
        *,
        style: str | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(
            "view.define",
            {
                "name": name,
                "columns": [dict(c) for c in columns],
                "sources": [dict(s) for s in sources],
                "style": style,
            },
        )
        return result

    @rpc("view.list")
    async def view_list(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.call("view.list"))["views"]
        return result

    @rpc("view.drop")
    async def view_drop(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.call("view.drop", {"name": name})
        return result

    @rpc("view.read")
    async def view_read(self, name: str, **state: Any) -> dict[str, Any]:
        """A page of entries; ``state`` takes the schema's view.read parameters (mode, category,
        expand, expanded, collapsed, start, count, backward)."""
        result: dict[str, Any] = await self.call("view.read", {"name": name, **state})
        return result

    @rpc("view.navigate")
    async def view_navigate(self, name: str, op: str, **state: Any) -> dict[str, Any]:
        """One step (``op``); ``state`` takes mode, category, expand, at, target, reveal, ..."""
        result: dict[str, Any] = await self.call("view.navigate", {"name": name, "op": op, **state})
        return result


__all__ = ["CLIENT_METHODS", "ApiMethods", "rpc"]
