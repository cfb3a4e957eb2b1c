"""Databases and documents: explicit database lifecycle, documents, the change feed."""

from __future__ import annotations

from mindood.rpc.schema.common import DB, DOC_ID, TENANT
from mindood.rpc.schema.model import Method, opt, req

_DOC = "{id, data, created_at, last_modified, deleted, key_id}"

METHODS = (
    Method(
        "db.list",
        "Databases of a tenant on this node.",
        (TENANT,),
        "{tenant, databases: [string]}",
        cli="db list",
    ),
    Method(
        "db.create",
        "Create a database (it then syncs to every member that serves the tenant).",
        (TENANT, DB),
        "{tenant, db, created}",
        cli="db create",
    ),
    Method(
        "db.drop",
        "Delete this node's copy of a database and stop syncing it; other nodes keep theirs "
        "and it is not taken from them again until it is created here again.",
        (TENANT, DB),
        "{tenant, db, dropped}",
        cli="db drop",
        errors=("NotFoundError", "InvalidParamsError"),
    ),
    Method(
        "doc.create",
        "Create a document in an existing database.",
        (
            TENANT,
            DB,
            opt("data", "map", "initial fields ($text / $counter values become CRDT types)"),
            opt("doc_id", "string", "use this id (default: a new random one)"),
            opt("key_id", "string", "encrypt with this named key (default: the tenant key)"),
        ),
        _DOC,
        cli="doc create",
        errors=("NotFoundError",),
    ),
    Method(
        "doc.change",
        "Apply operations to a document as one change.",
        (TENANT, DB, DOC_ID, req("ops", "array", "set/delete/insert/splice/increment operations")),
        _DOC,
        cli="doc change",
        errors=("NotFoundError", "DocumentDeletedRpcError"),
    ),
    Method(
        "doc.get",
        "A document's current state.",
        (TENANT, DB, DOC_ID),
        _DOC,
        cli="doc get",
        errors=("NotFoundError",),
    ),
    Method(
        "doc.create_many",
        "Create several documents with one durable write: all of them or none.",
        (
            TENANT,
            DB,
            req("docs", "array", "maps of {data, doc_id, key_id}, each as for doc.create"),
        ),
        "{docs: [" + _DOC + "]}",
        cli="doc create",
        errors=("NotFoundError", "InvalidParamsError"),
    ),
    Method(
        "doc.change_many",
        "Change several documents, each as its own change, with one durable write: all or none.",
        (TENANT, DB, req("changes", "array", "maps of {doc_id, ops}, ops as for doc.change")),
        "{docs: [" + _DOC + "]}",
        cli="doc change",
        errors=("NotFoundError", "DocumentDeletedRpcError", "InvalidParamsError"),
    ),
    Method(
        "doc.get_many",
        "The current state of several documents, in the order asked.",
        (TENANT, DB, req("doc_ids", "array", "document ids")),
        "{docs: [" + _DOC + "]}",
        cli="doc get",
        errors=("NotFoundError",),
    ),
    Method(
        "doc.list",
        "Ids of the documents of a database.",
        (TENANT, DB),
        "{tenant, db, doc_ids: [string]}",
        cli="doc list",
    ),
    Method(
        "doc.delete",
        "Delete a document (a tombstone change; history stays).",
        (TENANT, DB, DOC_ID),
        "{id, deleted}",
        cli="doc delete",
    ),
    Method(
        "doc.changes",
        "Ids of documents with entries after a cursor, in receipt order (needs no keys).",
        (
            TENANT,
            DB,
            opt("cursor", "map", "{epoch, order, id} from the previous page"),
            opt("limit", "integer", "at most this many entries scanned"),
        ),
        "{doc_ids, cursor, has_more, reset}",
        cli="doc changes",
    ),
)

__all__ = ["METHODS"]
