"""Username hashes (v1, v2, v3), DN variants and id-component encoding (reference §6.3, §6.4)."""

from __future__ import annotations

import hashlib
import unicodedata

import pytest

from mindood.errors import InvalidNameError
from mindood.tenant.hashing import (
    dn_variants,
    encode_id_component,
    identity_hashes,
    is_raw_hash,
    normalize_name,
    username_hash,
    username_hash_candidates,
    username_hash_v1,
    username_hash_v2,
)


def _full_width(ascii_text: str) -> str:
    """The full-width form of printable ASCII (U+FF01..U+FF5E), which NFKC folds back."""
    return "".join(chr(ord(c) + 0xFEE0) for c in ascii_text)


FULL_WIDTH_ALICE = _full_width("CN=Alice")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Known answers, written out so a change to the hashing is caught even if the helper above drifts.
KAT = [
    (
        "acme",
        "cn=alice/o=acme",
        "b875914f433b8f557d839b9db27f6f280e24d3c4abccbd307371c1b653b04e5a",
    ),
]


@pytest.mark.parametrize(("tenant", "name", "expected"), KAT)
def test_v3_known_answers(tenant: str, name: str, expected: str) -> None:
    assert username_hash(tenant, name) == expected
    assert _sha(f"{tenant}/{name}") == expected


@pytest.mark.parametrize(
    "name",
    ["CN=Alice/O=Acme", "cn=alice/o=acme", FULL_WIDTH_ALICE + "/O=Acme", "Zoë", "Zoe\u0308", "ß"],
)
def test_v3_is_sha256_of_tenant_slash_lower_nfkc(name: str) -> None:
    expected = _sha("acme/" + unicodedata.normalize("NFKC", name).lower())
    assert username_hash("acme", name) == expected


def test_v1_and_v2_skip_normalisation() -> None:
    name = FULL_WIDTH_ALICE
    assert username_hash_v1(name) == _sha(name.lower())
    assert username_hash_v2("acme", name) == _sha("acme/" + name.lower())
    assert username_hash_v2("acme", name) != username_hash("acme", name)


def test_full_width_and_case_variants_hash_alike_in_v3() -> None:
    assert username_hash("acme", FULL_WIDTH_ALICE) == username_hash("acme", "cn=alice")
    assert username_hash("acme", "CN=ALICE") == username_hash("acme", "cn=alice")
    assert username_hash("other", "cn=alice") != username_hash("acme", "cn=alice")


def test_candidates_cover_all_versions_and_raw_hashes() -> None:
    name = "CN=Bob/O=Acme"
    candidates = username_hash_candidates("acme", name)
    assert candidates == {
        username_hash_v1(name),
        username_hash_v2("acme", name),
        username_hash("acme", name),
    }
    raw = username_hash("acme", name)
    assert is_raw_hash(raw)
    assert raw in username_hash_candidates("acme", raw)
    assert not is_raw_hash(raw.upper())


def test_dn_variants_follow_the_reference_example() -> None:
    assert dn_variants("CN=A/OU=B/O=C") == ["CN=A/OU=B/O=C", "*/OU=B/O=C", "*/O=C", "*"]
    assert dn_variants("alice") == ["alice", "*"]


def test_identity_hashes_hold_every_version_of_every_variant() -> None:
    hashes = identity_hashes("acme", "CN=A/O=C")
    for variant in ("CN=A/O=C", "*/O=C", "*"):
        assert username_hash_v1(variant) in hashes
        assert username_hash_v2("acme", variant) in hashes
        assert username_hash("acme", variant) in hashes
    assert len(hashes) == len(set(hashes))


def test_normalize_name_and_bad_names() -> None:
    assert normalize_name(_full_width("Sales")) == "sales"
    for bad in ("", "   ", "x" * 5000):
        with pytest.raises(InvalidNameError):
            normalize_name(bad)
    with pytest.raises(InvalidNameError):
        username_hash("acme", 5)  # type: ignore[arg-type]


def test_encode_id_component_is_injective_and_id_safe() -> None:
    assert encode_id_component("todos") == "todos"
    assert encode_id_component("My DB") == "_4dy_20_44_42"
    assert encode_id_component("é") == "_c3_a9"
    assert encode_id_component("a_b") != encode_id_component("a__b")
    assert set(encode_id_component("Ünïcödé/..")) <= set("abcdefghijklmnopqrstuvwxyz0123456789_")
