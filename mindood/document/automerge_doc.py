"""``AutomergeDoc``: one MindooDB document's Automerge state, and the only door to the binding.

MindooDB stores every Automerge change as one encrypted, signed entry, so this class deals in
whole changes: ``change`` produces exactly one (or none), ``apply_changes`` takes change chunks
from entries and proves they all landed. Everything that is awkward or dangerous in
``automerge==1.0.0rc1`` is handled here or in the helper modules, so callers never touch
``automerge.core``:

* there is no ``apply_changes``: chunks travel in a hand-built sync message, which is silent about
  failures, so the resulting change set is checked against the expected hashes;
* ``Document.load`` picks a random actor: the actor is always set explicitly;
* if a change callback raises, the binding rolls the transaction back (measured, including list,
  text and nested-object writes); the heads are checked anyway and, should a future binding commit
  instead, the document is rebuilt from the heads before the change;
* the binding can neither write nor read native counters (see ``values``): a change that creates
  one is re-encoded after the commit and the document rebuilt with the re-encoded change (a fork
  at the heads before it, so that costs a copy of the document), and documents whose history has
  a counter are read with a ``CounterIndex`` built from ``diff`` patches, kept for the current
  heads and carried forward (by the change's own bookkeeping after a local change, by the
  patches of just the new changes after ``apply_changes``/``merge``); their past states are
  read from a fork, as the binding's ``keys``/``length`` at past heads miss counters.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from automerge.core import ROOT, Document, ObjType, ScalarType, SyncState

from mindood.document import walk
from mindood.document.chunks import (
    CHUNK_CHANGE,
    CHUNK_COMPRESSED_CHANGE,
    MAGIC,
    change_hash,
    chunk_type,
    hash_bytes,
    hashes_bytes,
    sync_message,
)
from mindood.document.columns import changes_hold_counters, holds_counters, mark_counters
from mindood.document.counters import CounterIndex, read_counters
from mindood.document.proxy import MapProxy, Session
from mindood.errors import (
    ChangeApplyError,
    ChangeFormatError,
    DocumentError,
    DocumentLoadError,
    UnknownHeadsError,
)

#: Hash of the convergent first change of documents with a caller-chosen id (see below).
CUSTOM_ID_INITIAL_CHANGE_HASH = "b55efb45769e62bff921fd6f4fbb325a446d788ded077ec2a625c32e7631a190"
_CUSTOM_ID_ACTOR = bytes.fromhex("00000000000000c0")
#: The scalar types that read as a plain ``int``.
_INTS = (ScalarType.Int, ScalarType.Uint)
#: The type bytes of change chunks (uncompressed and compressed).
_CHANGE_KINDS = (bytes((CHUNK_CHANGE,)), bytes((CHUNK_COMPRESSED_CHANGE,)))


@dataclass(frozen=True)
class ChangeResult:
    """One Automerge change as MindooDB stores it: hex hash, hex deps, uncompressed chunk bytes."""

    hash: str
    deps: list[str]
    actor: str
    seq: int
    bytes: builtins.bytes


def _result(change: Any) -> ChangeResult:
    """The binding's change as a ``ChangeResult`` (the binding gives ``bytes`` and ``int``)."""
    return ChangeResult(
        change.hash.hex(),
        sorted([d.hex() for d in change.deps]),
        change.actor_id.hex(),
        change.seq,
        change.raw_bytes,
    )


def custom_id_initial_change() -> bytes:
    """The 57-byte first change shared by every replica of a custom-id document.

    Built, not hard-coded: actor ``00000000000000c0``, timestamp 0, no deps, one op
    ``_attachments = []``. Every replica creating "the same" document produces this identical
    change, so their histories share a root. The result is checked against the reference hash.
    """
    doc = Document(_CUSTOM_ID_ACTOR)
    with doc.transaction() as tx:
        tx.put_object(ROOT, "_attachments", ObjType.List)
    (change,) = doc.get_changes([])
    if bytes(change.hash).hex() != CUSTOM_ID_INITIAL_CHANGE_HASH:
        raise DocumentError("this Automerge binding does not reproduce the custom-id first change")
    return bytes(change.raw_bytes)


