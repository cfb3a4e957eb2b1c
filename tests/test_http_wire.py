"""The HTTP API's shared shapes: entry JSON, framing, reader wraps, requests, errors, SSE."""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.http import wire
from protocol.http.wire import ErrorKind, HttpError
from store.base import ResolveOptions, ScanCursor, ScanFilters, ScanPage, StoreHead
from store.bloom import BloomSummary
from store.entry import EntryType
from store.signing import verify_signature
from tests.entries import Author

_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@pytest.fixture(scope="module")
def reader() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def _unwrap(key: rsa.RSAPrivateKey) -> wire.Unwrap:
    return lambda blob: key.decrypt(blob, _OAEP)


def test_entry_json_round_trip_keeps_signatures_valid() -> None:
    author = Author()
    entry = author.entry()
    back = wire.entry_from_json(json.loads(json.dumps(wire.entry_to_json(entry))))
    assert back == entry
    verify_signature(back.metadata, back.encrypted_data)


def test_session_batch_round_trip_json_and_binary(reader: rsa.RSAPrivateKey) -> None:
    author = Author()
    entries = [author.entry(), author.entry(payload=b"x" * 5000)]
    batch = wire.seal_session_batch(entries, _pem(reader))
    assert len(batch.wrapped_session_key) == 384
    assert batch.entries[0].iv != batch.entries[1].iv
    as_json = json.loads(json.dumps(wire.session_batch_to_json(batch)))
    assert set(as_json) == {"wrappedSessionKey", "entries"}
    assert {"iv", "sessionEncryptedPayload", "id", "signature"} <= set(as_json["entries"][0])
    assert (
        wire.open_session_batch(wire.session_batch_from_json(as_json), _unwrap(reader)) == entries
    )
    binary = wire.encode_get_entries_binary(batch)
    (header_len,) = struct.unpack_from(">I", binary)
    header = json.loads(binary[4 : 4 + header_len])
    assert header["format"] == "mdb-entries-v2"
    decoded = wire.decode_get_entries_binary(binary)
    assert wire.open_session_batch(decoded, _unwrap(reader)) == entries


def test_session_batch_for_another_reader_fails(reader: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    batch = wire.seal_session_batch([Author().entry()], _pem(reader))
    with pytest.raises(HttpError):
        wire.open_session_batch(batch, _unwrap(other))


def test_legacy_hybrid_round_trip(reader: rsa.RSAPrivateKey) -> None:
    entries = [Author().entry()]
    body = json.loads(json.dumps(wire.legacy_entries_to_json(entries, _pem(reader))))
    assert "rsaEncryptedPayload" in body["entries"][0]
    blob = wire.unb64(body["entries"][0]["rsaEncryptedPayload"], "x", 10_000)
    assert struct.unpack_from(">H", blob)[0] == 384
    assert wire.legacy_entries_from_json(body, _unwrap(reader)) == entries


def test_put_binary_round_trip_and_malformed_entries_cost_only_themselves() -> None:
    author = Author()
    entries = (author.entry(), author.entry())
    request = wire.PutEntriesRequest("main", entries)
    data = request.to_binary("acme")
    back = wire.PutEntriesRequest.from_binary(data)
    assert back.db_id == "main" and back.entries == entries and not back.malformed
    body = request.to_json()
    body["entries"].append({"id": "broken_d_0_x", "entryType": "nonsense"})
    parsed = wire.PutEntriesRequest.from_json(body)
    assert parsed.entries == entries
    assert [r.id for r in parsed.malformed] == ["broken_d_0_x"]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00\x00\x10{}",
        struct.pack(">I", 2) + b"{}" + struct.pack(">I", 100) + b"{}",
        struct.pack(">I", 2) + b"[]",
        struct.pack(">I", 3) + b"{x}",
    ],
)
def test_binary_decoder_refuses_truncated_or_bad_frames(data: bytes) -> None:
    with pytest.raises(HttpError) as info:
        wire.decode_binary(data)
    assert info.value.status == 400


def test_binary_put_refuses_other_formats() -> None:
    data = wire.encode_binary({"format": "mdb-entries-v2", "dbId": "main"}, [])
    with pytest.raises(HttpError, match="Unsupported binary entry format"):
        wire.PutEntriesRequest.from_binary(data)


