"""Document changes as data: a list of operations on paths, applied as one change.

An operation is a map; a path is a list of map keys (strings) and list indices (integers),
or a single string, which is one key (``"city"`` is ``["city"]``, never ``["c", "i", ...]``)::

    {"op": "set",       "path": ["address", "city"], "value": "Berlin"}
    {"op": "delete",    "path": ["tags", 0]}
    {"op": "insert",    "path": ["tags"], "index": 1, "value": "new"}      # into a list
    {"op": "splice",    "path": ["notes"], "index": 0, "delete": 3, "text": "Hi"}  # a text
    {"op": "increment", "path": ["visits"], "by": 2}                        # a counter

Values are MessagePack/JSON data (maps, arrays, strings, numbers, booleans, nil, binary,
timestamps); ``{"$text": "..."}`` makes a collaborative text and ``{"$counter": 5}`` a CRDT
counter. Everything is checked before anything is written (:func:`parse_ops`), and the ops are
applied inside one ``change_doc`` callback, so any failure while applying rolls the whole
change back: a request writes all its operations or none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mindood.db import MindooDoc
from mindood.db.batch import NewDocument
from mindood.db.doc import SYSTEM_FIELDS
from mindood.document import CounterProxy, ListProxy, MapProxy, TextProxy
from mindood.document.values import INT_MAX, INT_MIN, Counter, Text
from mindood.errors import DocumentError
from mindood.rpc.errors import InvalidParamsError

OPS = ("set", "delete", "insert", "splice", "increment")
MAX_PATH_LENGTH = 64
MAX_VALUE_DEPTH = 64
MAX_KEY_CHARS = 1024
TEXT_MARKER = "$text"
COUNTER_MARKER = "$counter"

PathItem = str | int


@dataclass(frozen=True, slots=True)
class Op:
    kind: str
    path: tuple[PathItem, ...]
    value: Any = None
    index: int = 0
    delete: int = 0
    text: str = ""
    by: int = 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: object, where: str, *, low: int = INT_MIN, high: int = INT_MAX) -> int:
    if not _is_int(value):
        raise InvalidParamsError(f"{where} must be an integer")
    assert isinstance(value, int)
    if not low <= value <= high:
        raise InvalidParamsError(f"{where} must be between {low} and {high}")
    return value


def value_from_wire(value: object, where: str, depth: int = 0) -> Any:
    """A Python value to store, from wire data; markers become ``Text`` / ``Counter``."""
    if depth > MAX_VALUE_DEPTH:
        raise InvalidParamsError(f"{where} is nested deeper than {MAX_VALUE_DEPTH} levels")
    if value is None or isinstance(value, bool | float | str | bytes):
        return value
    if _is_int(value):
        return _int(value, where)
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, list):
        return [value_from_wire(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        if len(value) == 1 and TEXT_MARKER in value:
            text = value[TEXT_MARKER]
            if not isinstance(text, str):
                raise InvalidParamsError(f"{where}.{TEXT_MARKER} must be a string")
            return Text(text)
        if len(value) == 1 and COUNTER_MARKER in value:
            return Counter(_int(value[COUNTER_MARKER], f"{where}.{COUNTER_MARKER}"))
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                raise InvalidParamsError(f"{where}: map keys must be non-empty strings")
            if len(key) > MAX_KEY_CHARS:
                raise InvalidParamsError(f"{where}: a map key is longer than {MAX_KEY_CHARS}")
            out[key] = value_from_wire(item, f"{where}.{key}", depth + 1)
        return out
    raise InvalidParamsError(f"{where}: cannot store a {type(value).__name__}")


def _path(raw: object, where: str, *, allow_empty: bool) -> tuple[PathItem, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise InvalidParamsError(f"{where}.path must be an array or a key")
    if not raw and not allow_empty:
        raise InvalidParamsError(f"{where}.path must not be empty")
    if len(raw) > MAX_PATH_LENGTH:
        raise InvalidParamsError(f"{where}.path is longer than {MAX_PATH_LENGTH}")
    items: list[PathItem] = []
    for i, item in enumerate(raw):
        key_ok = isinstance(item, str) and 0 < len(item) <= MAX_KEY_CHARS
        index_ok = isinstance(item, int) and not isinstance(item, bool) and 0 <= item < 2**31
        if key_ok or index_ok:
            items.append(item)
        else:
            raise InvalidParamsError(
                f"{where}.path[{i}] must be a non-empty string key or a list index >= 0"
            )
    if items and items[0] in SYSTEM_FIELDS:
        raise InvalidParamsError(f"{where}.path: {items[0]!r} is maintained by MindooDB")
    if items and not isinstance(items[0], str):
        raise InvalidParamsError(f"{where}.path must start with a key (the document is a map)")
    return tuple(items)


_FIELDS: Mapping[str, frozenset[str]] = {
    "set": frozenset({"op", "path", "value"}),
    "delete": frozenset({"op", "path"}),
    "insert": frozenset({"op", "path", "index", "value"}),
    "splice": frozenset({"op", "path", "index", "delete", "text"}),
    "increment": frozenset({"op", "path", "by"}),
}


def parse_op(raw: object, where: str) -> Op:
    if not isinstance(raw, dict):
        raise InvalidParamsError(f"{where} must be a map")
    kind = raw.get("op")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise InvalidParamsError(f"{where}.op must be one of {', '.join(OPS)}")
    extra = set(raw) - _FIELDS[kind]
    if extra:
        raise InvalidParamsError(f"{where}: unknown field {sorted(map(str, extra))[0]!r}")
    path = _path(raw.get("path"), where, allow_empty=False)
    if kind == "set":
        if "value" not in raw:
            raise InvalidParamsError(f"{where}.value is required")
        return Op(kind, path, value=value_from_wire(raw["value"], f"{where}.value"))
    if kind == "delete":
        return Op(kind, path)
    if kind == "insert":
        if "value" not in raw:
            raise InvalidParamsError(f"{where}.value is required")
        index = _int(raw.get("index"), f"{where}.index", low=0, high=2**31)
        return Op(kind, path, value=value_from_wire(raw["value"], f"{where}.value"), index=index)
    if kind == "splice":
        index = _int(raw.get("index"), f"{where}.index", low=0, high=2**31)
        delete = _int(raw.get("delete", 0), f"{where}.delete", low=0, high=2**31)
        text = raw.get("text", "")
        if not isinstance(text, str):
            raise InvalidParamsError(f"{where}.text must be a string")
        return Op(kind, path, index=index, delete=delete, text=text)
    return Op(kind, path, by=_int(raw.get("by", 1), f"{where}.by"))


def parse_ops(raw: object, *, max_ops: int) -> list[Op]:
    """Validate a whole list of operations; the first problem is an ``InvalidParamsError``."""
    if not isinstance(raw, list):
        raise InvalidParamsError("parameter 'ops' must be an array")
    if not raw:
        raise InvalidParamsError("parameter 'ops' must not be empty")
    if len(raw) > max_ops:
        raise InvalidParamsError(f"parameter 'ops' has more than {max_ops} operations")
    return [parse_op(item, f"ops[{i}]") for i, item in enumerate(raw)]


def initial_data(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The ``data`` of ``doc.create``: a map of fields, with the same value rules as ops."""
    if raw is None:
        return {}
    converted = value_from_wire(raw, "data")
    assert isinstance(converted, dict)
    for key in converted:
        if key in SYSTEM_FIELDS:
            raise InvalidParamsError(f"data: {key!r} is maintained by MindooDB")
    return converted