class AutomergeDoc:
    """A mutable Automerge document with change-at-a-time semantics."""

    __slots__ = ("_counters", "_doc", "_index", "_known", "_tx")

    def __init__(self, doc: Document, counters: bool | None = None) -> None:
        """Wrap a binding document; prefer ``new``, ``load`` and ``from_changes``."""
        self._doc = doc
        #: Every change hash in the document, built on first need, then kept up to date.
        self._known: set[bytes] | None = None
        #: The open transaction while a change callback runs (None else): the binding refuses
        #: most calls then, and reads of past states go through it.
        self._tx: Any = None
        #: Whether any op in the history puts a counter (None: not known yet, see
        #: ``_holds_counters``). Without any, reads need no ``CounterIndex``.
        self._counters = counters
        #: The counters of the current state and the heads they are for.
        self._index: tuple[list[bytes], CounterIndex] | None = None

    def _core(self) -> Document:
        """The binding document, unless a change is running (then every other call is an error:
        the callback must work through its proxy, and the binding would fail half-way anyway)."""
        if self._tx is not None:
            raise DocumentError("the document is inside a change; use the change's proxy")
        return self._doc

    # ----- construction -------------------------------------------------------------------------

    @classmethod
    def new(cls, actor: bytes) -> AutomergeDoc:
        return cls(Document(_actor(actor)), counters=False)

    @classmethod
    def load(cls, saved: bytes, actor: bytes) -> AutomergeDoc:
        """Load ``save()`` output (or concatenated changes in causal order)."""
        actor = _actor(actor)
        try:
            doc = Document.load(bytes(saved))
        except Exception as exc:
            raise DocumentLoadError(f"Automerge document did not load: {exc}") from exc
        doc.set_actor(actor)
        try:
            counters: bool | None = holds_counters(bytes(saved))
        except ChangeFormatError:  # loadable, but not laid out as expected: find out later
            counters = None
        return cls(doc, counters)

    @classmethod
    def from_changes(
        cls,
        chunks: Sequence[bytes],
        actor: bytes,
        expected_hashes: Iterable[bytes | str] | None = None,
    ) -> AutomergeDoc:
        """A document built from change chunks in any order (see ``apply_changes``)."""
        doc = cls.new(actor)
        doc.apply_changes(chunks, expected_hashes)
        return doc

    @classmethod
    def from_ordered_changes(
        cls, chunks: Sequence[bytes], actor: bytes, expected_hashes: Sequence[bytes | str]
    ) -> AutomergeDoc:
        """A document from change chunks in causal order (parents first), one hash each.

        The cold-read path: one ``Document.load`` of the concatenated chunks, about 1.5 times
        faster than a sync message for small documents, then the same proof as
        ``apply_changes`` that every expected change is in. Anything out of the ordinary (not a
        change chunk, a load error, a change that did not land) goes through ``from_changes``,
        which applies in any order and says precisely what is wrong.
        """
        if not chunks or len(chunks) != len(expected_hashes):
            return cls.from_changes(chunks, actor, expected_hashes)
        for chunk in chunks:
            if chunk[:4] != MAGIC or chunk[8:9] not in _CHANGE_KINDS:
                return cls.from_changes(chunks, actor, expected_hashes)
        try:
            doc = Document.load(b"".join(chunks))
        except Exception:  # the slow path reports it properly
            return cls.from_changes(chunks, actor, expected_hashes)
        landed = {c.hash for c in doc.get_changes([])}
        if len(landed) != len(chunks) or not landed.issuperset(_fast_hashes(expected_hashes)):
            return cls.from_changes(chunks, actor, expected_hashes)
        doc.set_actor(_actor(actor))
        try:
            counters: bool | None = changes_hold_counters(chunks)
        except ChangeFormatError:  # loadable, but not laid out as expected: find out later
            counters = None
        loaded = cls(doc, counters)
        loaded._known = landed  # the whole change set, already in hand: no write rebuilds it
        return loaded

    def fork(
        self, heads: Sequence[bytes | str] | None = None, actor: bytes | None = None
    ) -> AutomergeDoc:
        """An independent copy, optionally as of past ``heads``.

        Give a new ``actor`` when the fork will be edited: two documents writing with one actor
        produce clashing changes.
        """
        core = self._core()
        if heads is None:
            doc = core.fork()
        else:
            wanted = self._known_heads(heads)
            try:
                doc = core.fork(wanted)
            except Exception as exc:
                raise UnknownHeadsError(f"cannot fork at these heads: {exc}") from exc
        doc.set_actor(_actor(actor) if actor is not None else core.get_actor())
        return AutomergeDoc(doc, self._counters)

    # ----- state --------------------------------------------------------------------------------

    @property
    def actor(self) -> bytes:
        return bytes(self._core().get_actor())

    def save(self) -> bytes:
        return bytes(self._core().save())

    def heads(self) -> list[bytes]:
        """Current heads, sorted (Automerge sorts them by hash)."""
        return [bytes(h) for h in self._core().get_heads()]

    def heads_hex(self) -> list[str]:
        return [h.hex() for h in self.heads()]

    def has_change(self, change: bytes | str) -> bool:
        """Whether the change with this hash is part of the document."""
        return hash_bytes(change) in self._known_hashes()

    def changes_since(self, heads: Sequence[bytes | str] = ()) -> list[ChangeResult]:
        """Changes not reachable from ``heads`` (all of them for no heads), in causal order."""
        have = self._known_heads(heads)
        return [_result(c) for c in self._core().get_changes(have)]

    def to_python(self, heads: Sequence[bytes | str] | None = None) -> dict[str, Any]:
        """The whole document as plain values, now or as of ``heads``.

        Maps become ``dict``, lists ``list``, text ``Text`` (a ``str``), counters ``Counter`` (an
        ``int``), bytes ``bytes``, timestamps aware UTC ``datetime``: it compares equal to the
        plain data that was stored.
        """
        if heads is None and not self._holds_counters():
            return walk.read_current(self._core())
        at = None if heads is None else self._known_heads(heads)
        if at is not None and self._holds_counters():
            # the binding's keys/length at past heads leave out counters that were incremented
            # later (measured): read a fork at those heads as its current state instead
            return self.fork(at).to_python()
        data = walk.read_object(self._core(), ObjType.Map, ROOT, at, self._counter_index())
        assert isinstance(data, dict)
        return data

    def root_value(self, key: str) -> Any:
        """``to_python().get(key)`` of the current state, reading only that field.

        Every write needs the document's attachment list; reading the whole document for it
        cost more than the rest of a small change.
        """
        core = self._core()
        counters = self._counter_index()
        found = walk.get(core, ROOT, key, None, counters)
        if found is None:
            return None
        return walk.read_value(core, found[0], found[1], None, counters)

    def read_later(self) -> Callable[[], dict[str, Any]] | None:
        """A function answering, whenever it is called, what ``to_python()`` answers now, even
        after later changes and while one is open; None where that costs more than reading now.

        Making it costs one ``get_heads``: the function reads at those heads when called (the
        results of writes read their data this way, most of them never). A history with
        counters gets None: its past states are read from a fork, which an open change refuses.
        """
        if self._holds_counters():
            return None
        return partial(self._read_at, self._core().get_heads())

    def _read_at(self, heads: list[bytes]) -> dict[str, Any]:
        """``to_python(heads)`` for heads of this document's own (``read_later``), even inside
        a change: through its transaction then, which reads past states as the document does."""
        if self._tx is None:
            if self._counters is not False:  # a later change made a counter
                return self.to_python(heads)
            if self._doc.get_heads() == heads:
                return walk.read_current(self._doc)
            reader = self._doc
        else:
            reader = self._tx
        data = walk.read_object(reader, ObjType.Map, ROOT, heads, None)
        assert isinstance(data, dict)
        return data

    def _holds_counters(self) -> bool:
        if self._counters is None:
            self._counters = holds_counters(self.save())
        return self._counters

    def _counter_index(self) -> CounterIndex | None:
        """The counters of the current state, or None when the history has none."""
        if not self._holds_counters():
            return None
        heads = self._core().get_heads()
        if self._index is None or self._index[0] != heads:
            self._index = (heads, read_counters(self._doc, heads))
        return self._index[1]

    def _advance_index(self, before: list[bytes]) -> None:
        """Bring an index cached for ``before`` up to the current heads with only the patches
        in between (else it is rebuilt from scratch on the next read)."""
        if self._index is not None and self._index[0] == before and self._counters:
            heads = self._doc.get_heads()
            self._index = (heads, read_counters(self._doc, heads, before, self._index[1]))

    # ----- writing ------------------------------------------------------------------------------

    def change(self, fn: Callable[[MapProxy], object]) -> ChangeResult | None:
        """Run ``fn`` on the live root map inside one transaction; return the change it made.

        Returns None when ``fn`` changed nothing (writing a value equal to the current one is no
        change either). If ``fn`` raises, nothing is committed, the exception propagates, and the
        document is as before and usable.
        """
        pending = self.begin_change()
        try:
            fn(pending.root)
        except BaseException:
            pending.rollback()
            raise
        return pending.commit()

    def begin_change(self) -> PendingChange:
        """Open one transaction to be committed or rolled back later.

        For callers whose edits span ``await`` points (async ``change_doc`` callbacks): the
        document stays locked for other edits until ``commit()`` or ``rollback()``.
        """
        if self._tx is not None:
            raise DocumentError("another change of this document is still open")
        index = self._counter_index()
        counters = CounterIndex() if index is None else index.copy()
        core = self._core()
        before = core.get_heads()
        tx = core.transaction()
        tx.__enter__()
        self._tx = tx
        return PendingChange(self, tx, Session(tx, counters, empty=not before), before)

    def _finish_change(
        self,
        tx: Any,
        session: Session,
        before: list[bytes],
        *,
        commit: bool,
        stamp: tuple[str, int] | None = None,
        stamp_op: bool = False,
    ) -> ChangeResult | None:
        """``stamp_op``: the stamp's put makes an op (Automerge drops a put of the value a key
        already holds), so a change of one op is the stamp alone."""
        session.close()
        try:
            if commit:
                if stamp is not None:
                    session.note(ROOT, stamp[0])
                    tx.put(ROOT, stamp[0], ScalarType.Int, stamp[1])
                tx.__exit__(None, None, None)
            else:
                rollback = DocumentError("change rolled back")
                tx.__exit__(type(rollback), rollback, None)
        finally:
            self._tx = None
        if not commit:
            if self._doc.get_heads() != before:
                self._rebuild_at(before)
            return None
        changes = self._doc.get_changes(before)
        if not changes:
            return None
        if len(changes) != 1:
            raise DocumentError(f"one change expected, the transaction produced {len(changes)}")
        if stamp_op and int(changes[0].max_op) == int(changes[0].start_op):
            self._rebuild_at(before)  # nothing but the stamp: the edit changed nothing
            return None
        change = _result(changes[0])
        if session.fresh_ops:
            change = self._with_counters(change, session.fresh_ops, before)
        if self._counters:  # the session kept its index current through every write
            self._index = (self._doc.get_heads(), session.counters.copy(settled=True))
        if self._known is not None:
            self._known.add(bytes.fromhex(change.hash))
        return change

    def _with_counters(
        self, change: ChangeResult, ops: list[int], before: list[bytes]
    ) -> ChangeResult:
        """Replace the just-committed ``change`` by its re-encoding with ``ops`` as counters."""
        chunk = mark_counters(change.bytes, ops)
        new_hash = change_hash(chunk)
        actor = self._doc.get_actor()
        doc = self._doc.fork(before)
        doc.set_actor(actor)
        doc.receive_sync_message(SyncState(), sync_message([chunk]))
        if [bytes(h).hex() for h in doc.get_heads()] != [new_hash]:
            raise DocumentError("the change re-encoded with its counters did not apply")
        self._doc = doc
        self._counters = True
        return ChangeResult(new_hash, change.deps, change.actor, change.seq, chunk)

    def _rebuild_at(self, heads: list[bytes]) -> None:
        """Drop whatever a failed transaction committed, keeping the actor and the history."""
        actor = self._doc.get_actor()
        self._doc = self._doc.fork(heads)
        self._doc.set_actor(actor)
        self._known = None

    def apply_changes(
        self,
        chunks: Sequence[bytes],
        expected_hashes: Iterable[bytes | str] | None = None,
    ) -> list[str]:
        """Apply change chunks (any order, duplicates fine) and prove they are all in the doc.

        ``expected_hashes`` defaults to the hashes computed from the (uncompressed) chunks. Raises
        ``ChangeFormatError`` for a malformed chunk (before applying anything) and
        ``ChangeApplyError`` listing the hashes still missing afterwards, typically because a
        dependency is absent. Changes that did apply stay; a held-back change stays queued inside
        Automerge and lands by itself once its dependencies arrive. Returns the hex hashes of the
        changes that are new to the document, in causal order.
        """
        chunks = [bytes(c) for c in chunks]
        for chunk in chunks:
            if chunk_type(chunk) not in (CHUNK_CHANGE, CHUNK_COMPRESSED_CHANGE):
                raise ChangeFormatError("apply_changes takes change chunks, not whole documents")
        if expected_hashes is None:
            expected = [bytes.fromhex(change_hash(c)) for c in chunks]
        else:
            expected = hashes_bytes(expected_hashes)
        core = self._core()
        before = core.get_heads()
        if self._counters is False and holds_counters(b"".join(chunks)):
            self._counters = True
        if chunks:
            message = sync_message(chunks)
            try:
                core.receive_sync_message(SyncState(), message)
            except Exception as exc:
                raise ChangeApplyError(f"Automerge rejected the changes: {exc}") from exc
        new = [bytes(c.hash) for c in core.get_changes(before)]
        if self._known is not None:
            self._known.update(new)
        if new:
            self._advance_index(before)
        landed = set(new)
        missing = [h.hex() for h in expected if h not in landed and not self.has_change(h)]
        if missing:
            raise ChangeApplyError(
                f"{len(missing)} change(s) did not apply (missing dependencies or bad data)",
                missing,
            )
        return [h.hex() for h in new]

    def merge(self, other: AutomergeDoc) -> list[str]:
        """Bring in every change of ``other``; returns the hex hashes new to this document."""
        core = self._core()
        before = core.get_heads()
        if self._counters is False and other._holds_counters():
            self._counters = True
        core.merge(other._core())
        new = [bytes(c.hash) for c in core.get_changes(before)]
        if self._known is not None:
            self._known.update(new)
        if new:
            self._advance_index(before)
        return [h.hex() for h in new]

    # ----- helpers ------------------------------------------------------------------------------

    def _known_hashes(self) -> set[bytes]:
        """All change hashes; built once with one full ``get_changes`` (the binding reports
        unknown heads by silently reading an empty document, so it cannot answer this itself)."""
        if self._known is None:
            self._known = {bytes(c.hash) for c in self._core().get_changes([])}
        return self._known

    def _known_heads(self, heads: Sequence[bytes | str]) -> list[bytes]:
        wanted = hashes_bytes(heads)
        unknown = [h.hex() for h in wanted if h not in self._known_hashes()]
        if unknown:
            raise UnknownHeadsError(f"heads not in this document: {', '.join(unknown)}")
        return wanted


