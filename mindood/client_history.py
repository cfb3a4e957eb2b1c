"""The client's time-travel methods (``doc.get_at``, ``doc.history``, ``doc.list_at``).

A point in time is milliseconds since the epoch, an aware ``datetime`` or ISO 8601 text; what
had been written before it counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any

from mindood.client_api import rpc

At = int | float | str | dt.datetime


def _at(at: At) -> int | float | str:
    if isinstance(at, dt.datetime):
        return at.isoformat()  # exact; the daemon reads a naive time as UTC
    return at


class HistoryMethods:
    """Mixed into :class:`mindood.client.MindoodClient`, which provides :meth:`call`."""

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError

    @rpc("doc.get_at")
    async def doc_get_at(self, tenant: str, db: str, doc_id: str, at: At) -> dict[str, Any]:
        """The document as it was at ``at``; ``NotFoundError`` if it did not exist yet."""
        result: dict[str, Any] = await self.call(
            "doc.get_at", {"tenant": tenant, "db": db, "doc_id": doc_id, "at": _at(at)}
        )
        return result

    @rpc("doc.list_at")
    async def doc_list_at(self, tenant: str, db: str, at: At) -> list[str]:
        """Ids of the documents that existed, not deleted, at ``at``."""
        result: list[str] = (
            await self.call("doc.list_at", {"tenant": tenant, "db": db, "at": _at(at)})
        )["doc_ids"]
        return result

    @rpc("doc.history")
    async def doc_history(
        self,
        tenant: str,
        db: str,
        doc_id: str,
        *,
        start: int | None = None,
        count: int | None = None,
        data: bool = False,
    ) -> dict[str, Any]:
        """One page of versions from index ``start``; ``next`` is where the next page starts."""
        result: dict[str, Any] = await self.call(
            "doc.history",
            {
                "tenant": tenant,
                "db": db,
                "doc_id": doc_id,
                "start": start,
                "count": count,
                "data": data or None,
            },
        )
        return result

    async def iter_doc_history(
        self, tenant: str, db: str, doc_id: str, *, data: bool = False, page: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        """Every version, oldest first, fetched a page at a time."""
        start: int | None = 0
        while start is not None:
            result = await self.doc_history(tenant, db, doc_id, start=start, count=page, data=data)
            for version in result["versions"]:
                yield version
            start = result["next"]


__all__ = ["At", "HistoryMethods"]
