"""Time travel: a document as it was, the versions it went through, the ids of a past database.

"At T" means what had been written before T: entries created strictly before it count, as in
the library's ``get_document_at_timestamp``.
"""

from __future__ import annotations

from mindood.rpc.schema.common import DB, DOC_ID, TENANT
from mindood.rpc.schema.model import Method, opt, req

AT = req(
    "at",
    "any",
    "a point in time: milliseconds since the epoch, ISO 8601 text (no zone = UTC) "
    "or a msgpack timestamp; entries created before it count",
)

METHODS = (
    Method(
        "doc.get_at",
        "A document as it was at a point in time (deleted by then: deleted is true).",
        (TENANT, DB, DOC_ID, AT),
        "{id, data, created_at, last_modified, deleted, key_id, at}",
        cli="doc at",
        errors=("NotFoundError", "NoKeyError"),
    ),
    Method(
        "doc.history",
        "A page of a document's versions, oldest first: which change, when, by whom; "
        "each version's data on request.",
        (
            TENANT,
            DB,
            DOC_ID,
            opt("start", "integer", "index of the first version of the page (default 0)"),
            opt("count", "integer", "versions per page (default 100, at most 1000)"),
            opt("data", "boolean", "include each version's data (pages then end at 16 MiB)"),
        ),
        "{id, versions: [{index, entry_id, type, created_at, author, device, by_admin, "
        "author_key, deleted, data?}], next: index of the next page or nil}",
        cli="doc history",
        errors=("NotFoundError", "NoKeyError"),
    ),
    Method(
        "doc.list_at",
        "Ids of the documents that existed, not deleted, at a point in time.",
        (TENANT, DB, AT),
        "{tenant, db, at, doc_ids: [string]}",
        cli="doc list-at",
        errors=("NotFoundError",),
    ),
)

__all__ = ["AT", "METHODS"]
