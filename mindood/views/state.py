"""A view's built state as plain data: its documents' column values and each origin's cursor.

Saving the state lets a process rebuild a view without reading a single document: the tree is
rebuilt from the saved values, and the next update reads only the changes after the saved
cursors. A state and its cursors belong together: documents changed after the cursor are not in
the values yet, and the update is what brings them in, so a state saved at any moment is correct
to resume from, only more or less stale.

``to_plain()`` gives maps, lists, strings and numbers that MessagePack (or JSON, when the values
are JSON's) can carry; ``from_plain()`` checks every part of it, because it comes back from a
file, and raises ``ViewStateError`` for anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mindood.db import ChangeCursor
from mindood.db.errors import InvalidCursorError
from mindood.views.columns import ViewDefinitionError

STATE_FORMAT = 1


class ViewStateError(ViewDefinitionError):
    """A saved view state is malformed or does not fit the view it is restored into."""


@dataclass(frozen=True, slots=True)
class OriginState:
    """One origin: where its change feed stood, and the column values of its documents then."""

    cursor: ChangeCursor | None
    documents: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class ViewState:
    """Every origin's state, by origin name."""

    origins: Mapping[str, OriginState]

    def document_count(self) -> int:
        return sum(len(o.documents) for o in self.origins.values())

    def to_plain(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "origins": {
                name: {
                    "cursor": origin.cursor.encode() if origin.cursor is not None else None,
                    "documents": origin.documents,
                }
                for name, origin in self.origins.items()
            },
        }

    @classmethod
    def from_plain(cls, raw: object) -> ViewState:
        if not isinstance(raw, Mapping) or raw.get("format") != STATE_FORMAT:
            raise ViewStateError("not a view state of a known format")
        origins = raw.get("origins")
        if not isinstance(origins, Mapping):
            raise ViewStateError("a view state needs a map of origins")
        parsed: dict[str, OriginState] = {}
        for name, origin in origins.items():
            if not isinstance(name, str) or not isinstance(origin, Mapping):
                raise ViewStateError("each origin of a view state is a map under its name")
            parsed[name] = OriginState(_cursor(origin.get("cursor")), _documents(origin, name))
        return cls(parsed)


def _cursor(raw: object) -> ChangeCursor | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ViewStateError("an origin's cursor must be a string or nil")
    try:
        return ChangeCursor.decode(raw)
    except InvalidCursorError as exc:
        raise ViewStateError(f"an origin's cursor is unreadable: {exc}") from None


def _documents(origin: Mapping[Any, Any], name: str) -> dict[str, dict[str, Any]]:
    documents = origin.get("documents")
    if not isinstance(documents, Mapping):
        raise ViewStateError(f"origin {name!r} has no map of documents")
    out: dict[str, dict[str, Any]] = {}
    for doc_id, values in documents.items():
        if not isinstance(doc_id, str) or not isinstance(values, Mapping):
            raise ViewStateError(f"origin {name!r}: documents map ids to column values")
        out[doc_id] = dict(values)
    return out


__all__ = ["STATE_FORMAT", "OriginState", "ViewState", "ViewStateError"]