def parse_new_docs(raw: object, *, max_docs: int) -> list[NewDocument]:
    """The ``docs`` of ``doc.create_many``: {data, doc_id, key_id} maps, all checked."""
    if not isinstance(raw, list):
        raise InvalidParamsError("parameter 'docs' must be an array")
    if len(raw) > max_docs:
        raise InvalidParamsError(f"parameter 'docs' has more than {max_docs} documents")
    specs: list[NewDocument] = []
    for i, item in enumerate(raw):
        where = f"docs[{i}]"
        if not isinstance(item, dict):
            raise InvalidParamsError(f"{where} must be a map")
        extra = set(item) - _NEW_DOC_FIELDS
        if extra:
            raise InvalidParamsError(f"{where}: unknown field {sorted(map(str, extra))[0]!r}")
        data = item.get("data")
        if data is not None and not isinstance(data, dict):
            raise InvalidParamsError(f"{where}.data must be a map")
        doc_id, key_id = _opt_text(item, "doc_id", where), _opt_text(item, "key_id", where)
        try:
            fields = initial_data(data)
        except InvalidParamsError as exc:
            raise InvalidParamsError(f"{where}.{exc.message}") from None  # docs[3].data.x
        specs.append(NewDocument(fields, doc_id, key_id or "default"))
    return specs


