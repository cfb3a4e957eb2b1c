"""Just enough of Automerge's columnar binary format to write and to find native counters.

The binding panics on ``put`` with ``ScalarType.Counter``, so a counter is written as an ``Int``
and the committed change is re-encoded with the value type of those ops switched from "signed
LEB128 int" (code 4) to "counter" (code 8): both store the value as signed LEB128, so only the
value-metadata column changes (and with it the checksum and the hash). ``holds_counters`` scans
changes and saved documents for counter ops, so documents without any are read by the fast path.

Format facts used here (Automerge binary format, columnar encoding):

* chunk: magic ``856f4a83``, 4 checksum bytes (``sha256(chunk[8:])[:4]``), type, uLEB128 length,
  body; type 0 is a document, 1 a change, 2 a change whose body is raw-deflated;
* change body: deps (count, 32-byte hashes), actor, seq, start op, time (sLEB128), message,
  other actors, then the column metadata (count, then spec and length per column), the column
  data in that order, and extra bytes; operation *n* of the change has the op id
  ``start_op + n``;
* document body: actors, heads, change column metadata, op column metadata, then the data;
* column spec ``id << 4 | deflate << 3 | type``: the value metadata is ``0x56`` and the action
  column ``0x42``, both run-length encoded unsigned LEB128: a signed count ``n`` followed by one
  value repeated ``n`` times (``n > 0``), by ``-n`` literal values (``n < 0``), or by a count of
  nulls (``n == 0``); each value-metadata entry is ``byte length << 4 | type code``.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Iterator

from mindood.document.chunks import (
    CHUNK_CHANGE,
    CHUNK_COMPRESSED_CHANGE,
    CHUNK_DOCUMENT,
    MAGIC,
)
from mindood.document.chunks import decode_uleb128 as read_uleb
from mindood.document.chunks import encode_uleb128 as uleb
from mindood.errors import ChangeFormatError

#: Column specs (type bits with the deflate bit cleared).
COLUMN_ACTION = 0x42
COLUMN_VALUE_META = 0x56
_DEFLATE = 0x08

#: Value types in the value-metadata column, and the change action that sets a value.
VALUE_INT = 4
VALUE_COUNTER = 8
ACTION_SET = 1

_HASH_SIZE = 32


# ----- integers -----------------------------------------------------------------------------------


def read_sleb(data: bytes, pos: int) -> tuple[int, int]:
    """The signed LEB128 at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ChangeFormatError("truncated or oversized LEB128 in an Automerge chunk")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, pos


def sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if (value == 0 and not low & 0x40) or (value == -1 and low & 0x40):
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


# ----- run-length encoded unsigned integers -------------------------------------------------------


def rle_decode(data: bytes) -> list[int | None]:
    """Every value of an RLE column of unsigned LEB128 integers (nulls as None)."""
    out: list[int | None] = []
    pos = 0
    while pos < len(data):
        count, pos = read_sleb(data, pos)
        if count > 0:
            value, pos = read_uleb(data, pos)
            out.extend([value] * count)
        elif count < 0:
            for _ in range(-count):
                value, pos = read_uleb(data, pos)
                out.append(value)
        else:
            nulls, pos = read_uleb(data, pos)
            out.extend([None] * nulls)
    return out


def rle_encode(values: Iterable[int | None]) -> bytes:
    """The canonical RLE of ``values``, byte for byte as Automerge writes it.

    It must be canonical: Automerge rebuilds changes from its op store (after ``save``/``load``)
    and hashes what it rebuilt, so any other valid encoding would change the change's hash.
    Equal neighbours form repeat runs, nulls null runs, everything else literal runs.
    """
    out = bytearray()
    literal: list[int] = []

    def flush_literal() -> None:
        if literal:
            out.extend(sleb(-len(literal)))
            for item in literal:
                out.extend(uleb(item))
            literal.clear()

    for value, count in _runs(values):
        if value is None:
            flush_literal()
            out.extend(sleb(0) + uleb(count))
        elif count == 1:
            literal.append(value)
        else:
            flush_literal()
            out.extend(sleb(count) + uleb(value))
    flush_literal()
    return bytes(out)


