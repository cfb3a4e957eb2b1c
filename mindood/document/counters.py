"""Where a document's native counters are and what they hold, without the binding's reads.

The binding panics when ``get``/``values`` meet a counter ("not yet implemented" in its value
conversion), but its ``diff`` patches carry counters fine, and although they expose no
attributes, their ``repr`` is the Rust ``Debug`` form, for example::

    Patch { obj: Root, path: [], action: PutMap { key: "c", value:
      (Scalar(Counter(Counter { start: 5, current: 7 })), Id(1, ActorID("aaaaaaaa"), 0)), ... } }

``read_counters`` diffs the empty document against some heads, which yields the whole state at
those heads as patches, and replays the patches of every object holding a counter into a
``CounterIndex``: object -> {map key or list index -> current value}. Readers consult the index
before asking the binding, so the binding never converts a counter. Only objects with a counter
are parsed in full; the rest is skipped by a substring test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from automerge.core import ROOT, Document

from mindood.document.chunks import decode_uleb128
from mindood.errors import UnsupportedValueError

#: An object as ``(actor, counter)`` of its id; the root is ``(b"", 0)``. The binding's object
#: ids also carry an actor *index*, which is not part of an object's identity.
ObjKey = tuple[bytes, int]
Prop = str | int

_ROOT_KEY: ObjKey = (b"", 0)
_ID = r'Id\(\d+, ActorID\("[0-9a-f]*"\), \d+\)'
_STRING = r'"(?:[^"\\]|\\.)*"'
#: A patch up to its action, exactly (strings with their escapes): the object, the action's
#: name and, for map puts and deletes, the key, all without the cost of a full parse.
_HEAD = re.compile(
    rf"Patch \{{ obj: (?:Root|Id\((\d+), ActorID\(\"([0-9a-f]*)\"\), \d+\)), "
    rf"path: \[(?:\((?:Root|{_ID}), (?:Map\({_STRING}\)|Seq\(\d+\))\)(?:, )?)*\], "
    rf"action: (\w+) \{{ (?:key: ({_STRING}))?"
)
_COUNTER = "Counter(Counter {"
#: Actions that move list elements or change a counter: replayed in objects holding counters.
_REPLAYED = {"Insert", "PutSeq", "DeleteSeq", "Increment"}


def obj_key(obj: bytes) -> ObjKey:
    """The identity of a binding object id: ``0x10``, actor length, actor, actor index, counter
    (all lengths and numbers unsigned LEB128); ``ROOT`` is ``b"\\x00"``."""
    if obj == ROOT:
        return _ROOT_KEY
    if not obj or obj[0] != 0x10:
        raise UnsupportedValueError(f"unexpected Automerge object id {obj.hex()}")
    size, pos = decode_uleb128(obj, 1)
    actor = obj[pos : pos + size]
    _index, pos = decode_uleb128(obj, pos + size)
    counter, _ = decode_uleb128(obj, pos)
    return bytes(actor), counter


class CounterIndex:
    """The counters of a document state: value and whether this change created it.

    Sessions keep their copy current while a change edits the document (puts and deletes drop
    entries, list inserts and deletes shift the indices after them).
    """

    __slots__ = ("_objects",)

    def __init__(self) -> None:
        self._objects: dict[ObjKey, dict[Prop, tuple[int, bool]]] = {}

    def copy(self, *, settled: bool = False) -> CounterIndex:
        """An independent copy; ``settled`` marks every counter as not fresh (committed)."""
        other = CounterIndex()
        other._objects = {
            key: {prop: (value, fresh and not settled) for prop, (value, fresh) in props.items()}
            for key, props in self._objects.items()
        }
        return other

    def holds(self, obj: bytes) -> bool:
        """Whether the object at ``obj`` has any counter."""
        return bool(self._objects.get(obj_key(obj)))

    def of(self, obj: bytes) -> dict[Prop, tuple[int, bool]]:
        """The counters of the object at ``obj`` by key or index (do not modify)."""
        return self._objects.get(obj_key(obj)) or {}

    def get(self, obj: bytes, prop: Prop) -> tuple[int, bool] | None:
        """``(value, fresh)`` of the counter at ``obj[prop]``, or None when that is no counter."""
        if not self._objects:
            return None
        props = self._objects.get(obj_key(obj))
        return None if props is None else props.get(prop)

    def set(self, obj: bytes, prop: Prop, value: int, *, fresh: bool) -> None:
        self._set(obj_key(obj), prop, value, fresh)

    def drop(self, obj: bytes, prop: Prop) -> None:
        if not self._objects:  # no counters (the usual case): no object id to parse
            return
        props = self._objects.get(obj_key(obj))
        if props is not None:
            props.pop(prop, None)

    def inserted(self, obj: bytes, index: int, count: int = 1) -> None:
        """``count`` list elements were inserted at ``index``."""
        if self._objects:
            self._shift(obj_key(obj), index, count)

    def deleted(self, obj: bytes, index: int, count: int = 1) -> None:
        """``count`` list elements were deleted at ``index``."""
        if self._objects:
            self._shift(obj_key(obj), index, -count)

    def _set(self, key: ObjKey, prop: Prop, value: int, fresh: bool) -> None:
        self._objects.setdefault(key, {})[prop] = (value, fresh)

    def _shift(self, key: ObjKey, index: int, by: int) -> None:
        props = self._objects.get(key)
        if not props:
            return
        moved: dict[Prop, tuple[int, bool]] = {}
        for at, entry in props.items():
            assert isinstance(at, int)
            if at < index:
                moved[at] = entry
            elif by > 0 or at >= index - by:  # after an insert, or after the deleted run
                moved[at + by] = entry
        self._objects[key] = moved


def read_counters(
    doc: Document,
    heads: list[bytes],
    since: list[bytes] | None = None,
    base: CounterIndex | None = None,
) -> CounterIndex:
    """The counters of ``doc`` as of ``heads`` (see the module docstring).

    With ``since`` and ``base`` (the counters as of ``since``, an ancestor state), only the
    patches between the two are replayed onto a copy of ``base``: cheap after a few changes.
    """
    index = CounterIndex() if base is None else base.copy()
    for patch in doc.diff(since or [], heads):
        text = repr(patch)
        head = _HEAD.match(text)
        if head is None:
            raise UnsupportedValueError(f"unexpected Automerge patch: {text[:200]}")
        key = _ROOT_KEY if head[1] is None else (bytes.fromhex(head[2]), int(head[1]))
        if _COUNTER in text:
            _replay(index, key, _parse(text))
            continue
        props = index._objects.get(key)
        if not props:
            continue  # nothing to move or overwrite: the object holds no counter (yet)
        if head[4] is not None:  # a map put or delete, not of a counter: it overwrites one
            props.pop(_unescape(head[4][1:-1]), None)
        elif head[3] in _REPLAYED:
            _replay(index, key, _parse(text))
    return index


def _replay(index: CounterIndex, key: ObjKey, patch: Any) -> None:
    """Apply one patch of an object holding counters to the index."""
    action = patch.fields["action"]
    fields = action.fields
    name = action.name
    if name == "PutMap":
        _put(index, key, fields["key"], fields["value"])
    elif name == "PutSeq":
        _put(index, key, fields["index"], fields["value"])
    elif name == "Insert":
        at = fields["index"]
        values = list(_tree(fields["values"].fields["root_node"]))
        index._shift(key, at, len(values))
        for offset, (value, _obj, _conflict) in enumerate(values):
            _put(index, key, at + offset, (value, _obj))
    elif name == "DeleteMap":
        index._objects.get(key, {}).pop(fields["key"], None)
    elif name == "DeleteSeq":
        index._shift(key, fields["index"], -fields["length"])
    elif name == "Increment":
        prop = fields["prop"].args[0]
        value, fresh = index._objects.get(key, {}).get(prop, (0, False))
        index._set(key, prop, value + fields["value"], fresh)
    elif name not in ("Conflict", "Mark"):
        raise UnsupportedValueError(f"unexpected Automerge patch action {name}")


def _put(index: CounterIndex, key: ObjKey, prop: Prop, value: Any) -> None:
    scalar = value[0]
    if scalar.name == "Scalar" and scalar.args[0].name == "Counter":
        index._set(key, prop, scalar.args[0].args[0].fields["current"], False)
    else:
        index._objects.get(key, {}).pop(prop, None)


def _tree(root: Any) -> Iterator[Any]:
    """The elements of a ``SequenceTreeInternal`` root node in order (a B-tree: child 0, element
    0, child 1, element 1, ..., last child)."""
    if root.name == "Some":
        yield from _node(root.args[0])


def _node(node: Any) -> Iterator[Any]:
    elements = node.fields["elements"]
    children = node.fields["children"]
    for position, element in enumerate(elements):
        if children:
            yield from _node(children[position])
        yield element
    if children:
        yield from _node(children[len(elements)])


# ----- a parser for Rust's Debug notation ---------------------------------------------------------


class Named:
    """``Name { field: value }`` (``fields``), ``Name(value, ...)`` (``args``) or ``Name``."""

    __slots__ = ("args", "fields", "name")

    def __init__(self, name: str, fields: dict[str, Any] | None, args: list[Any] | None) -> None:
        self.name = name
        self.fields = fields or {}
        self.args = args or []


_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")'
    r"|(?P<num>-?(?:inf|NaN)\b|-?\d+(?:\.\d+)?(?:e-?\d+)?)"
    r"|(?P<name>[A-Za-z_]\w*)"
    r"|(?P<punct>[{}()\[\],:]))"
)
_ESCAPE = re.compile(r"\\(u\{([0-9a-fA-F]+)\}|.)")
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "'": "'"}


def _parse(text: str) -> Any:
    tokens = _tokens(text)
    value, pos = _value(tokens, 0)
    if pos != len(tokens):
        raise UnsupportedValueError("trailing data in an Automerge patch")
    return value


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip():
                near = text[pos:][:40]
                raise UnsupportedValueError(f"cannot parse Automerge patch near {near!r}")
            break
        pos = match.end()
        kind = match.lastgroup
        raw = match[kind] if kind else ""
        if kind == "str":
            out.append(("v", _unescape(raw[1:-1])))
        elif kind == "num":
            out.append(("v", float(raw) if any(c in raw for c in ".enNa") else int(raw)))
        elif raw in ("true", "false"):
            out.append(("v", raw == "true"))
        elif kind == "name":
            out.append(("n", raw))
        else:
            out.append(("p", raw))
    return out


def _unescape(body: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match[2] is not None:
            return chr(int(match[2], 16))
        return _SIMPLE_ESCAPES.get(match[1], match[1])

    return _ESCAPE.sub(one, body)


def _value(tokens: list[tuple[str, Any]], pos: int) -> tuple[Any, int]:
    kind, raw = tokens[pos]
    pos += 1
    if kind == "v":
        return raw, pos
    if kind == "n":
        following = tokens[pos][1] if pos < len(tokens) and tokens[pos][0] == "p" else None
        if following == "{":
            fields: dict[str, Any] = {}
            pos += 1
            while tokens[pos] != ("p", "}"):
                name = tokens[pos][1]
                if tokens[pos + 1] != ("p", ":"):
                    raise UnsupportedValueError("malformed struct in an Automerge patch")
                fields[name], pos = _value(tokens, pos + 2)
                if tokens[pos] == ("p", ","):
                    pos += 1
            return Named(raw, fields, None), pos + 1
        if following == "(":
            args, pos = _sequence(tokens, pos + 1, ")")
            return Named(raw, None, args), pos
        return Named(raw, None, None), pos
    if raw == "(":
        items, pos = _sequence(tokens, pos, ")")
        return tuple(items), pos
    if raw == "[":
        return _sequence(tokens, pos, "]")
    raise UnsupportedValueError(f"unexpected {raw!r} in an Automerge patch")


def _sequence(tokens: list[tuple[str, Any]], pos: int, end: str) -> tuple[list[Any], int]:
    items: list[Any] = []
    while tokens[pos] != ("p", end):
        item, pos = _value(tokens, pos)
        items.append(item)
        if tokens[pos] == ("p", ","):
            pos += 1
    return items, pos + 1