def parse_changes(raw: object, *, max_docs: int, max_ops: int) -> list[tuple[str, list[Op]]]:
    """The ``changes`` of ``doc.change_many``: maps of ``doc_id`` and ``ops``; all checked."""
    if not isinstance(raw, list):
        raise InvalidParamsError("parameter 'changes' must be an array")
    if len(raw) > max_docs:
        raise InvalidParamsError(f"parameter 'changes' has more than {max_docs} documents")
    changes: list[tuple[str, list[Op]]] = []
    for i, item in enumerate(raw):
        where = f"changes[{i}]"
        if not isinstance(item, dict):
            raise InvalidParamsError(f"{where} must be a map")
        extra = set(item) - {"doc_id", "ops"}
        if extra:
            raise InvalidParamsError(f"{where}: unknown field {sorted(map(str, extra))[0]!r}")
        doc_id = _opt_text(item, "doc_id", where)
        if doc_id is None:
            raise InvalidParamsError(f"{where}.doc_id is required")
        try:
            ops = parse_ops(item.get("ops"), max_ops=max_ops)
        except InvalidParamsError as exc:
            raise InvalidParamsError(f"{where}: {exc.message}") from None
        changes.append((doc_id, ops))
    return changes


def parse_doc_ids(raw: object, *, max_docs: int) -> list[str]:
    """The ``doc_ids`` of ``doc.get_many``: non-empty strings."""
    if not isinstance(raw, list):
        raise InvalidParamsError("parameter 'doc_ids' must be an array")
    if len(raw) > max_docs:
        raise InvalidParamsError(f"parameter 'doc_ids' has more than {max_docs} ids")
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not 0 < len(item) <= MAX_DOC_ID_CHARS:
            raise InvalidParamsError(f"doc_ids[{i}] must be a document id (a non-empty string)")
    return list(raw)


_NEW_DOC_FIELDS = frozenset({"data", "doc_id", "key_id"})
MAX_DOC_ID_CHARS = 256


def _opt_text(item: dict[str, Any], name: str, where: str) -> str | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_DOC_ID_CHARS:
        raise InvalidParamsError(f"{where}.{name} must be a non-empty string of at most 256")
    return value


# -- applying ------------------------------------------------------------------------------------
def _describe(path: Sequence[PathItem]) -> str:
    return "/" + "/".join(str(p) for p in path)


def _step(node: Any, item: PathItem, where: str, path: Sequence[PathItem]) -> Any:
    if isinstance(node, MapProxy):
        if not isinstance(item, str):
            raise InvalidParamsError(f"{where}: {_describe(path)} is a map, keys are strings")
        if item not in node:
            raise InvalidParamsError(f"{where}: no key {item!r} at {_describe(path)}")
        return node[item]
    if isinstance(node, ListProxy):
        if not isinstance(item, int):
            raise InvalidParamsError(f"{where}: {_describe(path)} is a list, indices are integers")
        if not 0 <= item < len(node):
            raise InvalidParamsError(f"{where}: index {item} out of range at {_describe(path)}")
        return node[item]
    raise InvalidParamsError(f"{where}: {_describe(path)} is not a map or list")


