"""``MindooDoc``: what applications hold, read-only outside ``change_doc``, live inside it."""

from __future__ import annotations

import copy
from collections.abc import MutableMapping
from typing import Any

#: Fields MindooDB keeps in every document for itself; ``get_data()`` leaves them out.
SYSTEM_FIELDS = frozenset({"_attachments", "_lastModified"})


class MindooDoc:
    """A document at one state: its id, data, and lifecycle facts."""

    __slots__ = ("_created_at", "_data", "_deleted", "_doc_id", "_key_id", "_last_modified")

    def __init__(
        self,
        doc_id: str,
        data: MutableMapping[str, Any],
        *,
        key_id: str,
        created_at: int,
        last_modified: int,
        deleted: bool,
    ) -> None:
        self._doc_id = doc_id
        self._data = data
        self._key_id = key_id
        self._created_at = created_at
        self._last_modified = last_modified
        self._deleted = deleted

    def get_id(self) -> str:
        return self._doc_id

    def get_data(self) -> MutableMapping[str, Any]:
        """The document's fields.

        Outside ``change_doc`` this is a private copy (mutating it changes nothing stored);
        inside a ``change_doc`` callback it is the live Automerge map, and writes become the change.
        """
        return self._data

    def get_system_field(self, name: str) -> Any:
        return self._data.get(name)

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


class _UserView(dict[str, Any]):
    """A plain dict of user fields (system fields removed) that also compares as one."""


def user_data(full: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the user's fields, without MindooDB's own."""
    return _UserView({k: copy.deepcopy(v) for k, v in full.items() if k not in SYSTEM_FIELDS})
