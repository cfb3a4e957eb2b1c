"""Value types with CRDT meaning, and the mapping between Python scalars and Automerge scalars.

Two things here exist only because of the binding (``automerge==1.0.0rc1``):

* Every ``str`` up to ``TEXT_MAX_CHARS`` is written as an Automerge Text object, as
  JavaScript Automerge stores a plain JS string; a ``Str`` scalar would read as
  ``ImmutableString`` in JavaScript, where the reference's checks such as
  ``form === "useroperation"`` fail on it. ``Str`` scalars written by others still read as
  ``str``. ``Text`` is the same on writing, and what Text objects read as.
* ``Counter`` is a native Automerge counter, as JavaScript's ``new Automerge.Counter(n)``
  makes, although the binding can neither write nor read one: ``put`` with
  ``ScalarType.Counter`` panics (and poisons the document), and ``get``/``values`` on a counter
  panic with "not yet implemented" in its value conversion. Only ``increment`` works. So a
  counter is put as an ``Int`` and the committed change is re-encoded with that op's value type
  switched to counter (``columns.mark_counters``; the document then holds the re-encoded change
  instead), and values are read from the binding's ``diff`` patches, whose ``repr`` shows
  counters (``counters.read_counters``). The binding's ``keys``/``length`` at *past* heads
  also leave out counters incremented later, so past states of documents with counters are
  read from a fork. Measured against JavaScript Automerge 3.4.0: a first change with counters
  made here is byte for byte the one JavaScript makes; a counter made here reads as a
  ``Counter`` there; increments from both sides, concurrent ones included, add up. Earlier
  builds emulated counters as maps ``{"$counter": 1, "<actor>": total}``; that was never
  released and is no longer read specially (such a map is a plain map now).

JavaScript quirks met on the way (measured): it stores a whole-number ``number`` as ``Int``,
clamped (``1e300`` becomes ``Int`` 2**63-1; ``new Automerge.Float64(x)`` keeps an F64), and
reads every ``Uint`` and an ``Int`` of 2**53-1 or more (or -2**60, but not -(2**53-1)) as a
``BigInt``.

Reading presents counters as ``Counter`` (an ``int`` subclass, so ``Counter(3) == 3``) and text
objects as ``Text`` (a ``str`` subclass, so ``Text("a") == "a"``): values from ``to_python`` compare
equal to the plain data that was stored, and writing them back keeps their CRDT type.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from automerge.core import ObjType, ScalarType

from mindood.errors import UnsupportedValueError

#: Longest string written as Text. The binding has no splice: a Text costs one insert per
#: character (about 9 us each here), so an 18 MiB string took minutes before the entry-size
#: limit could refuse it. Longer strings are stored as ``Str`` scalars (``ImmutableString`` in
#: JavaScript), which cost nothing per character.
TEXT_MAX_CHARS = 16_384

#: Automerge ``Int`` is a signed 64-bit integer.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MILLISECOND = dt.timedelta(milliseconds=1)

#: A Python value this layer can store as an Automerge scalar.
Scalar = str | int | float | bool | bytes | dt.datetime | None


class Text(str):
    """What a text object reads as: a ``str`` (every string is stored as Automerge Text).

    Inside a change, ``MapProxy.text(key)`` / ``ListProxy.text(index)`` give the live
    ``TextProxy`` that supports ``splice``/``insert``/``delete`` (concurrent edits merge);
    assigning a string writes a new text with the whole value.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Text({str.__repr__(self)})"


class Counter(int):
    """A CRDT counter value: concurrent increments from different actors add up.

    Assign ``Counter(5)`` inside a change to create a native Automerge counter (JavaScript reads
    it as ``Automerge.Counter``); inside changes the field reads as a ``CounterProxy`` with
    ``increment(n)``. Outside changes it is this immutable ``int`` subclass.
    """

    __slots__ = ()

    @property
    def value(self) -> int:
        """The counter's total as a plain ``int``."""
        return int(self)

    def __repr__(self) -> str:
        return f"Counter({int(self)})"


class LiveObject:
    """Base of the live proxies, so value checks can recognise them without importing them."""

    __slots__ = ()


def check_int(value: int) -> int:
    """Reject integers Automerge ``Int`` cannot hold, instead of letting the binding overflow."""
    if not INT_MIN <= value <= INT_MAX:
        raise UnsupportedValueError(f"integer {value} does not fit a signed 64-bit Automerge Int")
    return value