def _fast_hashes(values: Sequence[bytes | str]) -> list[bytes]:
    """``hashes_bytes`` for the usual hex strings without its per-item checks; whatever
    ``bytes.fromhex`` cannot take goes through ``hashes_bytes`` (and its errors). A hash of the
    wrong length matches no change, so the caller takes the path that reports it."""
    try:
        return [bytes.fromhex(v) for v in values]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return hashes_bytes(values)


def _actor(actor: bytes) -> bytes:
    """Actor ids are non-empty bytes; Automerge writes them into every change."""
    if not isinstance(actor, bytes | bytearray) or not actor:
        raise DocumentError("an actor id must be non-empty bytes")
    return bytes(actor)


class PendingChange:
    """An open transaction of an ``AutomergeDoc``: edit ``root``, then commit or roll back once."""

    def __init__(self, doc: AutomergeDoc, tx: Any, session: Session, before: list[bytes]) -> None:
        self._doc = doc
        self._tx = tx
        self._session = session
        self._before = before
        self._open = True
        self.root = MapProxy(session, ROOT)

    def commit(self, *, stamp: tuple[str, int] | None = None) -> ChangeResult | None:
        """Commit and return the one change made, or None if nothing changed.

        ``stamp`` ``(key, int)`` is put at the root as part of the change if, and only if,
        the change has anything else in it (the reference's ``_lastModified`` on every edit).
        """
        stamp_op = False
        if stamp is not None:
            # As ``self.root.get(key)`` compared with an int, without making the value: only an
            # Int (or Uint) scalar of that value reads as an equal int.
            session = self._session
            tx = session.tx()
            found = None
            if not session.absent(ROOT, stamp[0]):
                found = walk.get(tx, ROOT, stamp[0], None, session.counters)
            stamp_op = not (
                found is not None
                and not isinstance(found[0], ObjType)
                and found[0][0] in _INTS
                and found[0][1] == stamp[1]
            )
        return self._finish(commit=True, stamp=stamp, stamp_op=stamp_op)

    def may_have_changed(self, key: str) -> bool:
        """Whether the root field ``key`` may differ after this change (``Session``)."""
        return self._session.may_have_changed(key)

    def rollback(self) -> None:
        """Discard every edit made through ``root``; the document is as before."""
        self._finish(commit=False)

    def _finish(
        self, *, commit: bool, stamp: tuple[str, int] | None = None, stamp_op: bool = False
    ) -> ChangeResult | None:
        if not self._open:
            raise DocumentError("this change was already committed or rolled back")
        self._open = False
        return self._doc._finish_change(
            self._tx, self._session, self._before, commit=commit, stamp=stamp, stamp_op=stamp_op
        )
