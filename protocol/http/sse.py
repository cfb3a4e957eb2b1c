"""Server-sent change events as the reference sends and reads them (§3.1, §3.8).

Events end with a bare ``\\n\\n`` and lines with ``\\n``: the reference client splits on
exactly that and never delivers a CRLF event; it ignores ``change`` data without a string
``dbId``. A heartbeat comment every 30 s keeps proxies from closing the stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from protocol.http.checks import MAX_ID_LENGTH, PROTOCOL_VERSION, ErrorKind, HttpError

#: Seconds between heartbeat comments, as the reference server.
HEARTBEAT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """``event: change``: a store grew (metadata only, never content)."""

    db_id: str
    store_kind: str
    epoch: str | None
    max_receipt_order: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "dbId": self.db_id,
            "storeKind": self.store_kind,
            "epoch": self.epoch,
            "maxReceiptOrder": self.max_receipt_order,
        }

    @classmethod
    def from_data(cls, data: str) -> ChangeEvent | None:
        """Parse a change event's data; ``None`` for what the reference client ignores."""
        try:
            obj = json.loads(data)
        except ValueError:
            return None
        if not isinstance(obj, dict) or not isinstance(obj.get("dbId"), str):
            return None
        epoch, order = obj.get("epoch"), obj.get("maxReceiptOrder")
        return cls(
            obj["dbId"][:MAX_ID_LENGTH],
            str(obj.get("storeKind") or "")[:32],
            epoch if isinstance(epoch, str) else None,
            order if isinstance(order, int) and not isinstance(order, bool) else None,
        )


def sse_event(event: str, data: Mapping[str, Any]) -> bytes:
    """One event, ended by a bare ``\\n\\n`` (the reference client never sees CRLF events)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def sse_hello() -> bytes:
    return sse_event("hello", {"protocolVersion": PROTOCOL_VERSION})


def sse_change(change: ChangeEvent) -> bytes:
    return sse_event("change", change.to_json())


def sse_heartbeat(now_ms: int) -> bytes:
    return f": heartbeat {now_ms}\n\n".encode()


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str


class SseParser:
    """Splits a byte stream into events on bare ``\\n\\n``; comments are dropped.

    A partial event larger than ``max_event_bytes`` means a broken or hostile server.
    """

    def __init__(self, max_event_bytes: int = 64 * 1024) -> None:
        self._buffer = b""
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        out: list[SseEvent] = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                break
            raw, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            event = self._parse(raw.decode("utf-8", "replace"))
            if event is not None:
                out.append(event)
        if len(self._buffer) > self._max:
            raise HttpError(ErrorKind.NETWORK_ERROR, "event stream sent an oversized event")
        return out

    @staticmethod
    def _parse(block: str) -> SseEvent | None:
        name, data = "message", []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
        if not data and name == "message":
            return None
        return SseEvent(name, "\n".join(data))
