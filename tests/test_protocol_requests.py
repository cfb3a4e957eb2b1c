"""Typed requests and notifications: what one side builds the other parses back, nothing else."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from protocol.errors import ErrorCode, ProtocolError, RemoteProtocolError, RequestError
from protocol.messages import Notify
from protocol.notifications import SignalDelivered, StoreChanged, parse_notification
from protocol.requests import (
    FindEntries,
    FindForDoc,
    GetBloom,
    GetEntries,
    GetHead,
    GetMetadata,
    GetPacked,
    HasEntries,
    ListDatabases,
    PutEntries,
    RelaySignal,
    ResolveDependencies,
    ScanEntries,
    ScanIds,
    SessionRequest,
    Subscribe,
    parse_request,
)
from protocol.store_ops import StoreKind
from store.base import ResolveOptions, ScanCursor, ScanFilters
from store.entry import EntryType

DOCS = StoreKind.DOCS

EVERY_REQUEST: list[SessionRequest] = [
    ListDatabases(),
    GetHead("todos", DOCS),
    Subscribe("todos", StoreKind.ATTACHMENTS),
    GetBloom("todos", DOCS),
    ScanEntries("todos", DOCS, ScanCursor(7, "x"), 500, ScanFilters(doc_id="d")),
    ScanIds("todos", DOCS, ScanCursor(7, "x"), 500, "epoch-1"),
    ScanIds("todos", DOCS, None, 1, None),
    HasEntries("todos", DOCS, ("a", "b")),
    GetMetadata("todos", DOCS, ("a",)),
    GetEntries("todos", DOCS, ("a", "b", "c")),
    GetPacked("todos", DOCS, ("a", "b")),
    PutEntries("todos", DOCS, ((["meta"], b"sealed"),)),
    FindForDoc("todos", DOCS, "doc-1", ("a",)),
    FindEntries("todos", DOCS, EntryType.DOC_CREATE, 1, 2),
    ResolveDependencies("todos", DOCS, "a", ResolveOptions(EntryType.DOC_SNAPSHOT, 3, True)),
    RelaySignal("target-key", b"offer"),
]


@pytest.mark.parametrize("request_", EVERY_REQUEST, ids=lambda r: type(r).__name__)
def test_every_request_survives_the_wire(request_: SessionRequest) -> None:
    args = msgpack.unpackb(msgpack.packb(request_.to_args(), use_bin_type=True), raw=False)
    assert parse_request(request_.OP, args) == request_


@pytest.mark.parametrize(
    ("operation", "args", "error"),
    [
        ("nope", [], RequestError),
        ("head", ["todos"], RemoteProtocolError),
        ("head", ["todos", "docs", "extra"], RemoteProtocolError),
        ("head", ["todos", "pictures"], RemoteProtocolError),
        ("has", ["todos", "docs", "not a list"], RemoteProtocolError),
        ("scan", ["todos", "docs", None, 0, None], RemoteProtocolError),
        ("scan_ids", ["todos", "docs", None, 10], RemoteProtocolError),
        ("scan_ids", ["todos", "docs", None, 10, 7], RemoteProtocolError),
        ("getp", ["todos", "docs", "a"], RemoteProtocolError),
        ("find", ["todos", "docs", "no_such_type", None, None], RemoteProtocolError),
        ("signal", ["target", b"x" * (64 * 1024 + 1)], RemoteProtocolError),
    ],
)
def test_malformed_requests_are_refused_with_a_typed_error(
    operation: str, args: list[Any], error: type[ProtocolError]
) -> None:
    with pytest.raises(error):
        parse_request(operation, args)


def test_a_scan_page_is_capped_whatever_the_peer_asks() -> None:
    parsed = parse_request("scan", ["todos", "docs", None, 1 << 30, None])
    assert isinstance(parsed, ScanEntries) and parsed.limit == 1000


def test_notifications_parse_to_their_class_and_unknown_topics_are_ignored() -> None:
    changed = StoreChanged("todos", DOCS, "epoch-1", 42)
    assert parse_notification(Notify(changed.TOPIC, tuple(changed.to_args()))) == changed
    assert parse_notification(Notify("changed", ("todos",))) == StoreChanged("todos")
    signal = SignalDelivered("sender", b"answer")
    assert parse_notification(Notify(signal.TOPIC, tuple(signal.to_args()))) == signal
    assert parse_notification(Notify("from-a-newer-peer", (1, 2))) is None
    with pytest.raises(RemoteProtocolError) as refused:
        parse_notification(Notify("changed", (1, "docs")))
    assert refused.value.code is ErrorCode.MALFORMED