def _walk(root: Any, path: Sequence[PathItem], where: str) -> Any:
    node = root
    for depth, item in enumerate(path):
        node = _step(node, item, where, path[:depth])
    return node


def _apply(root: Any, op: Op, where: str) -> None:
    if op.kind in ("set", "delete"):
        parent = _walk(root, op.path[:-1], where)
        last = op.path[-1]
        if isinstance(parent, MapProxy) and isinstance(last, str):
            if op.kind == "set":
                parent[last] = op.value
            elif last in parent:
                del parent[last]
            else:
                raise InvalidParamsError(f"{where}: no key {last!r} at {_describe(op.path[:-1])}")
            return
        if isinstance(parent, ListProxy) and isinstance(last, int):
            if not 0 <= last < len(parent):
                raise InvalidParamsError(f"{where}: index {last} out of range")
            if op.kind == "set":
                parent[last] = op.value
            else:
                del parent[last]
            return
        raise InvalidParamsError(f"{where}: cannot {op.kind} {_describe(op.path)}")
    if op.kind == "splice":
        parent, last = _walk(root, op.path[:-1], where), op.path[-1]
        try:
            text = _text_at(parent, last)
        except (KeyError, IndexError, TypeError):
            text = None
        if text is None:
            raise InvalidParamsError(
                f"{where}: {_describe(op.path)} is not a text (create it with {{'$text': ...}})"
            )
        if op.index + op.delete > len(text):
            raise InvalidParamsError(f"{where}: splice reaches past the end of the text")
        text.splice(op.index, op.delete, op.text)
        return
    target = _walk(root, op.path, where)
    if op.kind == "insert":
        if not isinstance(target, ListProxy):
            raise InvalidParamsError(f"{where}: {_describe(op.path)} is not a list")
        if op.index > len(target):
            raise InvalidParamsError(f"{where}: index {op.index} is past the end of the list")
        target.insert(op.index, op.value)
    else:
        if not isinstance(target, CounterProxy):
            raise InvalidParamsError(
                f"{where}: {_describe(op.path)} is not a counter (create it with {{'$counter': n}})"
            )
        target.increment(op.by)


def _text_at(parent: Any, last: str | int) -> TextProxy | None:
    if isinstance(parent, MapProxy) and isinstance(last, str):
        return parent.text(last)
    if isinstance(parent, ListProxy) and isinstance(last, int):
        return parent.text(last)
    return None


def apply_ops(doc: MindooDoc, ops: Sequence[Op]) -> None:
    """Apply ``ops`` inside a ``change_doc`` callback; raising rolls the change back."""
    root = doc.get_data()
    for i, op in enumerate(ops):
        where = f"ops[{i}]"
        try:
            _apply(root, op, where)
        except InvalidParamsError:
            raise
        except (DocumentError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise InvalidParamsError(f"{where}: {exc}") from None


def doc_to_wire(doc: MindooDoc) -> dict[str, Any]:
    """A document as every method that returns one answers it."""
    return {
        "id": doc.get_id(),
        "data": dict(doc.get_data()),
        "created_at": doc.get_created_at(),
        "last_modified": doc.get_last_modified(),
        "deleted": doc.is_deleted(),
        "key_id": doc.get_decryption_key_id(),
    }


__all__ = [
    "OPS",
    "Op",
    "apply_ops",
    "doc_to_wire",
    "initial_data",
    "parse_changes",
    "parse_doc_ids",
    "parse_new_docs",
    "parse_ops",
    "value_from_wire",
]