def _runs(values: Iterable[int | None]) -> Iterator[tuple[int | None, int]]:
    current: int | None = None
    count = 0
    for value in values:
        if count and value == current:
            count += 1
            continue
        if count:
            yield current, count
        current, count = value, 1
    if count:
        yield current, count


# ----- chunks -------------------------------------------------------------------------------------


def iter_chunks(data: bytes) -> Iterator[tuple[int, bytes]]:
    """``(type, body)`` of each chunk in ``data`` (a save, a change, or several concatenated);
    compressed change bodies come back inflated."""
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != MAGIC or len(data) < pos + 10:
            raise ChangeFormatError("not an Automerge chunk (bad magic or too short)")
        kind = data[pos + 8]
        length, start = read_uleb(data, pos + 9)
        body = data[start : start + length]
        if len(body) != length:
            raise ChangeFormatError("Automerge chunk length does not match its header")
        if kind == CHUNK_COMPRESSED_CHANGE:
            try:
                body = zlib.decompress(body, wbits=-15)
            except zlib.error as exc:
                raise ChangeFormatError(f"compressed Automerge change is corrupt: {exc}") from exc
            kind = CHUNK_CHANGE
        yield kind, body
        pos = start + length


def _skip_bytes_list(body: bytes, pos: int) -> int:
    """Skip a count of length-prefixed byte strings (actor lists)."""
    count, pos = read_uleb(body, pos)
    for _ in range(count):
        size, pos = read_uleb(body, pos)
        pos += size
    return pos


def _read_columns(body: bytes, pos: int) -> tuple[list[tuple[int, int]], int]:
    count, pos = read_uleb(body, pos)
    columns = []
    end = len(body)
    for _ in range(count):
        # Specs and sizes of small changes fit one byte each: read those inline (this runs for
        # every change of every document read), the general decoder takes the rest.
        if pos + 1 < end and body[pos] < 0x80 and body[pos + 1] < 0x80:
            columns.append((body[pos], body[pos + 1]))
            pos += 2
            continue
        spec, pos = read_uleb(body, pos)
        size, pos = read_uleb(body, pos)
        columns.append((spec, size))
    return columns, pos


class ChangeLayout:
    """A change body split into its header, its columns and its extra bytes."""

    __slots__ = ("columns", "extra", "header", "start_op")

    def __init__(self, body: bytes) -> None:
        pos = 0
        deps, pos = read_uleb(body, pos)
        pos += deps * _HASH_SIZE
        actor, pos = read_uleb(body, pos)
        pos += actor
        _seq, pos = read_uleb(body, pos)
        self.start_op, pos = read_uleb(body, pos)
        _time, pos = read_sleb(body, pos)
        message, pos = read_uleb(body, pos)
        pos += message
        pos = _skip_bytes_list(body, pos)
        self.header = body[:pos]
        specs, pos = _read_columns(body, pos)
        #: ``[spec, data]`` in the order of the chunk.
        self.columns: list[tuple[int, bytes]] = []
        for spec, size in specs:
            self.columns.append((spec, body[pos : pos + size]))
            pos += size
        if pos > len(body):
            raise ChangeFormatError("Automerge change columns run past the chunk")
        self.extra = body[pos:]

    def column(self, spec: int) -> bytes:
        """The data of one column (empty when absent: Automerge omits empty columns)."""
        for have, data in self.columns:
            if have & ~_DEFLATE == spec:
                return zlib.decompress(data, wbits=-15) if have & _DEFLATE else data
        return b""

    def replace(self, spec: int, data: bytes) -> None:
        for index, (have, _) in enumerate(self.columns):
            if have == spec:
                self.columns[index] = (spec, data)
                return
        raise ChangeFormatError(f"the change has no column {spec:#x} to replace")

    def chunk(self) -> bytes:
        """The change chunk of this layout, with its checksum."""
        body = bytearray(self.header)
        body += uleb(len(self.columns))
        for spec, data in self.columns:
            body += uleb(spec) + uleb(len(data))
        for _, data in self.columns:
            body += data
        body += self.extra
        tail = bytes((CHUNK_CHANGE,)) + uleb(len(body)) + bytes(body)
        return MAGIC + hashlib.sha256(tail).digest()[:4] + tail


