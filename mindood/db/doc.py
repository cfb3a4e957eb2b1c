"""``MindooDoc``: what applications hold, read-only outside ``change_doc``, live inside it.

Attachments hang off the document: anyone holding a ``MindooDoc`` can list and read them (the
chunks are fetched from the database's attachment store on demand); only the document handed to
a ``change_doc`` callback can add, append to or remove them, and those methods are ``async``
because they write chunks while the callback runs. The change then records the new references.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, MutableMapping, MutableSequence, Sequence
from typing import Any

from mindood.bytesource import DataSource
from mindood.db.attachments import AttachmentInfo, AttachmentIO, ChunkWriter, parse_attachments
from mindood.db.errors import AttachmentNotFoundError, ReadOnlyDocumentError
from mindood.errors import DatabaseError
from store.ids import uuid7

#: Fields MindooDB keeps in every document for itself; ``get_data()`` leaves them out.
ATTACHMENTS_FIELD = "_attachments"
#: When the document was last edited (ms), written with every change as the reference does.
LAST_MODIFIED_FIELD = "_lastModified"
SYSTEM_FIELDS = frozenset({ATTACHMENTS_FIELD, LAST_MODIFIED_FIELD})
_SYSTEM_ORDER = tuple(sorted(SYSTEM_FIELDS))
_new_dict, _fill_dict = dict.__new__, dict.update
DEFAULT_MIME_TYPE = "application/octet-stream"


class MindooDoc:
    """A document at one state: its id, data, lifecycle facts and attachments."""

    __slots__ = (
        "_attachments",
        "_created_at",
        "_data",
        "_deleted",
        "_doc_id",
        "_files",
        "_key_id",
        "_last_modified",
        "_writer",
    )

    def __init__(
        self,
        doc_id: str,
        data: MutableMapping[str, Any] | DeferredData,
        *,
        key_id: str,
        created_at: int,
        last_modified: int,
        deleted: bool,
        attachments: Sequence[AttachmentInfo] = (),
        files: AttachmentIO | None = None,
        writer: ChunkWriter | None = None,
    ) -> None:
        self._doc_id = doc_id
        self._data = data
        self._key_id = key_id
        self._created_at = created_at
        self._last_modified = last_modified
        self._deleted = deleted
        self._attachments = tuple(attachments)
        self._files = files
        #: Set only on the live document of a ``change_doc`` callback.
        self._writer = writer

    def get_id(self) -> str:
        return self._doc_id

    def get_data(self) -> MutableMapping[str, Any]:
        """The document's fields.

        Outside ``change_doc`` this is a private copy (mutating it changes nothing stored);
        inside a ``change_doc`` callback it is the live Automerge map, and writes become the change.
        """
        data = self._data
        if isinstance(data, DeferredData):
            data = self._data = data.take()
        return data

    def get_system_field(self, name: str) -> Any:
        """A MindooDB field such as ``_lastModified``: live inside ``change_doc``, else the copy
        ``user_data`` set aside (``get_data()`` leaves system fields out)."""
        data = self.get_data()
        if name in data:
            return data[name]
        system = getattr(data, "system", None)
        return copy.deepcopy(system.get(name)) if system is not None else None

    def is_deleted(self) -> bool:
        return self._deleted

    def get_created_at(self) -> int:
        return self._created_at

    def get_last_modified(self) -> int:
        return self._last_modified

    def get_decryption_key_id(self) -> str:
        return self._key_id

    def __repr__(self) -> str:
        state = " deleted" if self._deleted else ""
        return f"<MindooDoc {self._doc_id}{state}>"

    # -- attachments: reading ----------------------------------------------------------------
    def get_attachments(self) -> list[AttachmentInfo]:
        """The document's files, in the order they were added."""
        if self._writer is not None:
            return list(parse_attachments(self.get_data().get(ATTACHMENTS_FIELD)))
        return list(self._attachments)

    def get_attachment_info(self, attachment_id: str) -> AttachmentInfo:
        for info in self.get_attachments():
            if info.attachment_id == attachment_id:
                return info
        raise AttachmentNotFoundError(
            f"document {self._doc_id!r} has no attachment {attachment_id!r}"
        )

    async def get_attachment(self, attachment_id: str) -> bytes:
        """The whole file (use ``stream_attachment`` for files too large to hold)."""
        info = self.get_attachment_info(attachment_id)
        return await self._require_files().read(self._doc_id, info)

    async def get_attachment_range(self, attachment_id: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of a file; fetches only the chunks that overlap the range."""
        info = self.get_attachment_info(attachment_id)
        return await self._require_files().read(self._doc_id, info, start, end)

    async def stream_attachment(
        self, attachment_id: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The file (or ``[start, end)`` of it) piece by piece, holding a few chunks at most."""
        info = self.get_attachment_info(attachment_id)
        async for piece in self._require_files().stream(self._doc_id, info, start, end):
            yield piece

    def _require_files(self) -> AttachmentIO:
        if self._files is None:
            raise DatabaseError("this document was not read from a database with attachments")
        return self._files

    # -- attachments: writing (inside change_doc) --------------------------------------------
    async def add_attachment(
        self, data: bytes, file_name: str, mime_type: str = DEFAULT_MIME_TYPE
    ) -> AttachmentInfo:
        """Store ``data`` as a new file of this document; returns its reference."""
        return await self.add_attachment_stream(data, file_name, mime_type)

    async def add_attachment_stream(
        self, source: DataSource, file_name: str, mime_type: str = DEFAULT_MIME_TYPE
    ) -> AttachmentInfo:
        """Store a file arriving as bytes, an iterable or an async iterable of byte pieces.

        Chunks are encrypted and written as the data arrives, never holding the whole file.
        If the change is later abandoned (the callback raises), the chunks written so far stay
        in the store unreferenced: harmless, and never read.
        """
        writer = self._require_writer()
        attachment_id = uuid7()
        last, size = await writer.write(attachment_id, source, None)
        info = AttachmentInfo(
            attachment_id=attachment_id,
            file_name=str(file_name),
            mime_type=str(mime_type),
            size=size,
            last_chunk_id=last,
            decryption_key_id=writer.key_id,
            created_at=writer.now(),
            created_by=writer.author,
        )
        self._live_list().append(info.to_fields())
        return info

    async def append_to_attachment(self, attachment_id: str, data: DataSource) -> AttachmentInfo:
        """Add bytes at the end of a file: new chunks chain onto its current last chunk."""
        writer = self._require_writer()
        live = self._live_list()
        index, info = self._find_live(live, attachment_id)
        last, added = await writer.write(attachment_id, data, info.last_chunk_id)
        updated = info.appended(last, added)
        item = live[index]
        item["lastChunkId"] = updated.last_chunk_id
        item["size"] = updated.size
        return updated

    async def remove_attachment(self, attachment_id: str) -> None:
        """Drop the file from the document (its chunks stay in the history, for time travel)."""
        self._require_writer()
        live = self._live_list()
        index, _ = self._find_live(live, attachment_id)
        del live[index]

    def _require_writer(self) -> ChunkWriter:
        if self._writer is None:
            raise ReadOnlyDocumentError("attachments are written inside change_doc only")
        return self._writer

    def _live_list(self) -> MutableSequence[Any]:
        data = self.get_data()
        current = data.get(ATTACHMENTS_FIELD)
        if not isinstance(current, MutableSequence):
            data[ATTACHMENTS_FIELD] = []
            current = data[ATTACHMENTS_FIELD]
        assert isinstance(current, MutableSequence)
        return current

    def _find_live(
        self, live: MutableSequence[Any], attachment_id: str
    ) -> tuple[int, AttachmentInfo]:
        for index, item in enumerate(live):
            info = AttachmentInfo.from_fields(item)
            if info is not None and info.attachment_id == attachment_id:
                return index, info
        raise AttachmentNotFoundError(
            f"document {self._doc_id!r} has no attachment {attachment_id!r}"
        )


class DeferredData:
    """A document's user data, read from its state only when first asked (``take``).

    What a write returns: most callers of ``create_document`` and ``change_doc`` keep the id or
    nothing, and reading the whole document back cost more than the rest of a small change.
    ``read`` gives a plain copy of the data no one else holds. Before its document changes
    again, the state that made this hands it a reader of the data as of now (``pin``), which
    reads at the document's heads of then when asked (``DocState.settle``), so the data is
    always that of the write.
    """

    __slots__ = ("__weakref__", "_data", "_read")

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self._read: Callable[[], dict[str, Any]] | None = read
        self._data: dict[str, Any] | None = None

    @property
    def taken(self) -> bool:
        """Whether the data was read (it no longer depends on the state)."""
        return self._data is not None

    def pin(self, read: Callable[[], dict[str, Any]]) -> None:
        """Read with ``read`` instead, unless the data was read already."""
        if self._data is None:
            self._read = read

    def take(self) -> dict[str, Any]:
        if self._data is None:
            assert self._read is not None
            self._data = user_data(self._read(), owned=True)
            self._read = None  # the state need not outlive this
        return self._data


class _UserView(dict[str, Any]):
    """A plain dict of user fields (system fields removed) that also compares as one.

    ``system`` keeps the removed fields, so ``MindooDoc.get_system_field`` still answers on a
    read-only document.
    """

    __slots__ = ("system",)

    def __init__(self, user: dict[str, Any], system: dict[str, Any] | None = None) -> None:
        super().__init__(user)
        self.system: dict[str, Any] = system or {}


def user_data(full: dict[str, Any], *, owned: bool = False) -> dict[str, Any]:
    """The user's fields; MindooDB's own are kept aside for ``get_system_field``.

    A deep copy, unless ``owned``: ``full`` is then a fresh ``to_python`` result no one else
    holds, and copying it again would only cost time.
    """
    if owned:
        # every batch read builds one per document: take the few system fields out of the
        # caller's dict and copy the rest once, in C (no ``__init__``), instead of filtering
        # every key twice
        system: dict[str, Any] = {}
        for name in _SYSTEM_ORDER:
            if name in full:
                system[name] = full.pop(name)
        view: _UserView = _new_dict(_UserView)
        _fill_dict(view, full)
        view.system = system
        return view
    user = {k: copy.deepcopy(v) for k, v in full.items() if k not in SYSTEM_FIELDS}
    system = {k: copy.deepcopy(v) for k, v in full.items() if k in SYSTEM_FIELDS}
    return _UserView(user, system)
