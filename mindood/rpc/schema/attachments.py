"""Attachments: files of a document, moved in pieces of at most ``MAX_PIECE_BYTES`` both ways.

No frame ever carries a whole file. Writing is an upload: ``upload_begin`` (or ``append_begin``)
opens one change of the document on this connection, each ``upload_chunk`` is encrypted and
stored as it arrives, ``upload_finish`` commits the change; ``upload_abort``, an idle timeout or
a dropped connection leave the document as it was. Reading is by range, so a stream is a loop of
``attachment.read`` calls.
"""

from __future__ import annotations

from mindood.rpc.schema.common import DB, DOC_ID, TENANT
from mindood.rpc.schema.model import Method, opt, req

#: Largest piece of a file in one request or response (uploads and reads alike): 1 MiB.
MAX_PIECE_BYTES = 1024 * 1024

_ATTACHMENT_ID = req("attachment_id", "string", "the attachment's id (attachment.list shows it)")
_UPLOAD = req("upload", "integer", "the id upload_begin or append_begin answered")
_INFO = "{doc_id, id, file_name, mime_type, size, created_at, created_by}"
_UPLOAD_ERRORS = ("NotFoundError", "LimitExceededError", "InvalidParamsError")

METHODS = (
    Method(
        "attachment.list",
        "The files attached to a document.",
        (TENANT, DB, DOC_ID),
        "{doc_id, attachments: [{id, file_name, mime_type, size, created_at, created_by}]}",
        cli="attach list",
        errors=("NotFoundError",),
    ),
    Method(
        "attachment.upload_begin",
        "Open an upload of a new file on this connection; the document waits for its finish.",
        (
            TENANT,
            DB,
            DOC_ID,
            req("file_name", "string", "the file's name"),
            opt("mime_type", "string", "its type (default application/octet-stream)"),
        ),
        "{upload, doc_id}",
        cli="attach add",
        errors=("NotFoundError", "LimitExceededError", "DocumentDeletedRpcError"),
    ),
    Method(
        "attachment.append_begin",
        "Open an upload that adds bytes at the end of an existing file.",
        (TENANT, DB, DOC_ID, _ATTACHMENT_ID),
        "{upload, doc_id}",
        cli="attach append",
        errors=("NotFoundError", "LimitExceededError", "DocumentDeletedRpcError"),
    ),
    Method(
        "attachment.upload_chunk",
        "The next piece of an open upload (at most 1 MiB).",
        (
            _UPLOAD,
            req("data", "binary", "the bytes"),
            opt("offset", "integer", "where the piece starts (checked: pieces go in order)"),
        ),
        "{upload, received}",
        cli="attach add",
        errors=_UPLOAD_ERRORS,
    ),
    Method(
        "attachment.upload_finish",
        "Store the last pieces and commit the document change.",
        (_UPLOAD,),
        _INFO,
        cli="attach add",
        errors=_UPLOAD_ERRORS,
    ),
    Method(
        "attachment.upload_abort",
        "Drop an open upload; the document stays as it was.",
        (_UPLOAD,),
        "{upload, aborted}",
        cli="attach add",
        errors=("NotFoundError",),
    ),
    Method(
        "attachment.read",
        "Bytes of a file from 'offset' (at most 'length', at most 1 MiB).",
        (
            TENANT,
            DB,
            DOC_ID,
            _ATTACHMENT_ID,
            opt("offset", "integer", "the first byte (default 0)"),
            opt("length", "integer", "how many bytes (default and most 1 MiB)"),
        ),
        "{id, offset, size, data: binary}; data is empty at or past the end",
        cli="attach get",
        errors=("NotFoundError", "InvalidParamsError", "NoKeyError"),
    ),
    Method(
        "attachment.remove",
        "Drop a file from a document (one change; its chunks stay in the history).",
        (TENANT, DB, DOC_ID, _ATTACHMENT_ID),
        "{doc_id, id, removed}",
        cli="attach remove",
        errors=("NotFoundError", "DocumentDeletedRpcError"),
    ),
)

__all__ = ["MAX_PIECE_BYTES", "METHODS"]
