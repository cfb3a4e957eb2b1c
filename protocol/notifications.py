"""Unsolicited messages a peer sends within a session, one frozen class per topic.

``parse_notification`` returns ``None`` for a topic this node does not know (a newer peer may
send more), and raises ``RemoteProtocolError`` for a known topic with malformed arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from protocol.errors import ErrorCode, RemoteProtocolError
from protocol.messages import DEFAULT_LIMITS, Limits, Notify, binary, integer, text
from protocol.store_ops import CHANGED, MAX_SIGNAL_BYTES, SIGNAL, StoreKind


@dataclass(frozen=True, slots=True)
class StoreChanged:
    """A store the receiver follows (or could adopt) grew; ``epoch``/``head`` may be absent."""

    TOPIC: ClassVar[str] = CHANGED
    db: str
    kind: StoreKind = StoreKind.DOCS
    epoch: str = ""
    max_receipt_order: int = 0

    def to_args(self) -> list[Any]:
        return [self.db, self.kind.value, self.epoch, self.max_receipt_order]

    @classmethod
    def from_args(cls, args: tuple[Any, ...], limits: Limits) -> StoreChanged:
        if not 1 <= len(args) <= 4:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "changed takes [db, kind, epoch, head]")
        db = text(args[0], "changed db", limits)
        try:
            kind = StoreKind(text(args[1], "changed kind", limits)) if len(args) > 1 else None
        except ValueError as exc:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "changed names no store kind") from exc
        epoch = text(args[2], "changed epoch", limits) if len(args) > 2 else ""
        head = integer(args[3], "changed head") if len(args) > 3 else 0
        return cls(db, kind or StoreKind.DOCS, epoch, head)


@dataclass(frozen=True, slots=True)
class SignalDelivered:
    """A signal another peer sent us through this one (WebRTC offers and answers)."""

    TOPIC: ClassVar[str] = SIGNAL
    sender: str
    payload: bytes

    def to_args(self) -> list[Any]:
        return [self.sender, self.payload]

    @classmethod
    def from_args(cls, args: tuple[Any, ...], limits: Limits) -> SignalDelivered:
        if len(args) != 2:
            raise RemoteProtocolError(ErrorCode.MALFORMED, "signal takes [sender, payload]")
        return cls(
            text(args[0], "signal sender", limits), binary(args[1], "signal", MAX_SIGNAL_BYTES)
        )


Notification = StoreChanged | SignalDelivered

_BY_TOPIC: dict[str, Any] = {cls.TOPIC: cls for cls in (StoreChanged, SignalDelivered)}


def parse_notification(notify: Notify, limits: Limits = DEFAULT_LIMITS) -> Notification | None:
    cls = _BY_TOPIC.get(notify.topic)
    if cls is None:
        return None
    parsed: Notification = cls.from_args(notify.args, limits)
    return parsed