def test_binary_frame_count_is_capped() -> None:
    frames = [({"id": f"x{i}"}, b"") for i in range(4)]
    data = wire.encode_binary({"format": "mdb-put-v2", "dbId": "main"}, frames)
    with pytest.raises(HttpError, match="at most 3"):
        wire.decode_binary(data, max_frames=3)


def test_error_statuses_follow_the_reference() -> None:
    expected = {
        ErrorKind.INVALID_TOKEN: 401,
        ErrorKind.USER_REVOKED: 403,
        ErrorKind.USER_NOT_FOUND: 404,
        ErrorKind.INVALID_SIGNATURE: 403,
        ErrorKind.CHALLENGE_EXPIRED: 401,
        ErrorKind.ACCESS_DENIED: 403,
        ErrorKind.VALIDATION: 400,
        ErrorKind.PAYLOAD_TOO_LARGE: 413,
        ErrorKind.SERVER_ERROR: 500,
    }
    assert {k: wire.status_for(k) for k in expected} == expected
    assert HttpError(ErrorKind.ACCESS_DENIED, "no").to_json() == {"error": "no"}
    assert wire.error_from_response(401, {"error": "x"}).kind is ErrorKind.INVALID_TOKEN
    assert wire.error_from_response(413, None).kind is ErrorKind.PAYLOAD_TOO_LARGE
    assert wire.error_from_response(502, "junk").kind is ErrorKind.SERVER_ERROR


def test_request_parsing_checks_ids_and_limits() -> None:
    with pytest.raises(HttpError, match="dbId"):
        wire.IdsRequest.from_json({"dbId": "../etc", "ids": []})
    with pytest.raises(HttpError, match="at most 100000"):
        wire.IdsRequest.from_json({"dbId": "main", "ids": ["a"] * 100_001})
    with pytest.raises(HttpError, match="at most 100000"):
        wire.FindNewEntriesRequest.from_json({"dbId": "main", "haveIds": ["a"] * 100_001})
    with pytest.raises(HttpError, match="at most 10000"):
        wire.PutEntriesRequest.from_json({"dbId": "main", "entries": [{}] * 10_001})
    with pytest.raises(HttpError, match="docId is required"):
        wire.FindNewEntriesForDocRequest.from_json({"dbId": "main", "haveIds": []})
    with pytest.raises(HttpError, match="startId is required"):
        wire.ResolveDependenciesRequest.from_json({"dbId": "main"})
    with pytest.raises(HttpError):
        wire.ChallengeRequest.from_json({})
    with pytest.raises(HttpError, match="challenge and signature"):
        wire.AuthenticateRequest.from_json({"challenge": "x"})
    assert wire.IdsRequest.from_json({"dbId": "main"}).ids == ()
    assert wire.GetEntriesRequest.from_json({"dbId": "main", "ids": []}).session_key_wrap is False


def test_scan_request_clamps_limit_and_parses_filters() -> None:
    body = {
        "dbId": "directory",
        "cursor": {"receiptOrder": 7, "id": "abc"},
        "limit": 50_000,
        "filters": {"docId": "d1", "entryTypes": ["doc_create"], "creationDateFrom": 5},
    }
    request = wire.ScanEntriesRequest.from_json(body)
    assert request.cursor == ScanCursor(7, "abc")
    assert request.limit == 1000
    assert request.filters == ScanFilters("d1", frozenset({EntryType.DOC_CREATE}), 5, None)
    assert wire.ScanEntriesRequest.from_json({"dbId": "d", "cursor": None}).limit == 1000
    assert wire.ScanEntriesRequest.from_json({"dbId": "d", "limit": 0}).limit == 1
    again = wire.ScanEntriesRequest.from_json(json.loads(json.dumps(request.to_json())))
    assert again == request


