"""The client's methods for named keys, purge, groups and settings.

``password`` is always the user's own password and ``admin_password`` the administrator's; an
exported key is the JSON-ready map ``key.create``/``key.export`` return, sealed under
``share_password``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mindood.client_api import rpc


class AdminMethods:
    """Mixed into :class:`mindood.client.MindoodClient`, which provides :meth:`call`."""

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    async def _map(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.call(method, params)
        return result

    # -- named keys ----------------------------------------------------------------------------
    @rpc("key.list")
    async def key_list(self, tenant: str) -> list[dict[str, Any]]:
        """``[{id, versions, created_at}]``: which keys this member holds (no key material)."""
        result: list[dict[str, Any]] = (await self._map("key.list", {"tenant": tenant}))["keys"]
        return result

    @rpc("key.create")
    async def key_create(
        self,
        tenant: str,
        key_id: str,
        *,
        password: str,
        share_password: str,
        rotate: bool = False,
    ) -> dict[str, Any]:
        """Create a named key; the result's ``exported`` is it sealed under ``share_password``."""
        return await self._map(
            "key.create",
            {
                "tenant": tenant,
                "key_id": key_id,
                "password": password,
                "share_password": share_password,
                "rotate": rotate or None,
            },
        )

    @rpc("key.export")
    async def key_export(
        self, tenant: str, key_id: str, *, password: str, share_password: str
    ) -> dict[str, Any]:
        return await self._map(
            "key.export",
            {
                "tenant": tenant,
                "key_id": key_id,
                "password": password,
                "share_password": share_password,
            },
        )

    @rpc("key.import")
    async def key_import(
        self,
        tenant: str,
        key_id: str,
        exported: Mapping[str, Any],
        *,
        share_password: str,
        password: str,
    ) -> dict[str, Any]:
        """Import a shared key; ``added`` is false when this member had it already."""
        return await self._map(
            "key.import",
            {
                "tenant": tenant,
                "key_id": key_id,
                "exported": dict(exported),
                "share_password": share_password,
                "password": password,
            },
        )

    # -- purge ---------------------------------------------------------------------------------
    @rpc("purge.request")
    async def purge_request(
        self,
        tenant: str,
        db: str,
        doc_ids: Sequence[str],
        *,
        admin_password: str,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Admin: erase documents' history everywhere (here at once, elsewhere on sync)."""
        return await self._map(
            "purge.request",
            {
                "tenant": tenant,
                "db": db,
                "doc_ids": list(doc_ids),
                "admin_password": admin_password,
                "reason": reason,
            },
        )

    @rpc("purge.apply")
    async def purge_apply(self, tenant: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._map("purge.apply", {"tenant": tenant}))[
            "applied"
        ]
        return result

    @rpc("purge.list")
    async def purge_list(self, tenant: str, *, db: str | None = None) -> dict[str, Any]:
        return await self._map("purge.list", {"tenant": tenant, "db": db})

    # -- groups --------------------------------------------------------------------------------
    @rpc("group.list")
    async def group_list(self, tenant: str) -> list[str]:
        result: list[str] = (await self._map("group.list", {"tenant": tenant}))["groups"]
        return result

    @rpc("group.members")
    async def group_members(self, tenant: str, name: str) -> list[str]:
        result: list[str] = (await self._map("group.members", {"tenant": tenant, "name": name}))[
            "members"
        ]
        return result

    @rpc("group.create")
    async def group_create(
        self,
        tenant: str,
        name: str,
        members: Sequence[str] = (),
        *,
        admin_password: str,
    ) -> dict[str, Any]:
        return await self._map(
            "group.create",
            {
                "tenant": tenant,
                "name": name,
                "members": list(members) or None,
                "admin_password": admin_password,
            },
        )

    @rpc("group.add")
    async def group_add(
        self, tenant: str, name: str, members: Sequence[str], *, admin_password: str
    ) -> dict[str, Any]:
        return await self._map(
            "group.add",
            {
                "tenant": tenant,
                "name": name,
                "members": list(members),
                "admin_password": admin_password,
            },
        )

    @rpc("group.remove")
    async def group_remove(
        self, tenant: str, name: str, members: Sequence[str], *, admin_password: str
    ) -> dict[str, Any]:
        return await self._map(
            "group.remove",
            {
                "tenant": tenant,
                "name": name,
                "members": list(members),
                "admin_password": admin_password,
            },
        )

    @rpc("group.delete")
    async def group_delete(self, tenant: str, name: str, *, admin_password: str) -> None:
        await self._map(
            "group.delete", {"tenant": tenant, "name": name, "admin_password": admin_password}
        )

    # -- settings ------------------------------------------------------------------------------
    @rpc("settings.get")
    async def settings_get(self, tenant: str, *, db: str | None = None) -> dict[str, Any]:
        """The tenant's settings (or, with ``db``, that database's) as a map."""
        result: dict[str, Any] = (await self._map("settings.get", {"tenant": tenant, "db": db}))[
            "settings"
        ]
        return result

    @rpc("settings.change")
    async def settings_change(
        self,
        tenant: str,
        ops: Sequence[Mapping[str, Any]],
        *,
        admin_password: str,
        db: str | None = None,
    ) -> dict[str, Any]:
        """Apply ``doc.change`` operations (``op_set``, ``op_delete``, ...) to the settings."""
        result: dict[str, Any] = (
            await self._map(
                "settings.change",
                {
                    "tenant": tenant,
                    "ops": [dict(op) for op in ops],
                    "admin_password": admin_password,
                    "db": db,
                },
            )
        )["settings"]
        return result


__all__ = ["AdminMethods"]
