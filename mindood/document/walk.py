"""Reading Automerge objects into plain Python values, at the current state or at past heads.

``automerge.core.extract`` has no heads parameter and the binding's high-level proxy mis-types
booleans, so documents are walked here with ``get/keys/values/text(..., heads)``. The same code
reads committed documents and open transactions (both expose these methods).

The binding *panics* (``PanicException``, a ``BaseException``) when ``get``/``values`` meet a
native counter, so a reader of a document with counters passes a ``CounterIndex`` (see
``counters``): places it lists are answered from it as ``(ScalarType.Counter, value)``, the shape
the binding itself uses for counters, and never reach the binding. An index describes the
current state, so it goes with ``heads=None`` only (past states are read from a fork, see
``AutomergeDoc.to_python``). Every read is still guarded: a panic that slips through (it does
not poison the document) becomes ``UnsupportedValueError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from automerge.core import ROOT, Document, ObjType, ScalarType, Transaction, Value

from mindood.document.counters import CounterIndex
from mindood.document.values import Counter, Text, decode_scalar, enum_code
from mindood.errors import UnsupportedValueError

#: Something the walker can read: a document or an open transaction.
Reader = Document | Transaction
#: ``None`` reads the current state.
Heads = list[bytes] | None
#: Where a reader's counters are; None for a document without any.
Counters = CounterIndex | None
#: What ``get`` finds: the value and its object id (empty for a counter from the index).
Found = tuple[Value, bytes] | None

_T = TypeVar("_T")


def is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is the binding's Rust panic (its class lives in an unimportable module)."""
    return type(exc).__name__ == "PanicException"


def guarded(read: Callable[[], _T]) -> _T:
    """Run one binding read, turning a Rust panic into a typed error."""
    try:
        return read()
    except BaseException as exc:
        if is_panic(exc):
            raise UnsupportedValueError(
                "the document holds a value this Automerge binding cannot read"
            ) from exc
        raise


def get(reader: Reader, obj: bytes, prop: str | int, heads: Heads, counters: Counters) -> Found:
    """The winning value at ``obj[prop]`` and its object id, or None when absent."""
    if counters is not None:
        entry = counters.get(obj, prop)
        if entry is not None:
            return (ScalarType.Counter, entry[0]), b""
    return guarded(lambda: reader.get(obj, prop, heads))


def keys(reader: Reader, obj: bytes, heads: Heads) -> list[str]:
    return guarded(lambda: list(reader.keys(obj, heads)))


def values(
    reader: Reader, obj: bytes, heads: Heads, counters: Counters
) -> list[tuple[Value, bytes]]:
    """Every item of the list at ``obj``; one ``get`` per item when it holds a counter (the
    binding's ``values`` would panic on it)."""
    if counters is None or not counters.holds(obj):
        return guarded(lambda: list(reader.values(obj, heads)))
    length = guarded(lambda: reader.length(obj, heads))
    out = []
    for index in range(length):
        found = get(reader, obj, index, heads, counters)
        assert found is not None
        out.append(found)
    return out


def read_value(
    reader: Reader, value: Value, obj_id: bytes, heads: Heads, counters: Counters
) -> Any:
    """The plain Python form of one value as ``get`` returned it."""
    if isinstance(value, ObjType):
        return read_object(reader, value, obj_id, heads, counters)
    return decode_scalar(value[0], value[1])


def read_object(reader: Reader, kind: ObjType, obj: bytes, heads: Heads, counters: Counters) -> Any:
    """A map as ``dict``, a list as ``list``, a text as ``Text``."""
    if kind == ObjType.Text:
        return Text(guarded(lambda: reader.text(obj, heads)))
    if kind == ObjType.List:
        return [
            read_value(reader, value, item_id, heads, counters)
            for value, item_id in values(reader, obj, heads, counters)
        ]
    here = {} if counters is None else counters.of(obj)
    out: dict[str, Any] = {}
    for key in keys(reader, obj, heads):
        if key in here:
            out[key] = Counter(here[key][0])
            continue
        found = get(reader, obj, key, heads, None)
        if found is not None:
            out[key] = read_value(reader, found[0], found[1], heads, counters)
    return out


def read_current(doc: Document) -> dict[str, Any]:
    """The current root map of a document without counters, as ``read_object`` reads it.

    The path of every cold read: one guard around the whole walk instead of one per binding
    call, no counter lookups (the caller knows the history has none), a map's values in one
    ``values`` call (the winners, in ``keys`` order) and values told apart by their enum's
    integer code (comparing the binding's enum members costs about 0.3 us each).
    """
    return guarded(lambda: _current_map(doc, ROOT))


_TEXT, _LIST = enum_code(ObjType.Text), enum_code(ObjType.List)
_STR, _INT = enum_code(ScalarType.Str), enum_code(ScalarType.Int)


def _current_map(doc: Document, obj: bytes) -> dict[str, Any]:
    names = doc.keys(obj)
    found = doc.values(obj)
    if len(found) != len(names):  # not seen; the walk key by key is right in any case
        return _current_map_by_key(doc, obj)
    out: dict[str, Any] = {}
    for key, (value, item_id) in zip(names, found, strict=True):
        if isinstance(value, tuple):  # a scalar: (ScalarType, raw)
            code = enum_code(value[0])
            if code == _STR:
                out[key] = value[1]
            elif code == _INT:
                out[key] = int(cast(int, value[1]))
            else:
                out[key] = decode_scalar(value[0], value[1])
        else:
            out[key] = _current_object(doc, value, item_id)
    return out


def _current_map_by_key(doc: Document, obj: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    get = doc.get
    for key in doc.keys(obj):
        found = get(obj, key)
        if found is not None:
            out[key] = _current_value(doc, found[0], found[1])
    return out


def _current_value(doc: Document, value: Value, obj_id: bytes) -> Any:
    if isinstance(value, tuple):
        return decode_scalar(value[0], value[1])
    return _current_object(doc, value, obj_id)


def _current_object(doc: Document, kind: ObjType, obj_id: bytes) -> Any:
    code = enum_code(kind)
    if code == _TEXT:
        return Text(doc.text(obj_id))
    if code == _LIST:
        return [_current_value(doc, item, item_id) for item, item_id in doc.values(obj_id)]
    return _current_map(doc, obj_id)