def test_responses_round_trip() -> None:
    author = Author()
    metas = tuple(author.entry().metadata.with_receipt_order(i + 1) for i in range(3))
    page = ScanPage(metas, ScanCursor(3, metas[-1].id), True)
    assert wire.scan_page_from_json(_j(wire.scan_page_to_json(page))) == page
    assert wire.head_from_json(_j(wire.head_to_json(StoreHead("e", 9)))) == StoreHead("e", 9)
    bloom = BloomSummary.of_ids(["a", "b"])
    assert wire.bloom_from_json(_j(wire.bloom_to_json(bloom))) == bloom
    assert wire.ids_from_json(_j(wire.ids_to_json(["x"]))) == ["x"]
    assert wire.entry_metadata_from_json(_j(wire.entry_metadata_to_json(None))) is None
    assert wire.entries_from_json(_j(wire.entries_to_json(metas))) == list(metas)
    put = wire.PutEntriesResponse(metas[:1], (wire.Rejection("x", "why"),))
    body = _j(put.to_json())
    assert body["success"] is True and body["rejected"] == [{"id": "x", "reason": "why"}]
    assert wire.PutEntriesResponse.from_json(body) == put
    options = ResolveOptions(EntryType.DOC_SNAPSHOT, 4, False)
    request = wire.ResolveDependenciesRequest("main", "s", options)
    assert wire.ResolveDependenciesRequest.from_json(_j(request.to_json())) == request


def test_capabilities_and_server_info() -> None:
    caps = wire.Capabilities(server_time=123)
    body = _j(caps.to_json())["capabilities"]
    assert body["protocolVersion"] == "sync-v5"
    assert body["supportsSessionKeyWrap"] is True and body["supportsChangeEvents"] is True
    assert body["supportsMaterializationPlanning"] is False
    assert wire.Capabilities.from_json({"capabilities": body}) == caps
    assert wire.Capabilities.from_json({"capabilities": body}).protocol_number == 5
    assert wire.Capabilities.fallback().protocol_version == "sync-v1"
    info = wire.ServerInfo("n", "sig", "enc")
    assert wire.ServerInfo.from_json(_j(info.to_json())) == info


def test_sse_events_split_on_bare_blank_lines() -> None:
    change = wire.ChangeEvent("main", "docs", "ep", 4)
    stream = wire.sse_hello() + wire.sse_heartbeat(1) + wire.sse_change(change)
    assert b"\r" not in stream
    parser = wire.SseParser()
    events = []
    for i in range(len(stream)):  # byte by byte
        events += parser.feed(stream[i : i + 1])
    assert [e.event for e in events] == ["hello", "change"]
    assert json.loads(events[0].data) == {"protocolVersion": "sync-v5"}
    assert wire.ChangeEvent.from_data(events[1].data) == change
    assert wire.ChangeEvent.from_data('{"dbId": 3}') is None


def test_sse_parser_caps_a_partial_event() -> None:
    parser = wire.SseParser(max_event_bytes=100)
    with pytest.raises(HttpError):
        parser.feed(b"data: " + b"x" * 200)


def _j(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "dbId": st.one_of(st.just("main"), _JSON),
        "ids": _JSON,
        "haveIds": _JSON,
        "docId": _JSON,
        "cursor": st.one_of(st.fixed_dictionaries({"receiptOrder": _JSON, "id": _JSON}), _JSON),
        "limit": _JSON,
        "filters": _JSON,
        "entries": st.lists(_JSON, max_size=3),
        "startId": _JSON,
        "options": _JSON,
        "type": _JSON,
        "username": _JSON,
        "signingPublicKey": _JSON,
        "challenge": _JSON,
        "signature": _JSON,
        "sessionKeyWrap": _JSON,
        "id": _JSON,
    },
)
_PARSERS = (
    wire.ChallengeRequest.from_json,
    wire.AuthenticateRequest.from_json,
    wire.DbRequest.from_json,
    wire.FindNewEntriesRequest.from_json,
    wire.FindNewEntriesForDocRequest.from_json,
    wire.FindEntriesRequest.from_json,
    wire.ScanEntriesRequest.from_json,
    wire.IdsRequest.from_json,
    wire.GetEntriesRequest.from_json,
    wire.GetEntryMetadataRequest.from_json,
    wire.PutEntriesRequest.from_json,
    wire.ResolveDependenciesRequest.from_json,
    wire.PutEntriesResponse.from_json,
    wire.Capabilities.from_json,
    wire.scan_page_from_json,
    wire.session_batch_from_json,
)


@settings(max_examples=300, deadline=None)
@given(body=st.one_of(_FIELDS, _JSON))
def test_request_parsers_raise_only_http_errors(body: Any) -> None:
    for parse in _PARSERS:
        with contextlib.suppress(HttpError):
            parse(body)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_binary_decoder_raises_only_http_errors(data: bytes) -> None:
    for decode in (
        wire.decode_binary,
        wire.decode_get_entries_binary,
        wire.PutEntriesRequest.from_binary,
    ):
        with contextlib.suppress(HttpError):
            decode(data)
