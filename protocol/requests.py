"""Every request a session carries, one frozen class per operation, with its wire form.

``to_args`` is what the requester sends; ``parse_request`` checks a peer's arguments (types,
sizes, counts) next to the class that defines them and raises ``RemoteProtocolError`` or
``RequestError`` for anything else. Results keep their shapes in ``store_ops``: both sides
build and parse them with the same helpers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from protocol.errors import ErrorCode, RequestError
from protocol.messages import DEFAULT_LIMITS, Limits, binary, integer, text
from protocol.store_ops import (
    MAX_SCAN_PAGE,
    MAX_SIGNAL_BYTES,
    SIGNAL,
    Op,
    StoreKind,
    bad_args,
    cursor_from_wire,
    cursor_to_wire,
    db_and_kind,
    entry_type,
    filters_from_wire,
    filters_to_wire,
    ids_from_wire,
    resolve_options_from_wire,
    resolve_options_to_wire,
    sealed_entries_from_wire,
)
from store.base import ResolveOptions, ScanCursor, ScanFilters
from store.entry import EntryType


def _count(rest: Sequence[Any], count: int, shape: str) -> None:
    if len(rest) != count:
        raise bad_args(f"{shape}")


@dataclass(frozen=True, slots=True)
class ListDatabases:
    """The databases the peer serves us."""

    OP: ClassVar[str] = Op.DATABASES.value

    def to_args(self) -> list[Any]:
        return []

    @classmethod
    def from_args(cls, args: Sequence[Any], limits: Limits) -> ListDatabases:
        return cls()


@dataclass(frozen=True, slots=True)
class StoreRequest:
    """Base of the requests addressed to one store (``db``/``kind``) of the peer."""

    db: str
    kind: StoreKind

    def _prefix(self) -> list[Any]:
        return [self.db, self.kind.value]


@dataclass(frozen=True, slots=True)
class _StoreOnly(StoreRequest):
    """A request that names a store and nothing else."""

    def to_args(self) -> list[Any]:
        return self._prefix()

    @classmethod
    def from_args(cls, args: Sequence[Any], limits: Limits) -> Any:
        db, kind = db_and_kind(args, limits)
        _count(args[2:], 0, "this request takes only database and kind")
        return cls(db, kind)


@dataclass(frozen=True, slots=True)
class GetHead(_StoreOnly):
    OP: ClassVar[str] = Op.HEAD.value


@dataclass(frozen=True, slots=True)
class Subscribe(_StoreOnly):
    """Follow the store: the peer sends ``StoreChanged`` whenever it grows."""

    OP: ClassVar[str] = Op.SUBSCRIBE.value


@dataclass(frozen=True, slots=True)
class GetBloom(_StoreOnly):
    OP: ClassVar[str] = Op.BLOOM.value


@dataclass(frozen=True, slots=True)
class ScanEntries(StoreRequest):
    """A page of metadata after ``cursor``; the page size is capped at ``MAX_SCAN_PAGE``."""

    OP: ClassVar[str] = Op.SCAN.value
    cursor: ScanCursor | None = None
    limit: int = MAX_SCAN_PAGE
    filters: ScanFilters | None = None

    def to_args(self) -> list[Any]:
        return [
            *self._prefix(),
            cursor_to_wire(self.cursor),
            self.limit,
            filters_to_wire(self.filters),
        ]

    @classmethod
    def from_args(cls, args: Sequence[Any], limits: Limits) -> ScanEntries:
        db, kind = db_and_kind(args, limits)
        rest = args[2:]
        _count(rest, 3, "scan takes cursor, limit, filters")
        return cls(
            db,
            kind,
            cursor_from_wire(rest[0], limits),
            min(integer(rest[1], "limit", 1, 1 << 31), MAX_SCAN_PAGE),
            filters_from_wire(rest[2], limits),
        )


@dataclass(frozen=True, slots=True)
class ScanIds(StoreRequest):
    """A page of ``(receipt_order, id)`` after ``cursor``, for a puller that only asks which
    ids it lacks. ``scanner_epoch`` is the puller's own store epoch: entries this node stored
    from the puller under that epoch are left out (the answer's cursor moves past them)."""

    OP: ClassVar[str] = Op.SCAN_IDS.value
    cursor: ScanCursor | None = None
    limit: int = MAX_SCAN_PAGE
    scanner_epoch: str | None = None

    def to_args(self) -> list[Any]:
        return [*self._prefix(), cursor_to_wire(self.cursor), self.limit, self.scanner_epoch]

    @classmethod
    def from_args(cls, args: Sequence[Any], limits: Limits) -> ScanIds:
        db, kind = db_and_kind(args, limits)
        rest = args[2:]
        _count(rest, 3, "scan_ids takes cursor, limit, scanner epoch")
        return cls(
            db,
            kind,
            cursor_from_wire(rest[0], limits),
            min(integer(rest[1], "limit", 1, 1 << 31), MAX_SCAN_PAGE),
            None if rest[2] is None else text(rest[2], "scanner epoch", limits),
        )


@dataclass(frozen=True, slots=True)
class _IdsRequest(StoreRequest):
    """A request that names a store and a list of entry ids."""

    ids: tuple[str, ...] = ()

    def to_args(self) -> list[Any]:
        return [*self._prefix(), list(self.ids)]

    @classmethod
    def from_args(cls, args: Sequence[Any], limits: Limits) -> Any:
        db, kind = db_and_kind(args, limits)
        rest = args[2:]
        _count(rest, 1, "expected a list of ids after database and kind")
        return cls(db, kind, ids_from_wire(rest[0], limits))


@dataclass(frozen=True, slots=True)
class HasEntries(_IdsRequest):
    OP: ClassVar[str] = Op.HAS.value


@dataclass(frozen=True, slots=True)
class GetMetadata(_IdsRequest):
    OP: ClassVar[str] = Op.METADATA.value


@dataclass(frozen=True, slots=True)
class GetEntries(_IdsRequest):
    """Entries by id; the answer is a prefix within the batch budget plus typed refusals."""

    OP: ClassVar[str] = Op.GET.value


@dataclass(frozen=True, slots=True)
class GetPacked(_IdsRequest):
    """``GetEntries`` whose answer packs metadata (``store_ops.EntryPacker``)."""

    OP: ClassVar[str] = Op.GET_PACKED.value


@dataclass(frozen=True, slots=True)
class PutEntries(StoreRequest):
    """Entries pushed to the peer: ``(metadata wire, sealed payload)`` pairs."""

    OP: ClassVar[str] = Op.PUT.value
    entries: tuple[tuple[Any, bytes], ...] = ()

    def to_args(self) -> list[Any]:
        return [*self._prefix(), [[meta, sealed] for meta, sealed in self.entries]]

    @classmethod
    def from_args(cls, args: Sequence[Any], limits: Limits) -> PutEntries:
        db, kind = db_and_kind(args, limits)
        rest = args[2:]
        _count(rest, 1, "put takes a list of entries after database and kind")
        return cls(db, kind, tuple(sealed_entries_from_wire(rest[0], limits)))


@dataclass(frozen=True, slots=True)
class FindForDoc(StoreRequest):
    OP: ClassVar[str] = Op.FIND_FOR_DOC.value
    doc_id: str = ""
    known: tuple[str, ...] = ()

    def to_args(self) -> list[Any]:
        return [*self._prefix(), self.doc_id, list(self.known)]

    @classmethod
    def from_args(cls, args: Sequence[Any], limits: Limits) -> FindForDoc:
        db, kind = db_and_kind(args, limits)
        rest = args[2:]
        _count(rest, 2, "find_doc takes doc id and known ids")
        return cls(db, kind, text(rest[0], "doc id", limits), ids_from_wire(rest[1], limits))


@dataclass(frozen=True, slots=True)
class FindEntries(StoreRequest):
    OP: ClassVar[str] = Op.FIND.value
    entry_type: EntryType = EntryType.DOC_CHANGE
    created_from: int | None = None
    created_until: int | None = None

    def to_args(self) -> list[Any]:
        return [*self._prefix(), str(self.entry_type), self.created_from, self.created_until]

    @classmethod
    def from_args(cls, args: Sequence[Any], limits: Limits) -> FindEntries:
        db, kind = db_and_kind(args, limits)
        rest = args[2:]
        _count(rest, 3, "find takes type, from, until")
        low = None if rest[1] is None else integer(rest[1], "from", -(1 << 63))
        high = None if rest[2] is None else integer(rest[2], "until", -(1 << 63))
        return cls(db, kind, entry_type(rest[0]), low, high)


@dataclass(frozen=True, slots=True)
class ResolveDependencies(StoreRequest):
    OP: ClassVar[str] = Op.RESOLVE.value
    start_id: str = ""
    options: ResolveOptions | None = None

    def to_args(self) -> list[Any]:
        return [*self._prefix(), self.start_id, resolve_options_to_wire(self.options)]

    @classmethod
    def from_args(cls, args: Sequence[Any], limits: Limits) -> ResolveDependencies:
        db, kind = db_and_kind(args, limits)
        rest = args[2:]
        _count(rest, 2, "resolve takes start id and options")
        return cls(db, kind, text(rest[0], "start id", limits), resolve_options_from_wire(rest[1]))


@dataclass(frozen=True, slots=True)
class RelaySignal:
    """Ask the peer to pass ``payload`` to the peer ``target`` (WebRTC rendezvous)."""

    OP: ClassVar[str] = SIGNAL
    target: str
    payload: bytes

    def to_args(self) -> list[Any]:
        return [self.target, self.payload]

    @classmethod
    def from_args(cls, args: Sequence[Any], limits: Limits) -> RelaySignal:
        if len(args) != 2:
            raise RequestError(ErrorCode.BAD_ARGUMENTS, "signal takes [target identity, payload]")
        return cls(
            text(args[0], "signal target", limits), binary(args[1], "signal", MAX_SIGNAL_BYTES)
        )


SessionRequest = (
    ListDatabases
    | GetHead
    | Subscribe
    | GetBloom
    | ScanEntries
    | ScanIds
    | HasEntries
    | GetMetadata
    | GetEntries
    | GetPacked
    | PutEntries
    | FindForDoc
    | FindEntries
    | ResolveDependencies
    | RelaySignal
)

_BY_OP: dict[str, Any] = {
    cls.OP: cls
    for cls in (
        ListDatabases,
        GetHead,
        Subscribe,
        GetBloom,
        ScanEntries,
        ScanIds,
        HasEntries,
        GetMetadata,
        GetEntries,
        GetPacked,
        PutEntries,
        FindForDoc,
        FindEntries,
        ResolveDependencies,
        RelaySignal,
    )
}


def parse_request(
    operation: str, args: Sequence[Any], limits: Limits = DEFAULT_LIMITS
) -> SessionRequest:
    """The typed request a peer sent; an unknown operation fails that request alone."""
    cls = _BY_OP.get(operation)
    if cls is None:
        raise RequestError(ErrorCode.UNKNOWN_OPERATION, f"unknown operation {operation[:64]!r}")
    request: SessionRequest = cls.from_args(args, limits)
    return request
