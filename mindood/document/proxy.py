"""Live, mutable views of a document, handed to ``AutomergeDoc.change`` callbacks.

Every proxy reads and writes through the one open transaction of its change, so everything a
callback does becomes a single Automerge change. Proxies die with their change: using one later
raises ``ProxyClosedError`` instead of touching a finished transaction (which the binding would
accept and turn into a stray change, or panic on).

Writing rules (applied recursively, after validating the whole value first):
``dict``/``Mapping`` -> Automerge map, ``list``/``tuple`` -> list, ``Text`` -> text object,
``Counter`` -> native counter (see ``values``), ``str`` -> Text (``Str`` scalar when longer than
``TEXT_MAX_CHARS``), ``bool`` ->
``Boolean`` (checked before ``int``), ``int`` -> ``Int``, ``float`` -> ``F64``, ``None`` ->
``Null``, ``bytes`` -> ``Bytes``, ``datetime`` -> ``Timestamp`` (milliseconds; naive means UTC).
Assigning a proxy stores a copy of its current value, except re-assigning a proxy to the place it
already lives (``d["n"] += 1`` on a counter), which is a no-op so no concurrent edits are lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping, MutableSequence
from typing import Any, overload

from automerge.core import ROOT, ObjType, ScalarType, Transaction, Value

from mindood.document import walk
from mindood.document.counters import CounterIndex, obj_key
from mindood.document.values import (
    TEXT_MAX_CHARS,
    Counter,
    LiveObject,
    check_int,
    check_key,
    encode_scalar,
    validate,
)
from mindood.errors import DocumentError, ProxyClosedError, UnsupportedValueError


class Session:
    """The open transaction a family of proxies writes to, and what it knows about counters.

    ``counters`` is where the document's counters are, kept current by every write here (the
    binding cannot read them). ``fresh_ops`` are the op counters of the ``Int`` puts that stand
    for counters created in this change, which the document re-encodes as counters on commit.
    It also notes where the change wrote (``may_have_changed``), so a writer can tell which
    root fields it left as they were without reading them.
    """

    __slots__ = (
        "_created",
        "_empty",
        "_open",
        "_root_keys",
        "_tx",
        "_written",
        "counters",
        "fresh_ops",
    )

    def __init__(self, tx: Transaction, counters: CounterIndex, *, empty: bool = False) -> None:
        self._tx = tx
        self.counters = counters
        self.fresh_ops: list[int] = []
        self._open = True
        #: The document had no change when this one began (a new document being created).
        self._empty = empty
        #: Root keys written, objects below the root written, and objects this change made.
        self._root_keys: set[str | int] = set()
        self._written: set[bytes] = set()
        self._created: set[bytes] = set()

    def note(self, obj: bytes, prop: str | int) -> None:
        """Record a write at ``obj[prop]``."""
        if obj == ROOT:
            self._root_keys.add(prop)
        else:
            self._written.add(obj)

    def absent(self, obj: bytes, key: str) -> bool:
        """Whether ``obj[key]`` is known to hold nothing without reading it: a root field of a
        document that was empty when this change began, and not written since (so a create's
        writes need not read each place first)."""
        return self._empty and obj == ROOT and key not in self._root_keys

    def made(self, obj: bytes) -> bytes:
        """Record an object this change created; returns it."""
        self._created.add(obj)
        return obj

    def may_have_changed(self, key: str) -> bool:
        """Whether the root field ``key`` (or anything inside it) may differ after this change.

        False only if the change wrote neither that key nor any object it did not create
        itself: every object below ``key`` that existed before is then untouched.
        """
        return key in self._root_keys or not self._written <= self._created

    def tx(self) -> Transaction:
        if not self._open:
            raise ProxyClosedError("this document proxy belongs to a change that has ended")
        return self._tx

    def close(self) -> None:
        self._open = False


def _call(action: Any, *args: Any) -> Any:
    """Run one binding write; its bare ``Exception`` (and panics) become ``DocumentError``."""
    try:
        return action(*args)
    except BaseException as exc:
        if isinstance(exc, Exception) or walk.is_panic(exc):
            raise DocumentError(f"Automerge rejected the write: {exc}") from exc
        raise


def _new_object(tx: Transaction, obj: bytes, prop: str | int, kind: ObjType, insert: bool) -> bytes:
    if insert:
        assert isinstance(prop, int)
        return bytes(_call(tx.insert_object, obj, prop, kind))
    return bytes(_call(tx.put_object, obj, prop, kind))


#: Scalar types written as they are (``bool`` has its own entry: it is no ``int`` here).
_PLAIN_SCALARS = {
    int: ScalarType.Int,
    bool: ScalarType.Boolean,
    float: ScalarType.F64,
    type(None): ScalarType.Null,
}


def _store(session: Session, obj: bytes, prop: str | int, value: Any, insert: bool = False) -> None:
    """Write ``value`` at ``obj[prop]`` (or insert it at list index ``prop``), recursively."""
    tx = session.tx()
    kind = type(value)
    plain = _PLAIN_SCALARS.get(kind)
    if plain is None and kind is not str and isinstance(value, Proxy):  # str: no ABC check
        value = value.to_python()  # a dict, list, Text or Counter: never a plain scalar
    session.note(obj, prop)
    if insert:
        assert isinstance(prop, int)
        session.counters.inserted(obj, prop)
    else:
        session.counters.drop(obj, prop)
    if plain is not None:  # the usual field values, by exact type: no isinstance chain
        if insert:
            assert isinstance(prop, int)
            _call(tx.insert, obj, prop, plain, check_int(value) if kind is int else value)
        else:
            _call(tx.put, obj, prop, plain, check_int(value) if kind is int else value)
    elif isinstance(value, str) and len(value) <= TEXT_MAX_CHARS:  # a JavaScript string is
        # Text; a Str scalar reads as ImmutableString there, where `form === "..."` fails
        text = session.made(_new_object(tx, obj, prop, ObjType.Text, insert))
        _insert_text(tx, text, 0, str(value))
    elif isinstance(value, Counter):
        _put_counter(session, obj, prop, int(value), insert)
    elif kind is not list and isinstance(value, Mapping):  # a list: no ABC check
        child = session.made(_new_object(tx, obj, prop, ObjType.Map, insert))
        for key, item in value.items():
            _store(session, child, key, item)
    elif isinstance(value, list | tuple):
        child = session.made(_new_object(tx, obj, prop, ObjType.List, insert))
        for index, item in enumerate(value):
            _store(session, child, index, item, insert=True)
    else:
        scalar, raw = encode_scalar(value)
        if insert:
            assert isinstance(prop, int)
            _call(tx.insert, obj, prop, scalar, raw)
        else:
            _call(tx.put, obj, prop, scalar, raw)


def _put_counter(session: Session, obj: bytes, prop: str | int, value: int, insert: bool) -> None:
    """Put a counter as the ``Int`` the binding can write, noting its op for the re-encoding."""
    tx = session.tx()
    session.note(obj, prop)
    if insert:
        _call(tx.insert, obj, prop, ScalarType.Int, value)
    else:
        _call(tx.put, obj, prop, ScalarType.Int, value)
    found = tx.get(obj, prop)  # an Int still, so the binding can read it
    assert found is not None
    session.fresh_ops.append(obj_key(found[1])[1])
    session.counters.set(obj, prop, value, fresh=True)


def _delete(session: Session, obj: bytes, prop: str | int) -> None:
    """Delete a map key or a list element (later list elements move up one)."""
    _call(session.tx().delete, obj, prop)
    session.note(obj, prop)
    if isinstance(prop, int):
        session.counters.deleted(obj, prop)
    else:
        session.counters.drop(obj, prop)


def _insert_text(tx: Transaction, text: bytes, index: int, chars: str) -> None:
    """Insert one character per op: the binding stores a multi-character ``Str`` insert as a
    single list element, which a later one-character delete would remove whole. One guard
    around the loop, not one ``_call`` per character: every string is written this way."""
    insert, kind = tx.insert, ScalarType.Str
    _call(_insert_chars, insert, text, index, kind, chars)


def _insert_chars(insert: Any, text: bytes, index: int, kind: ScalarType, chars: str) -> None:
    for offset, char in enumerate(chars, index):
        insert(text, offset, kind, char)


def _live(session: Session, found: tuple[Value, bytes], obj: bytes, prop: str | int) -> Any:
    """What reading ``obj[prop]`` inside a change returns: a proxy for maps, lists and counters,
    a Python value else. A text reads as ``Text`` (a ``str``), as a string reads in JavaScript:
    every string is a Text object now, and code reading fields must keep seeing ``str``. Its
    live, spliceable view is ``MapProxy.text`` / ``ListProxy.text``."""
    value, obj_id = found
    if not isinstance(value, ObjType):
        if value[0] == ScalarType.Counter:
            return CounterProxy(session, obj, prop)
        return walk.read_value(session.tx(), value, obj_id, None, None)
    if value == ObjType.Text:
        return walk.read_object(session.tx(), ObjType.Text, obj_id, None, None)
    if value == ObjType.List:
        return ListProxy(session, obj_id)
    return MapProxy(session, obj_id)


def _text_proxy(session: Session, found: tuple[Value, bytes] | None, where: object) -> TextProxy:
    if found is None:
        raise KeyError(where)
    if found[0] != ObjType.Text:
        raise TypeError(f"{where!r} is not a text")
    return TextProxy(session, found[1])


class Proxy(LiveObject):
    """Common part of the live views: the session and the Automerge object id."""

    __slots__ = ("_obj", "_session")

    def __init__(self, session: Session, obj: bytes) -> None:
        self._session = session
        self._obj = obj

    def _tx(self) -> Transaction:
        return self._session.tx()

    def _kind(self) -> ObjType:
        return ObjType.Map

    def to_python(self) -> Any:
        """A plain copy of the current value (``dict``/``list``/``Text``/``Counter``/scalars)."""
        return walk.read_object(self._tx(), self._kind(), self._obj, None, self._session.counters)

    def _is_at(self, found: walk.Found, obj: bytes, prop: str | int) -> bool:
        """Whether this proxy is the value ``found`` at ``obj[prop]`` (same object)."""
        return found is not None and isinstance(found[0], ObjType) and found[1] == self._obj

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Proxy):
            other = other.to_python()
        return bool(self.to_python() == other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_python()!r})"


def _may_reassign(value: Any) -> bool:
    """Whether ``_reassigns_itself`` can be true for ``value`` (it never is for the others, so
    their writes need not read the place first)."""
    return isinstance(value, str | Proxy)


def _reassigns_itself(
    session: Session, value: Any, found: walk.Found, obj: bytes, prop: str | int
) -> bool:
    """Whether writing ``value`` over ``found`` would change nothing (so nothing is written).

    A string is a new Text object on every write, so an equal string already there (Text or a
    ``Str`` scalar) counts as the same value, as an equal scalar always did.
    """
    if isinstance(value, Proxy):
        return value._session is session and value._is_at(found, obj, prop)
    if isinstance(value, str) and found is not None:
        kind = found[0]
        if kind == ObjType.Text:
            return bool(walk.read_object(session.tx(), ObjType.Text, found[1], None, None) == value)
        if not isinstance(kind, ObjType) and kind[0] == ScalarType.Str:
            return bool(kind[1] == value)
    return False


class MapProxy(Proxy, MutableMapping[str, Any]):
    """A live Automerge map: a real ``MutableMapping[str, Any]``."""

    __slots__ = ()

    def _get(self, key: object) -> tuple[Value, bytes] | None:
        if not isinstance(key, str) or not key:
            return None  # the binding would answer an int key with a list element
        return walk.get(self._tx(), self._obj, key, None, self._session.counters)

    def __getitem__(self, key: str) -> Any:
        found = self._get(key)
        if found is None:
            raise KeyError(key)
        return _live(self._session, found, self._obj, key)

    def __setitem__(self, key: str, value: Any) -> None:
        check_key(key)
        validate(value)
        session = self._session
        if (
            _may_reassign(value)
            and not session.absent(self._obj, key)
            and _reassigns_itself(session, value, self._get(key), self._obj, key)
        ):
            return
        _store(session, self._obj, key, value)

    def __delitem__(self, key: str) -> None:
        if self._get(key) is None:
            raise KeyError(key)
        _delete(self._session, self._obj, key)

    def text(self, key: str) -> TextProxy:
        """The live, spliceable view of the text at ``key`` (``TypeError`` if it is none)."""
        return _text_proxy(self._session, self._get(key), key)

    def __contains__(self, key: object) -> bool:
        return self._get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(walk.keys(self._tx(), self._obj, None))

    def __len__(self) -> int:
        return len(walk.keys(self._tx(), self._obj, None))

    def update(self, other: Any = (), /, **fields: Any) -> None:
        """``MutableMapping.update``, without its ABC checks for a plain ``dict`` (the way
        every create writes its fields)."""
        if type(other) is dict:
            for key, value in other.items():
                self[key] = value
            if not fields:
                return
            other = ()
        super().update(other, **fields)

    _MISSING: Any = object()

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        """Remove ``key`` and return a plain copy of its value (the removed object is gone)."""
        found = self._get(key)
        if found is None:
            if default is MapProxy._MISSING:
                raise KeyError(key)
            return default
        value = walk.read_value(self._tx(), found[0], found[1], None, self._session.counters)
        _delete(self._session, self._obj, key)
        return value

    def popitem(self) -> tuple[str, Any]:
        for key in self:
            return key, self.pop(key)
        raise KeyError("popitem(): map is empty")


class ListProxy(Proxy, MutableSequence[Any]):
    """A live Automerge list: a real ``MutableSequence`` (negative indices, slices to read)."""

    __slots__ = ()

    def _kind(self) -> ObjType:
        return ObjType.List

    def __len__(self) -> int:
        return int(walk.guarded(lambda: self._tx().length(self._obj)))

    def _index(self, index: int, length: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"list indices must be integers, not {type(index).__name__}")
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise IndexError("list index out of range")
        return index

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        length = len(self)
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(length))]
        position = self._index(index, length)
        found = walk.get(self._tx(), self._obj, position, None, self._session.counters)
        if found is None:
            raise IndexError("list index out of range")
        return _live(self._session, found, self._obj, position)

    def text(self, index: int) -> TextProxy:
        """The live, spliceable view of the text at ``index`` (``TypeError`` if it is none)."""
        position = self._index(index, len(self))
        found = walk.get(self._tx(), self._obj, position, None, self._session.counters)
        return _text_proxy(self._session, found, index)

    @overload
    def __setitem__(self, index: int, value: Any) -> None: ...
    @overload
    def __setitem__(self, index: slice, value: Iterable[Any]) -> None: ...
    def __setitem__(self, index: int | slice, value: Any) -> None:
        length = len(self)
        if isinstance(index, slice):
            self._set_slice(index, list(value), length)
            return
        position = self._index(index, length)
        validate(value)
        if _may_reassign(value):
            found = walk.get(self._tx(), self._obj, position, None, self._session.counters)
            if _reassigns_itself(self._session, value, found, self._obj, position):
                return
        _store(self._session, self._obj, position, value)

    def _set_slice(self, index: slice, values: list[Any], length: int) -> None:
        positions = range(*index.indices(length))
        values = [v.to_python() if isinstance(v, Proxy) else v for v in values]
        validate(values)
        if positions.step == 1:
            for position in reversed(positions):
                _delete(self._session, self._obj, position)
            for offset, value in enumerate(values):
                _store(self._session, self._obj, positions.start + offset, value, insert=True)
            return
        if len(values) != len(positions):
            raise ValueError(
                f"attempt to assign sequence of size {len(values)} "
                f"to extended slice of size {len(positions)}"
            )
        for position, value in zip(positions, values, strict=True):
            _store(self._session, self._obj, position, value)

    @overload
    def __delitem__(self, index: int) -> None: ...
    @overload
    def __delitem__(self, index: slice) -> None: ...
    def __delitem__(self, index: int | slice) -> None:
        length = len(self)
        if isinstance(index, slice):
            positions = sorted(range(*index.indices(length)), reverse=True)
        else:
            positions = [self._index(index, length)]
        for position in positions:
            _delete(self._session, self._obj, position)

    def insert(self, index: int, value: Any) -> None:
        """Insert before ``index``, clamped like ``list.insert``."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"list indices must be integers, not {type(index).__name__}")
        length = len(self)
        if index < 0:
            index = max(0, index + length)
        validate(value)
        _store(self._session, self._obj, min(index, length), value, insert=True)

    def __iter__(self) -> Iterator[Any]:
        items = walk.values(self._tx(), self._obj, None, self._session.counters)
        return iter([_live(self._session, found, self._obj, i) for i, found in enumerate(items)])

    def pop(self, index: int = -1) -> Any:
        """Remove an item and return a plain copy of it (the removed object is gone)."""
        position = self._index(index, len(self))
        found = walk.get(self._tx(), self._obj, position, None, self._session.counters)
        assert found is not None
        value = walk.read_value(self._tx(), found[0], found[1], None, self._session.counters)
        _delete(self._session, self._obj, position)
        return value

    def reverse(self) -> None:
        """Reverse in place (copies values: the items of a list are not moved in Automerge)."""
        self[:] = list(reversed(self.to_python()))


