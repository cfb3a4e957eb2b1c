"""RPC methods over attachments: list, read by range, remove, and uploads streamed in pieces.

The pieces of a file never exceed ``MAX_PIECE_BYTES`` in either direction; how an upload becomes
one change of its document, and how ranges read in order stay cheap, is in
:mod:`mindood.daemon.attachment_streams`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from mindood.daemon.attachment_streams import files_of, typed_errors
from mindood.daemon.node import Node
from mindood.daemon.params import Handler, Params
from mindood.db import AttachmentInfo, MindooDB, MindooDoc
from mindood.db.doc import DEFAULT_MIME_TYPE
from mindood.rpc.connection import Connection
from mindood.rpc.errors import DocumentDeletedRpcError, InvalidParamsError
from mindood.rpc.schema.attachments import MAX_PIECE_BYTES

log = logging.getLogger("mindood.rpc.attachments")


MAX_DOC_ID_CHARS = 256
MAX_FILE_NAME_CHARS = 4096
MAX_MIME_TYPE_CHARS = 256
_MAX_OFFSET = 2**63 - 1


def info_to_wire(info: AttachmentInfo) -> dict[str, Any]:
    return {
        "id": info.attachment_id,
        "file_name": info.file_name,
        "mime_type": info.mime_type,
        "size": info.size,
        "created_at": info.created_at,
        "created_by": info.created_by,
    }


def _upload_id(p: Params) -> int:
    value = p.opt_int("upload", low=1, high=_MAX_OFFSET, default=0)
    if not value:
        raise InvalidParamsError("missing parameter 'upload'")
    return value


# -- handlers ------------------------------------------------------------------------------------
def _doc_names(p: Params) -> tuple[str, str, str]:
    return p.tenant(), p.db(), p.text("doc_id", max_chars=MAX_DOC_ID_CHARS)


async def _writable(db: MindooDB, doc_id: str) -> MindooDoc:
    """The document, refused early when it cannot take the change an upload makes."""
    doc = await db.get_document(doc_id)
    if doc.is_deleted():
        raise DocumentDeletedRpcError(f"document {doc_id!r} is deleted")
    return doc


async def _list(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name, doc_id = _doc_names(p)
    p.finish()
    db = await node.tenants.open_db(tenant_id, db_name)
    doc = await db.get_document(doc_id)
    return {"doc_id": doc_id, "attachments": [info_to_wire(i) for i in doc.get_attachments()]}


async def _upload_begin(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name, doc_id = _doc_names(p)
    file_name = p.text("file_name", max_chars=MAX_FILE_NAME_CHARS)
    mime_type = p.opt_text("mime_type", max_chars=MAX_MIME_TYPE_CHARS) or DEFAULT_MIME_TYPE
    p.finish()
    uploads, target = files_of(conn).uploads, (tenant_id, db_name, doc_id)
    uploads.admit(target, node.config.limits)
    db = await node.tenants.open_db(tenant_id, db_name)
    await _writable(db, doc_id)

    async def add(doc: MindooDoc, pieces: AsyncIterator[bytes]) -> AttachmentInfo:
        return await doc.add_attachment_stream(pieces, file_name, mime_type)

    upload = uploads.start(conn, db, target, add, node.config.limits)
    log.debug("upload %d: new file %r for document %r", upload.id, file_name, doc_id)
    return {"upload": upload.id, "doc_id": doc_id}


async def _append_begin(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name, doc_id = _doc_names(p)
    attachment_id = p.text("attachment_id", max_chars=MAX_DOC_ID_CHARS)
    p.finish()
    uploads, target = files_of(conn).uploads, (tenant_id, db_name, doc_id)
    uploads.admit(target, node.config.limits)
    db = await node.tenants.open_db(tenant_id, db_name)
    with typed_errors():
        (await _writable(db, doc_id)).get_attachment_info(attachment_id)

    async def append(doc: MindooDoc, pieces: AsyncIterator[bytes]) -> AttachmentInfo:
        return await doc.append_to_attachment(attachment_id, pieces)

    upload = uploads.start(conn, db, target, append, node.config.limits)
    log.debug("upload %d: appending to %s of document %r", upload.id, attachment_id, doc_id)
    return {"upload": upload.id, "doc_id": doc_id}


async def _upload_chunk(node: Node, p: Params, conn: Connection) -> Any:
    upload_id = _upload_id(p)
    data = p.binary("data", max_bytes=MAX_PIECE_BYTES)
    offset = p.opt_int("offset", low=0, high=_MAX_OFFSET, default=-1)
    p.finish()
    uploads = files_of(conn).uploads
    upload = uploads.get(upload_id)
    try:
        received = await upload.put(data, offset if offset >= 0 else None)
    finally:
        uploads.drop_if_ended(upload)
    return {"upload": upload_id, "received": received}


async def _upload_finish(node: Node, p: Params, conn: Connection) -> Any:
    upload_id = _upload_id(p)
    p.finish()
    uploads = files_of(conn).uploads
    upload = uploads.get(upload_id)
    try:
        info = await upload.finish()
    finally:
        uploads.drop_if_ended(upload)
    log.info(
        "upload %d: %d bytes stored in attachment %s (now %d bytes) of document %r",
        upload_id,
        upload.received,
        info.attachment_id,
        info.size,
        upload.doc_id,
    )
    return {"doc_id": upload.doc_id, **info_to_wire(info)}


async def _upload_abort(node: Node, p: Params, conn: Connection) -> Any:
    upload_id = _upload_id(p)
    p.finish()
    uploads = files_of(conn).uploads
    upload = uploads.get(upload_id)
    await upload.abort()
    uploads.by_id.pop(upload_id, None)
    log.info("upload %d to document %r aborted by the client", upload_id, upload.doc_id)
    return {"upload": upload_id, "aborted": True}


async def _read(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name, doc_id = _doc_names(p)
    attachment_id = p.text("attachment_id", max_chars=MAX_DOC_ID_CHARS)
    offset = p.opt_int("offset", low=0, high=_MAX_OFFSET, default=0)
    length = p.opt_int("length", low=0, high=MAX_PIECE_BYTES, default=MAX_PIECE_BYTES)
    p.finish()
    db = await node.tenants.open_db(tenant_id, db_name)
    with typed_errors():
        doc = await db.get_document(doc_id)
        info = doc.get_attachment_info(attachment_id)
    data = b""
    if offset < info.size and length:
        target = (tenant_id, db_name, doc_id)
        data = await files_of(conn).readers.read(target, db, doc, info, offset, length)
    return {"id": attachment_id, "offset": offset, "size": info.size, "data": data}


async def _remove(node: Node, p: Params, conn: Connection) -> Any:
    tenant_id, db_name, doc_id = _doc_names(p)
    attachment_id = p.text("attachment_id", max_chars=MAX_DOC_ID_CHARS)
    p.finish()
    db = await node.tenants.open_db(tenant_id, db_name)

    async def remove(doc: MindooDoc) -> None:
        await doc.remove_attachment(attachment_id)

    with typed_errors():
        await db.change_doc(doc_id, remove)
    log.info("attachment %s removed from document %r", attachment_id, doc_id)
    return {"doc_id": doc_id, "id": attachment_id, "removed": True}


ATTACHMENT_METHODS: dict[str, Handler] = {
    "attachment.list": _list,
    "attachment.upload_begin": _upload_begin,
    "attachment.append_begin": _append_begin,
    "attachment.upload_chunk": _upload_chunk,
    "attachment.upload_finish": _upload_finish,
    "attachment.upload_abort": _upload_abort,
    "attachment.read": _read,
    "attachment.remove": _remove,
}

__all__ = ["ATTACHMENT_METHODS", "info_to_wire"]
