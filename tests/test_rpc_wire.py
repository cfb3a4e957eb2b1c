"""msgpack-RPC message validation and bounded decoding."""

from __future__ import annotations

import datetime as dt

import msgpack
import pytest

from mindood.errors import (
    CorruptDocumentError,
    DocumentNotFoundError,
    MindoodError,
    QuarantinedEntryError,
    WrongPasswordError,
    WrongSharePasswordError,
)
from mindood.rpc.errors import (
    ALREADY_EXISTS,
    CORRUPT,
    NOT_FOUND,
    SERVER_ERROR,
    STORE_FAILED,
    TENANT_LOCKED,
    UNAVAILABLE,
    WRONG_PASSWORD,
    CorruptDataRpcError,
    NotFoundError,
    RpcError,
    StoreFailedRpcError,
    TenantLockedError,
    code_for,
    error_from_wire,
    error_to_wire,
)
from mindood.rpc.wire import (
    BadMessageError,
    FrameLimits,
    Notification,
    Request,
    Response,
    make_unpacker,
    notification_frame,
    pack,
    parse_message,
    request_frame,
    response_frame,
)
from store.errors import (
    CorruptEntryError,
    StoreClosedError,
    StoreCorruptionError,
    StoreError,
    StoreFullError,
    StoreUnavailableError,
)


def test_the_three_message_shapes_round_trip() -> None:
    unpacker = make_unpacker(FrameLimits())
    unpacker.feed(request_frame(7, "doc.get", {"tenant": "acme"}))
    unpacker.feed(request_frame(8, "ping", None))
    unpacker.feed(notification_frame("doc.changed", {"doc_ids": ["a"]}))
    unpacker.feed(response_frame(7, None, {"ok": True}))
    messages = [parse_message(obj) for obj in unpacker]
    assert messages == [
        Request(7, "doc.get", {"tenant": "acme"}),
        Request(8, "ping", {}),
        Notification("doc.changed", {"doc_ids": ["a"]}),
        Response(7, None, {"ok": True}),
    ]


@pytest.mark.parametrize(
    ("obj", "msgid"),
    [
        (None, None),
        ([], None),
        ([0, 1, "m"], 1),
        ([0, "1", "m", []], None),
        ([0, 2**32, "m", []], None),
        ([0, 1, b"m", []], 1),
        ([0, 1, "m", {}], 1),
        ([0, 1, "m", [{}, {}]], 1),
        ([2, "m"], None),
        ([1, None, None, None], None),
        ([3, 1, "m", []], None),
        ([False, 1, "m", []], None),
    ],
)
def test_invalid_messages_say_what_is_wrong(obj: object, msgid: int | None) -> None:
    with pytest.raises(BadMessageError) as info:
        parse_message(obj)
    assert info.value.msgid == msgid
    assert info.value.to_wire()["code"] == -32600


def test_limits_bound_strings_and_buffers() -> None:
    limits = FrameLimits(max_frame_bytes=1024, max_str_bytes=100, max_array_len=10)
    unpacker = make_unpacker(limits)
    unpacker.feed(msgpack.packb("x" * 200))
    with pytest.raises(ValueError):
        next(unpacker)
    unpacker = make_unpacker(limits)
    unpacker.feed(msgpack.packb(list(range(20))))
    with pytest.raises(ValueError):
        next(unpacker)
    unpacker = make_unpacker(limits)
    with pytest.raises(msgpack.BufferFull):
        unpacker.feed(b"\x00" * 2048)


def test_timestamps_and_binary_survive() -> None:
    when = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    unpacker = make_unpacker(FrameLimits())
    unpacker.feed(pack([2, "x", [{"when": when, "blob": b"\x00\xff"}]]))
    assert next(unpacker) == [2, "x", [{"when": when, "blob": b"\x00\xff"}]]


def test_error_table_maps_library_errors() -> None:
    assert code_for(WrongSharePasswordError("x")) == WRONG_PASSWORD
    assert code_for(WrongPasswordError("x")) == WRONG_PASSWORD
    assert code_for(DocumentNotFoundError("x")) == NOT_FOUND
    assert code_for(MindoodError("x")) == SERVER_ERROR
    assert code_for(TenantLockedError("x")) == TENANT_LOCKED
    wire = error_to_wire(DocumentNotFoundError("no doc"))
    assert wire == {"code": NOT_FOUND, "message": "no doc", "type": "DocumentNotFoundError"}
    back = error_from_wire(wire)
    assert isinstance(back, NotFoundError) and back.kind == "DocumentNotFoundError"
    assert back.code == NOT_FOUND and str(back) == "no doc"


@pytest.mark.parametrize(
    ("error", "code", "cls"),
    [
        (
            StoreUnavailableError("store path /x is not a directory"),
            STORE_FAILED,
            StoreFailedRpcError,
        ),
        (StoreFullError("disk full"), STORE_FAILED, StoreFailedRpcError),
        (StoreCorruptionError("database damaged"), STORE_FAILED, StoreFailedRpcError),
        (StoreError("writers kept the summary from settling"), STORE_FAILED, StoreFailedRpcError),
        (CorruptEntryError("payload does not match"), CORRUPT, CorruptDataRpcError),
        (QuarantinedEntryError("entry e1 was quarantined", ["e1"]), CORRUPT, CorruptDataRpcError),
        (CorruptDocumentError("bad history"), CORRUPT, CorruptDataRpcError),
    ],
)
def test_store_damage_has_its_own_codes_with_the_message(
    error: Exception, code: int, cls: type[RpcError]
) -> None:
    assert isinstance(error, MindoodError | StoreError)
    wire = error_to_wire(error)
    assert wire == {"code": code, "message": str(error), "type": type(error).__name__}
    back = error_from_wire(wire)
    assert type(back) is cls and back.kind == type(error).__name__ and str(back) == str(error)


def test_a_closed_store_is_unavailable_not_failed() -> None:
    assert code_for(StoreClosedError("store x is closed")) == UNAVAILABLE


def test_client_side_error_parsing_is_tolerant() -> None:
    unknown = error_from_wire({"code": -31999, "message": "new", "type": "Future"})
    assert type(unknown) is RpcError and unknown.code == -31999
    assert error_from_wire({"code": ALREADY_EXISTS, "message": "x"}).code == ALREADY_EXISTS
    assert error_from_wire("text").code == SERVER_ERROR
    assert error_from_wire({"code": True}).code == SERVER_ERROR
    long = error_to_wire(RpcError("m" * 5000))
    assert len(long["message"]) == 1000