def mark_counters(chunk: bytes, op_counters: Iterable[int]) -> bytes:
    """The change ``chunk`` with the ``Int`` values put by these ops turned into counters.

    ``op_counters`` are the counter parts of op ids of this change. Every one must be a put of an
    ``Int``: anything else means the caller lost track, which is an error, not a silent skip.
    """
    ((kind, body),) = list(iter_chunks(chunk))
    if kind != CHUNK_CHANGE:
        raise ChangeFormatError("only change chunks can be re-encoded")
    layout = ChangeLayout(body)
    actions = rle_decode(layout.column(COLUMN_ACTION))
    meta = rle_decode(layout.column(COLUMN_VALUE_META))
    for op in set(op_counters):
        index = op - layout.start_op
        if not 0 <= index < len(meta) or index >= len(actions):
            raise ChangeFormatError(f"op {op} is not part of this change")
        value = meta[index]
        if actions[index] != ACTION_SET or value is None or value & 0x0F != VALUE_INT:
            raise ChangeFormatError(f"op {op} of this change does not put an Int")
        meta[index] = value & ~0x0F | VALUE_COUNTER
    layout.replace(COLUMN_VALUE_META, rle_encode(meta))
    return layout.chunk()


def holds_counters(data: bytes) -> bool:
    """Whether any op in these chunks (saved document and/or changes) puts a counter.

    Every cold read asks this of every change, so a column with no byte that could start a
    counter's value-metadata entry is ruled out without decoding it (see ``_COUNTER_FREE``).
    """
    for kind, body in iter_chunks(data):
        if kind == CHUNK_CHANGE:
            meta = _change_value_meta(body)
        elif kind == CHUNK_DOCUMENT:
            meta = _document_value_meta(body)
        else:
            raise ChangeFormatError(f"unknown Automerge chunk type {kind}")
        if meta.translate(None, _COUNTER_FREE) and _any_counter(meta):
            return True
    return False


def changes_hold_counters(chunks: Iterable[bytes]) -> bool:
    """``holds_counters`` of the concatenated ``chunks``, taken one by one.

    The cold-read path holds its changes as separate chunks: each uncompressed change is
    looked at in place (no joined copy, no generator); anything else goes through
    ``holds_counters``, which raises the same errors for it.
    """
    for chunk in chunks:
        if len(chunk) < 10 or chunk[8] != CHUNK_CHANGE or chunk[:4] != MAGIC:
            if holds_counters(chunk):
                return True
            continue
        length, start = (chunk[9], 10) if chunk[9] < 0x80 else read_uleb(chunk, 9)
        if start + length != len(chunk):
            raise ChangeFormatError("Automerge chunk length does not match its header")
        meta = _change_value_meta(chunk, start)
        if meta.translate(None, _COUNTER_FREE) and _any_counter(meta):
            return True
    return False


def _any_counter(meta: bytes) -> bool:
    """Whether an RLE value-metadata column has a counter entry (``rle_decode`` without the
    list: a repeat run is one value, a null run none)."""
    pos = 0
    end = len(meta)
    while pos < end:
        count, pos = read_sleb(meta, pos)
        if count < 0:
            for _ in range(-count):
                value, pos = read_uleb(meta, pos)
                if value & 0x0F == VALUE_COUNTER:
                    return True
        else:
            value, pos = read_uleb(meta, pos)
            if count and value & 0x0F == VALUE_COUNTER:
                return True
    return False


#: Bytes that cannot be the first byte of a counter's value-metadata entry: that entry is the
#: uLEB128 of ``length << 4 | 8``, whose first byte has 8 in its low four bits. Deleting these
#: from a column leaves nothing when no entry can be a counter.
_COUNTER_FREE = bytes(b for b in range(256) if b & 0x0F != VALUE_COUNTER)