def timestamp_to_ms(value: dt.datetime) -> int:
    """Milliseconds since the epoch, exact integer arithmetic; a naive datetime counts as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (value - _EPOCH) // _MILLISECOND


def encode_scalar(value: Any) -> tuple[ScalarType, Any]:
    """The Automerge scalar for a Python value (``bool`` is tested before ``int``: it is one).

    Datetimes are passed to the binding as aware UTC values rounded down to the millisecond,
    because the binding reads naive datetimes as local time and rounds microseconds itself.
    """
    if value is None:
        return ScalarType.Null, None
    if isinstance(value, bool):
        return ScalarType.Boolean, value
    if isinstance(value, int) and not isinstance(value, Counter):
        return ScalarType.Int, check_int(int(value))
    if isinstance(value, float):
        return ScalarType.F64, float(value)
    if isinstance(value, str) and not isinstance(value, Text):
        return ScalarType.Str, str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return ScalarType.Bytes, bytes(value)
    if isinstance(value, dt.datetime):
        return ScalarType.Timestamp, _EPOCH + timestamp_to_ms(value) * _MILLISECOND
    raise UnsupportedValueError(f"cannot store a {type(value).__name__} as an Automerge scalar")


#: The integer code of a binding enum member (``ScalarType``, ``ObjType``): the members
#: compare by ``==`` at about 0.3 us each and are not hashable, so hot paths tell values apart
#: by their codes instead: ``int()`` once, then cheap comparisons. (The stubs omit ``__int__``.)
enum_code: Callable[[ScalarType | ObjType], int] = int  # type: ignore[assignment]

_STR, _INT, _UINT, _BOOLEAN, _F64, _NULL, _BYTES, _TIMESTAMP, _COUNTER = (
    enum_code(kind)
    for kind in (
        ScalarType.Str,
        ScalarType.Int,
        ScalarType.Uint,
        ScalarType.Boolean,
        ScalarType.F64,
        ScalarType.Null,
        ScalarType.Bytes,
        ScalarType.Timestamp,
        ScalarType.Counter,
    )
)


def decode_scalar(kind: ScalarType, raw: object) -> Scalar:
    """The Python value of an Automerge scalar as the binding returns it.

    Bytes come back as ``list[int]`` and timestamps as naive *local* datetimes (with ``fold`` set
    correctly), so both are converted: ``bytes`` and an aware UTC ``datetime``.
    """
    code = enum_code(kind)
    if code == _STR:
        return cast(str, raw)
    if code in (_INT, _UINT):
        return int(cast(int, raw))
    if code == _BOOLEAN:
        return bool(raw)
    if code == _F64:
        return float(cast(float, raw))
    if code == _NULL:
        return None
    if code == _BYTES:
        return bytes(cast(Sequence[int], raw))
    if code == _TIMESTAMP:
        return cast(dt.datetime, raw).astimezone(dt.UTC)
    if code == _COUNTER:  # only from a CounterIndex: the binding cannot return one
        return Counter(cast(int, raw))
    raise UnsupportedValueError(f"cannot read an Automerge {kind!r} value")


def validate(value: Any, _path: tuple[int, ...] = ()) -> None:
    """Check a whole value tree before writing any of it.

    Failing up front means a caller that catches the error inside a change callback is not left
    with a half-written map or list in the document.
    """
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:  # the usual leaves,
        return  # by exact type: the isinstance chain below would come to the same answer
    if kind is int:
        check_int(value)
        return
    if kind is list:  # by exact type too: neither a Text, a Counter, a proxy nor a Mapping
        _enter(value, _path)
        for item in value:
            validate(item, (*_path, id(value)))
        return
    if isinstance(value, Text | Counter):
        if isinstance(value, Counter):
            check_int(int(value))
        return
    if isinstance(value, LiveObject):
        return  # a live proxy: copied or kept when assigned, already valid
    if isinstance(value, Mapping):
        _enter(value, _path)
        for key, item in value.items():
            check_key(key)
            validate(item, (*_path, id(value)))
        return
    if isinstance(value, list | tuple):
        _enter(value, _path)
        for item in value:
            validate(item, (*_path, id(value)))
        return
    encode_scalar(value)


def _enter(container: object, path: tuple[int, ...]) -> None:
    if id(container) in path:
        raise UnsupportedValueError("cannot store a value that contains itself")


def check_key(key: object) -> str:
    """Map keys must be non-empty strings (Automerge rejects the empty key)."""
    if not isinstance(key, str):
        raise UnsupportedValueError(f"map keys must be str, not {type(key).__name__}")
    if not key:
        raise UnsupportedValueError("map keys must not be empty")
    return key
