"""mDNS records: what a member can read, what a stranger sees, what the parser refuses."""

from __future__ import annotations

import os

import pytest

from transports.mdns import (
    DiscoveryError,
    Membership,
    build_txt,
    open_membership,
    parse_txt,
    resolve_interfaces,
    seal_membership,
)

KEY, OTHER = os.urandom(32), os.urandom(32)
NODE = bytes(range(16))


def test_a_member_recovers_the_node_id_and_a_stranger_gets_nothing() -> None:
    nonce = os.urandom(16)
    sealed = seal_membership(KEY, nonce, NODE)
    assert open_membership(KEY, nonce, sealed) == NODE
    assert open_membership(OTHER, nonce, sealed) is None
    tampered = bytes([sealed[0] ^ 1]) + sealed[1:]
    assert open_membership(KEY, nonce, tampered) is None


def test_records_change_with_every_advertisement_and_name_no_tenant() -> None:
    member = Membership("acme", KEY, NODE)
    first, second = build_txt([member]), build_txt([member])
    assert first[b"k0"] != second[b"k0"] and first[b"n"] != second[b"n"]
    blob = b"".join(first.keys()) + b"".join(first.values())
    assert b"acme" not in blob and NODE.hex().encode() not in blob
    parsed = parse_txt(first)
    assert parsed is not None
    nonce, sealed = parsed
    assert [open_membership(KEY, nonce, s) for s in sealed] == [NODE]


@pytest.mark.parametrize(
    "properties",
    [
        None,
        [],
        {b"v": b"2", b"n": b"00" * 16},
        {b"v": b"1"},
        {b"v": b"1", b"n": b"zz"},
        {b"v": b"1", b"n": b"00" * 8},
        {b"v": b"1", b"n": b"00" * 16, b"k0": b"x" * 500},
        {f"x{i}".encode(): b"" for i in range(40)},
        {"v": "1"},
    ],
)
def test_malformed_records_are_ignored(properties: object) -> None:
    assert parse_txt(properties) is None


def test_interfaces_must_exist() -> None:
    assert resolve_interfaces(["127.0.0.1"]) == ["127.0.0.1"]
    assert resolve_interfaces(["lo"]) == ["127.0.0.1"]
    with pytest.raises(DiscoveryError):
        resolve_interfaces(["no-such-if0"])