def _change_value_meta(body: bytes, start: int = 0) -> bytes:
    """The value-metadata column of the change body that starts at ``start`` and runs to the
    end of ``body`` (``ChangeLayout`` without the copies).

    Every cold read asks this of every change: the header's one-byte integers are read inline,
    and when every column spec and size is one byte (any change of less than 128 bytes per
    column) the columns are found with byte-string operations instead of a loop.
    """
    try:
        deps = body[start]
        pos = start + 1 + deps * _HASH_SIZE if deps < 0x80 else _skip(body, start, _HASH_SIZE)
        actor = body[pos]
        pos = pos + 1 + actor if actor < 0x80 else _skip(body, pos, 1)
        # seq, start op and time: their values do not matter here, only where they end
        while body[pos] & 0x80:
            pos += 1
        while body[pos + 1] & 0x80:
            pos += 1
        while body[pos + 2] & 0x80:
            pos += 1
        pos += 3
        message = body[pos]
        pos = pos + 1 + message if message < 0x80 else _skip(body, pos, 1)
        pos = pos + 1 if body[pos] == 0 else _skip_bytes_list(body, pos)  # other actors
        count = body[pos]
    except IndexError:
        raise ChangeFormatError("truncated Automerge change header") from None
    if count >= 0x80:
        return _value_meta_in_columns(body, pos)
    pos += 1
    pairs = body[pos : pos + 2 * count]
    if len(pairs) != 2 * count or not pairs.isascii():
        return _value_meta_in_columns(body, pos - 1)
    specs, sizes = pairs[0::2], pairs[1::2]
    pos += 2 * count
    if pos + sum(sizes) > len(body):
        raise ChangeFormatError("Automerge change columns run past the chunk")
    plain, deflated = specs.find(COLUMN_VALUE_META), specs.find(COLUMN_VALUE_META | _DEFLATE)
    index = plain if deflated < 0 or 0 <= plain < deflated else deflated
    if index < 0:
        return b""
    start = pos + sum(sizes[:index])
    data = body[start : start + sizes[index]]
    return zlib.decompress(data, wbits=-15) if index == deflated else data


def _skip(body: bytes, pos: int, unit: int) -> int:
    """The position after a uLEB128 count at ``pos`` and that many ``unit``-byte items."""
    count, pos = read_uleb(body, pos)
    return pos + count * unit


def _value_meta_in_columns(body: bytes, pos: int) -> bytes:
    """``_change_value_meta`` from the column count at ``pos`` on, for any column layout."""
    count, pos = read_uleb(body, pos)
    end = len(body)
    offset = 0  # of the column being read, from the start of the column data
    found: tuple[int, int, int] | None = None
    for _ in range(count):
        spec, pos = read_uleb(body, pos)
        size, pos = read_uleb(body, pos)
        if found is None and spec & ~_DEFLATE == COLUMN_VALUE_META:
            found = (offset, size, spec)
        offset += size
    if pos + offset > end:
        raise ChangeFormatError("Automerge change columns run past the chunk")
    if found is None:
        return b""
    start, size, spec = pos + found[0], found[1], found[2]
    data = body[start : start + size]
    return zlib.decompress(data, wbits=-15) if spec & _DEFLATE else data


def _document_value_meta(body: bytes) -> bytes:
    pos = _skip_bytes_list(body, 0)
    heads, pos = read_uleb(body, pos)
    pos += heads * _HASH_SIZE
    change_columns, pos = _read_columns(body, pos)
    op_columns, pos = _read_columns(body, pos)
    pos += sum(size for _, size in change_columns)
    for spec, size in op_columns:
        if spec & ~_DEFLATE == COLUMN_VALUE_META:
            data = body[pos : pos + size]
            return zlib.decompress(data, wbits=-15) if spec & _DEFLATE else data
        pos += size
    return b""
