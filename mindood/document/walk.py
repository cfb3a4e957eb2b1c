"""Reading Automerge objects into plain Python values, at the current state or at past heads.

``automerge.core.extract`` has no heads parameter and the binding's high-level proxy mis-types
booleans, so documents are walked here with ``get/keys/values/text(..., heads)``. The same code
reads committed documents and open transactions (both expose these methods).

Every read is guarded: the binding *panics* (``PanicException``, a ``BaseException``) when it meets
a native Automerge counter, e.g. one written by JavaScript. That panic does not poison the
document, so it is turned into ``UnsupportedValueError`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from automerge.core import Document, ObjType, ScalarType, Transaction, Value

from mindood.document.values import COUNTER_MARKER, Counter, Text, decode_scalar
from mindood.errors import UnsupportedValueError

#: Something the walker can read: a document or an open transaction.
Reader = Document | Transaction
#: ``None`` reads the current state.
Heads = list[bytes] | None

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
                "the document holds a value this Automerge binding cannot read "
                "(probably a native counter written by another implementation)"
            ) from exc
        raise


def get(reader: Reader, obj: bytes, prop: str | int, heads: Heads) -> tuple[Value, bytes] | None:
    """The winning value at ``obj[prop]`` and its object id, or None when absent."""
    return guarded(lambda: reader.get(obj, prop, heads))


def keys(reader: Reader, obj: bytes, heads: Heads) -> list[str]:
    return guarded(lambda: list(reader.keys(obj, heads)))


def counter_parts(reader: Reader, obj: bytes, heads: Heads) -> dict[str, int] | None:
    """The per-actor totals when the map at ``obj`` is an emulated counter, else None.

    A map counts as a counter when its marker is ``Int 1`` and every other entry is an ``Int``
    under an actor id (lowercase hex); anything else stays a plain map, so user data with a
    ``$counter`` key is not mangled.
    """
    marker = get(reader, obj, COUNTER_MARKER, heads)
    if marker is None or marker[0] != (ScalarType.Int, 1):
        return None
    parts: dict[str, int] = {}
    for key in keys(reader, obj, heads):
        if key == COUNTER_MARKER:
            continue
        if not _is_actor_hex(key):
            return None
        found = get(reader, obj, key, heads)
        if found is None:
            continue
        value = found[0]
        if isinstance(value, ObjType) or value[0] != ScalarType.Int:
            return None
        parts[key] = int(cast(int, value[1]))
    return parts


def read_value(reader: Reader, value: Value, obj_id: bytes, heads: Heads) -> Any:
    """The plain Python form of one value as ``get`` returned it."""
    if isinstance(value, ObjType):
        return read_object(reader, value, obj_id, heads)
    return decode_scalar(value[0], value[1])


def read_object(reader: Reader, kind: ObjType, obj: bytes, heads: Heads) -> Any:
    """A map as ``dict`` (or ``Counter``), a list as ``list``, a text as ``Text``."""
    if kind == ObjType.Text:
        return Text(guarded(lambda: reader.text(obj, heads)))
    if kind == ObjType.List:
        items = guarded(lambda: reader.values(obj, heads))
        return [read_value(reader, value, item_id, heads) for value, item_id in items]
    parts = counter_parts(reader, obj, heads)
    if parts is not None:
        return Counter(sum(parts.values()))
    out: dict[str, Any] = {}
    for key in keys(reader, obj, heads):
        found = get(reader, obj, key, heads)
        if found is not None:
            out[key] = read_value(reader, found[0], found[1], heads)
    return out


def _is_actor_hex(key: str) -> bool:
    return len(key) % 2 == 0 and all(c in "0123456789abcdef" for c in key)
