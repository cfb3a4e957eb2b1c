"""mdb:// URIs, join requests (verbose and compact v3) and join response parsing."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mindood.crypto.pem import PEM_FOOTER, PEM_HEADER
from mindood.errors import (
    InvalidJoinRequestError,
    InvalidJoinResponseError,
    InvalidUriError,
    MindoodError,
    UnsupportedUriVersionError,
)
from mindood.tenant import TenantFactory
from mindood.tenant.joinrequest import JoinRequest
from mindood.tenant.joinresponse import JoinResponse
from mindood.tenant.uri import KNOWN_URI_TYPES, MAX_URI_LENGTH, decode_uri, encode_uri
from tests.tenant_helpers import fast_kdf, identity

_fast = pytest.fixture(autouse=True, scope="module")(fast_kdf)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _uri(uri_type: str, payload: object) -> str:
    return f"mdb://{uri_type}/{_b64url(json.dumps(payload).encode())}"


@pytest.fixture(scope="module")
def bob_request() -> JoinRequest:
    return JoinRequest.for_user(identity("bob").public, label="Bob's laptop")


# -- envelope -----------------------------------------------------------------------------------
def test_uri_round_trip_unicode_payload() -> None:
    payload = {"v": 1, "name": "Zoë 🚀", "n": [1, 2, {"x": None}]}
    uri = encode_uri("join-request", payload)
    assert uri.startswith("mdb://join-request/")
    assert "=" not in uri
    decoded = decode_uri(uri)
    assert decoded.type == "join-request"
    assert decoded.payload == payload
    assert decoded.version == 1


def test_uri_decoder_tolerates_surrounding_whitespace() -> None:
    uri = encode_uri("join-response", {"v": 3})
    assert decode_uri(f"  {uri}\n").payload == {"v": 3}


def test_every_known_type_round_trips() -> None:
    for uri_type in sorted(KNOWN_URI_TYPES):
        assert decode_uri(encode_uri(uri_type, {"v": 2})).type == uri_type


@pytest.mark.parametrize(
    "text",
    [
        "",
        "https://join-request/abc",
        "mdb://join-request",
        "mdb://join-request/",
        "mdb:///eyJ2IjoxfQ",
        "mdb://JOIN-REQUEST/eyJ2IjoxfQ",
        "mdb://unknown-type/eyJ2IjoxfQ",
        "mdb://join-request/eyJ2IjoxfQ==",  # padding is not allowed
        "mdb://join-request/eyJ2Ijox+Q",  # standard alphabet, not url-safe
        "mdb://join-request/eyJ2IjoxfR",  # non-canonical trailing bits
        "mdb://join-request/a",  # impossible length
        "mdb://join-request/" + _b64url(b"\xff\xfe"),
        "mdb://join-request/" + _b64url(b"[1,2]"),
        "mdb://join-request/" + _b64url(b'{"v":1,"v":2}'),
        "mdb://join-request/" + _b64url(b'{"v":NaN}'),
        "mdb://join-request/" + _b64url(b'{"x":1}'),
        "mdb://join-request/" + _b64url(b'{"v":0}'),
        "mdb://join-request/" + _b64url(b'{"v":true}'),
        "mdb://join-request/" + _b64url(b'{"v":1.5}'),
        "mdb://join-request/" + _b64url(b'{"v":"1"}'),
        "mdb://join-request/" + _b64url(b'{"v":1,"d":' + b"[" * 40 + b"]" * 40 + b"}"),
        "mdb://join-request/" + "A" * MAX_URI_LENGTH,
    ],
)
def test_malformed_uris_raise_invalid_uri_error(text: str) -> None:
    with pytest.raises(InvalidUriError):
        decode_uri(text)


def test_decode_checks_expected_type() -> None:
    uri = encode_uri("join-response", {"v": 3})
    with pytest.raises(InvalidUriError, match="expected an mdb://join-request"):
        decode_uri(uri, expected_type="join-request")


def test_non_string_input_is_a_typed_error() -> None:
    with pytest.raises(InvalidUriError):
        decode_uri(b"mdb://join-request/eyJ2IjoxfQ")


def test_encode_refuses_bad_payloads() -> None:
    with pytest.raises(InvalidUriError):
        encode_uri("join-request", {"no": "version"})
    with pytest.raises(InvalidUriError):
        encode_uri("nope", {"v": 1})
    with pytest.raises(InvalidUriError):
        encode_uri("join-request", {"v": 1, "big": "x" * MAX_URI_LENGTH})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text_gives_only_typed_errors(text: str) -> None:
    for candidate in (text, "mdb://join-request/" + text, "mdb://join-response/" + text):
        for parse in (decode_uri, JoinRequest.from_uri, JoinResponse.from_uri):
            with contextlib.suppress(MindoodError):
                parse(candidate)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_json, st.sampled_from([1, 2, 3, 4]))
def test_random_json_payloads_give_only_typed_errors(value: Any, version: int) -> None:
    payload = dict(value) if isinstance(value, dict) else {"x": value}
    payload.setdefault("v", version)
    for parse in (JoinRequest.from_uri, JoinResponse.from_uri):
        for uri_type in ("join-request", "join-response"):
            with contextlib.suppress(MindoodError):
                parse(_uri(uri_type, payload))
        with contextlib.suppress(MindoodError):
            (
                JoinRequest.from_object
                if parse is JoinRequest.from_uri
                else JoinResponse.from_object
            )(payload)


# -- join requests --------------------------------------------------------------------------------
def test_join_request_uri_is_compact_v3_and_rebuilds_pems_byte_exactly(
    bob_request: JoinRequest,
) -> None:
    uri = bob_request.to_uri()
    payload = decode_uri(uri).payload
    assert payload["v"] == 3
    assert set(payload) == {"v", "s", "e", "u", "l"}
    assert "BEGIN" not in payload["s"] and "\n" not in payload["e"]
    decoded = JoinRequest.from_uri(uri)
    assert decoded == bob_request
    assert decoded.signing_public_key == identity("bob").signing_public_key
    assert decoded.encryption_public_key == identity("bob").encryption_public_key


def test_compact_uri_is_much_shorter_than_verbose(bob_request: JoinRequest) -> None:
    verbose = encode_uri("join-request", bob_request.to_object())
    assert len(bob_request.to_uri()) < len(verbose)


def test_non_canonical_pem_falls_back_to_verbose_form() -> None:
    bob = identity("bob").public
    crlf = bob.encryption_public_key.replace("\n", "\r\n") + "\n"
    request = JoinRequest(bob.signing_public_key, crlf, bob.username)
    assert not request.compactable()
    payload = decode_uri(request.to_uri()).payload
    assert payload["v"] == 1
    assert payload["encryptionPublicKey"] == crlf
    assert JoinRequest.from_uri(request.to_uri()).encryption_public_key == crlf


def test_verbose_object_round_trip(bob_request: JoinRequest) -> None:
    obj = bob_request.to_object()
    assert obj["v"] == 1
    assert obj["username"] == identity("bob").username
    assert JoinRequest.from_object(obj) == bob_request
    anonymous = JoinRequest(bob_request.signing_public_key, bob_request.encryption_public_key)
    assert anonymous.to_object()["v"] == 2
    assert JoinRequest.parse(anonymous.to_uri()) == anonymous


def test_factory_create_join_request_formats() -> None:
    bob = identity("bob")
    uri = TenantFactory.create_join_request(bob, format="uri")
    assert isinstance(uri, str) and uri.startswith("mdb://join-request/")
    obj = TenantFactory.create_join_request(bob, format="object")
    assert obj["signingPublicKey"] == bob.signing_public_key
    assert JoinRequest.parse(uri) == JoinRequest.parse(obj)


def _compact(bob_request: JoinRequest, **changes: Any) -> dict[str, Any]:
    payload = bob_request.to_compact()
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"s": None}, InvalidJoinRequestError),
        ({"s": "not base64!"}, InvalidJoinRequestError),
        ({"s": "QUJD"}, InvalidJoinRequestError),  # base64 but not a key
        ({"s": "A" * 8200}, InvalidJoinRequestError),
        ({"u": "x" * 513}, InvalidJoinRequestError),
        ({"l": ""}, InvalidJoinRequestError),
        ({"u": 7}, InvalidJoinRequestError),
        ({"v": 4}, UnsupportedUriVersionError),
    ],
)
def test_invalid_compact_requests(
    bob_request: JoinRequest, changes: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        JoinRequest.from_uri(_uri("join-request", _compact(bob_request, **changes)))


def test_swapped_key_types_are_refused(bob_request: JoinRequest) -> None:
    swapped = _compact(
        bob_request, s=bob_request.to_compact()["e"], e=bob_request.to_compact()["s"]
    )
    with pytest.raises(InvalidJoinRequestError):
        JoinRequest.from_uri(_uri("join-request", swapped))


def test_version_1_needs_a_username(bob_request: JoinRequest) -> None:
    obj = bob_request.to_object()
    del obj["username"]
    with pytest.raises(InvalidJoinRequestError):
        JoinRequest.from_object(obj)
    obj["v"] = 2
    assert JoinRequest.from_object(obj).username is None


def test_request_without_username_needs_one_on_approval() -> None:
    request = JoinRequest(identity("bob").signing_public_key, identity("bob").encryption_public_key)
    with pytest.raises(InvalidJoinRequestError):
        request.public_user()
    assert request.public_user("cn=bob").username == "cn=bob"


def test_pem_header_constants_match_reference_text(bob_request: JoinRequest) -> None:
    rebuilt = JoinRequest.from_uri(bob_request.to_uri()).signing_public_key
    assert rebuilt.startswith(PEM_HEADER + "\n") and rebuilt.endswith("\n" + PEM_FOOTER)


# -- join responses -------------------------------------------------------------------------------
def _response(**changes: Any) -> dict[str, Any]:
    admin = identity("admin")
    payload: dict[str, Any] = {
        "v": 3,
        "tenantId": "acme",
        "adminSigningPublicKey": admin.signing_public_key,
        "adminEncryptionPublicKey": admin.encryption_public_key,
        "username": "cn=bob/o=acme",
        "encryptedDocKeys": [{"keyId": "$publicinfos", "versions": [{"wrappedKey": "AAAA"}]}],
    }
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def test_join_response_round_trip() -> None:
    parsed = JoinResponse.from_uri(_uri("join-response", _response(serverUrl="https://x")))
    assert parsed.version == 3 and parsed.server_url == "https://x"
    assert parsed.key_ids() == ["$publicinfos"]
    again = JoinResponse.from_uri(parsed.to_uri())
    assert again == parsed


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"v": 1}, UnsupportedUriVersionError),
        ({"tenantId": None}, InvalidJoinResponseError),
        ({"tenantId": 5}, InvalidJoinResponseError),
        ({"adminSigningPublicKey": "not a pem"}, InvalidJoinResponseError),
        ({"encryptedDocKeys": []}, InvalidJoinResponseError),
        ({"encryptedDocKeys": [{"keyId": "a", "versions": []}]}, InvalidJoinResponseError),
        (
            {"encryptedDocKeys": [{"keyId": "a", "versions": [{"wrappedKey": "!!"}]}]},
            InvalidJoinResponseError,
        ),
        (
            {"encryptedDocKeys": [{"keyId": "a", "versions": [{"wrappedKey": "AAAA"}]}] * 2},
            InvalidJoinResponseError,
        ),
        ({"v": 2}, InvalidJoinResponseError),  # v2 versions need encryptedKey objects
    ],
)
def test_invalid_join_responses(changes: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        JoinResponse.from_uri(_uri("join-response", _response(**changes)))


def test_join_request_uri_is_not_a_response(bob_request: JoinRequest) -> None:
    with pytest.raises(InvalidUriError, match="expected an mdb://join-response"):
        JoinResponse.parse(bob_request.to_uri())