class TextProxy(Proxy):
    """A live collaborative text; indices count Unicode code points, as Python ``str`` does."""

    __slots__ = ()

    def _kind(self) -> ObjType:
        return ObjType.Text

    def __str__(self) -> str:
        return str(walk.guarded(lambda: self._tx().text(self._obj, None)))

    def __len__(self) -> int:
        return int(walk.guarded(lambda: self._tx().length(self._obj)))

    def __getitem__(self, index: int | slice) -> str:
        return str(self)[index]

    def splice(self, index: int, delete_count: int, insert: str = "") -> None:
        """Delete ``delete_count`` characters at ``index``, then insert ``insert`` there."""
        length = len(self)
        if not 0 <= index <= length:
            raise IndexError(f"text index {index} out of range 0..{length}")
        if delete_count < 0 or index + delete_count > length:
            raise IndexError(f"cannot delete {delete_count} characters at {index} of {length}")
        if not isinstance(insert, str):
            raise UnsupportedValueError("text can only splice in a str")
        tx = self._tx()
        self._session.note(self._obj, index)
        for _ in range(delete_count):
            _call(tx.delete, self._obj, index)
        _insert_text(tx, self._obj, index, insert)

    def insert(self, index: int, text: str) -> None:
        self.splice(index, 0, text)

    def delete(self, index: int, count: int = 1) -> None:
        self.splice(index, count)

    def append(self, text: str) -> None:
        self.splice(len(self), 0, text)

    def __iadd__(self, text: str) -> TextProxy:
        self.append(text)
        return self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TextProxy):
            other = str(other)
        return isinstance(other, str) and str(self) == other


class CounterProxy(Proxy):
    """A live native counter at ``obj[prop]``: ``value`` and ``increment``.

    It is a place, not an object (a counter is a scalar in its map or list): in a list, elements
    inserted or deleted before it move the counter but not this proxy.
    """

    __slots__ = ("_prop",)

    def __init__(self, session: Session, obj: bytes, prop: str | int) -> None:
        super().__init__(session, obj)
        self._prop = prop

    def _entry(self) -> tuple[int, bool]:
        self._tx()  # raises once the change has ended
        entry = self._session.counters.get(self._obj, self._prop)
        if entry is None:
            raise DocumentError(f"{self._prop!r} is no longer a counter")
        return entry

    def _is_at(self, found: walk.Found, obj: bytes, prop: str | int) -> bool:
        return (
            found is not None
            and found[0] == (ScalarType.Counter, self._entry()[0])
            and (obj, prop) == (self._obj, self._prop)
        )

    @property
    def value(self) -> int:
        return self._entry()[0]

    def increment(self, amount: int = 1) -> None:
        """Add ``amount`` (may be negative): an increment op, which merges with concurrent ones.

        A counter created in this same change is still an ``Int`` to the binding (see
        ``values``), so it is put again with the new total; the change then creates it with it.
        """
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise UnsupportedValueError("counters increment by an int")
        value, fresh = self._entry()
        total = check_int(value + amount)
        if fresh:
            _put_counter(self._session, self._obj, self._prop, total, insert=False)
            return
        _call(self._tx().increment, self._obj, self._prop, amount)
        self._session.note(self._obj, self._prop)
        self._session.counters.set(self._obj, self._prop, total, fresh=False)

    def decrement(self, amount: int = 1) -> None:
        self.increment(-amount)

    def __iadd__(self, amount: int) -> CounterProxy:
        self.increment(amount)
        return self

    def __isub__(self, amount: int) -> CounterProxy:
        self.increment(-amount)
        return self

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value

    def to_python(self) -> Any:
        return Counter(self.value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CounterProxy):
            other = other.value
        return isinstance(other, int) and not isinstance(other, bool) and self.value == other

    def __repr__(self) -> str:
        return f"CounterProxy({self.value})"
