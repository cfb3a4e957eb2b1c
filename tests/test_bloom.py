"""Bloom summaries: hashes and parameters checked against independent formulas (bloom-v1)."""

from __future__ import annotations

import base64
import math
import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.bloom import (
    BLOOM_SALT,
    BLOOM_VERSION,
    BloomSummary,
    djb2_32,
    fnv1a32,
    id_hash_arrays,
    id_hash_bytes,
    id_hash_pair,
    parameters,
)
from store.errors import EntryFormatError

_MASK32 = 0xFFFFFFFF


def _units(text: str) -> list[int]:
    raw = text.encode("utf-16-le", "surrogatepass")  # a lone surrogate is one JS code unit
    return [int.from_bytes(raw[i : i + 2], "little") for i in range(0, len(raw), 2)]


def reference_fnv1a32(text: str) -> int:
    value = 2166136261
    for unit in _units(text):
        value = ((value ^ unit) * 16777619) % (1 << 32)
    return value


def reference_djb2(text: str) -> int:
    value = 5381
    for unit in _units(text):
        value = (value * 33 + unit) % (1 << 32)
    return value


def expected_bits(entry_ids: list[str]) -> set[int]:
    """Bit indexes per reference-formats §3.5, computed without the module under test."""
    bit_count, hash_count = parameters(len(entry_ids))
    bits: set[int] = set()
    for entry_id in entry_ids:
        h1 = reference_fnv1a32(f"{BLOOM_SALT}:{entry_id}")
        h2 = reference_djb2(f"{entry_id}:{BLOOM_SALT}") or 1
        bits.update((h1 + i * h2) % bit_count for i in range(hash_count))
    return bits


def reference_bitset(entry_ids: list[str]) -> bytes:
    """The whole bitset in pure Python, LSB-first: the reference implementation kept for tests."""
    bit_count, _ = parameters(len(entry_ids))
    bits = bytearray((bit_count + 7) // 8)
    for index in expected_bits(entry_ids):
        bits[index >> 3] |= 1 << (index & 7)
    return bytes(bits)


def set_bits(summary: BloomSummary) -> set[int]:
    return {i for i in range(summary.bit_count) if summary.bitset[i >> 3] & (1 << (i & 7))}


# -- hashes ------------------------------------------------------------------------------------


def test_fnv1a32_published_values() -> None:
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


def test_djb2_known_values() -> None:
    assert djb2_32("") == 5381
    assert djb2_32("a") == 5381 * 33 + ord("a") == 177670
    assert djb2_32("ab") == (177670 * 33 + ord("b")) & _MASK32


@pytest.mark.parametrize(
    "text", ["a", "foobar", "mindoodb-bloom-v1:doc_d_0_abc", "x" * 300, "é", "\U0001f600z"]
)
def test_hashes_match_independent_formulas(text: str) -> None:
    """Includes text beyond ASCII: hashes run over UTF-16 code units, surrogates included."""
    assert fnv1a32(text) == reference_fnv1a32(text)
    assert djb2_32(text) == reference_djb2(text)


def test_id_hash_pair_salts_each_hash_on_its_own_side() -> None:
    h1, h2 = id_hash_pair("doc_d_0_abc")
    assert h1 == reference_fnv1a32(f"{BLOOM_SALT}:doc_d_0_abc")
    assert h2 == (reference_djb2(f"doc_d_0_abc:{BLOOM_SALT}") or 1)


# -- parameters --------------------------------------------------------------------------------


def test_parameters_known_values() -> None:
    assert parameters(0) == (64, 2)
    assert parameters(1) == (64, 44)
    assert parameters(1000) == (9586, 7)


@pytest.mark.parametrize("count", [1, 2, 5, 6, 7, 50, 123, 1000, 4321, 100_000, 2_500_000])
def test_parameters_follow_the_formula(count: int) -> None:
    bits = max(64, math.ceil(-count * math.log(0.01) / math.log(2) ** 2))
    hashes = max(1, math.floor(bits / count * math.log(2) + 0.5))  # JS Math.round
    assert parameters(count) == (bits, hashes)


# -- the filter --------------------------------------------------------------------------------


def test_bitset_layout_matches_the_reference_formula() -> None:
    rng = random.Random(5)
    entry_ids = [f"{rng.getrandbits(96):024x}_d_0_{rng.getrandbits(64):016x}" for _ in range(40)]
    summary = BloomSummary.of_ids(entry_ids)
    assert (summary.version, summary.salt, summary.total_ids) == (BLOOM_VERSION, BLOOM_SALT, 40)
    assert (summary.bit_count, summary.hash_count) == parameters(40)
    assert len(summary.bitset) == (summary.bit_count + 7) // 8
    assert set_bits(summary) == expected_bits(entry_ids)


def test_double_hashing_does_not_wrap_at_32_bits() -> None:
    """With ``h1 + i*h2`` past 2**32 a wrapping port would set other bits; find such an id."""
    bit_count, hash_count = parameters(1000)  # 9586 bits: 2**32 is no multiple of it
    for n in range(1000):
        h1, h2 = id_hash_pair(f"doc_d_0_{n}")
        plain = {(h1 + i * h2) % bit_count for i in range(hash_count)}
        wrapped = {((h1 + i * h2) & _MASK32) % bit_count for i in range(hash_count)}
        if plain != wrapped:
            assert set_bits(BloomSummary.build([(h1, h2)], 1000)) == plain
            return
    pytest.fail("no id exercised the 32-bit overflow")


def test_empty_summary_contains_nothing() -> None:
    summary = BloomSummary.of_ids([])
    assert (summary.bit_count, summary.hash_count, summary.total_ids) == (64, 2, 0)
    assert not summary.might_contain("doc_d_0_abc")


def test_build_from_cached_pairs_equals_of_ids() -> None:
    entry_ids = [f"doc_d_0_{n}" for n in range(30)]
    pairs = [id_hash_pair(i) for i in entry_ids]
    assert BloomSummary.build(pairs, len(pairs)) == BloomSummary.of_ids(entry_ids)


_ID_TEXT = st.text(alphabet=string.ascii_letters + string.digits + "_-.", min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(st.sets(_ID_TEXT, max_size=300))
def test_never_a_false_negative(entry_ids: set[str]) -> None:
    summary = BloomSummary.of_ids(entry_ids)
    assert summary.total_ids == len(entry_ids)
    assert all(summary.might_contain(entry_id) for entry_id in entry_ids)


def test_false_positive_rate_is_near_one_percent() -> None:
    rng = random.Random(3)
    stored = {f"{rng.getrandbits(96):024x}_d_0_{rng.getrandbits(128):032x}" for _ in range(2000)}
    summary = BloomSummary.of_ids(stored)
    probes = [f"{rng.getrandbits(96):024x}_d_1_{rng.getrandbits(128):032x}" for _ in range(10000)]
    rate = sum(summary.might_contain(p) for p in probes) / len(probes)
    assert rate < 0.02


# -- the vectorised path ------------------------------------------------------------------------

_ANY_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=()),  # any code point, lone surrogates included
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_ANY_TEXT, max_size=60))
def test_vectorised_hashes_equal_the_pure_ones(entry_ids: list[str]) -> None:
    """Any mix of lengths, empty ids, non-ASCII, astral characters and lone surrogates."""
    h1, h2 = id_hash_arrays(entry_ids)
    assert [(int(a), int(b)) for a, b in zip(h1, h2, strict=True)] == [
        (reference_fnv1a32(f"{BLOOM_SALT}:{i}"), reference_djb2(f"{i}:{BLOOM_SALT}") or 1)
        for i in entry_ids
    ]


@pytest.mark.parametrize("salt", ["", "x", "söl😀t"])
def test_vectorised_hashes_take_the_salt(salt: str) -> None:
    entry_ids = ["doc_d_0_a", "é", "", "doc_d_0_abcdef"]
    h1, h2 = id_hash_arrays(entry_ids, salt)
    assert [(int(a), int(b)) for a, b in zip(h1, h2, strict=True)] == [
        id_hash_pair(i, salt) for i in entry_ids
    ]


def test_vectorised_hashes_cross_a_block_and_keep_the_input_order() -> None:
    """More ids than one hashing block, in two lengths interleaved."""
    rng = random.Random(11)
    entry_ids = [f"{rng.getrandbits(64):016x}_d_0" + ("_x" if n % 3 else "") for n in range(9000)]
    h1, h2 = id_hash_arrays(entry_ids)
    for n in rng.sample(range(len(entry_ids)), 300):
        assert (int(h1[n]), int(h2[n])) == id_hash_pair(entry_ids[n])


@pytest.mark.parametrize("extra", ["", "é", "😀", "\ud800"])
def test_bitset_equals_the_pure_reference_bitset(extra: str) -> None:
    """Random store-shaped ids (and non-ASCII ones): byte-identical bitsets."""
    rng = random.Random(len(extra))
    entry_ids = [
        f"{rng.getrandbits(96):024x}_d_{rng.getrandbits(64):016x}{extra * (n % 3)}"
        for n in range(3000)
    ]
    summary = BloomSummary.of_ids(entry_ids)
    assert summary.bitset == reference_bitset(entry_ids)
    pairs = [id_hash_pair(i) for i in entry_ids]
    assert BloomSummary.build(pairs, len(pairs)) == summary


@settings(max_examples=60, deadline=None)
@given(st.lists(_ANY_TEXT, max_size=80))
def test_packed_hashes_are_the_pairs_in_order_on_both_paths(entry_ids: list[str]) -> None:
    """Few ids take the scalar loop, many the vectorised one: the bytes must not differ."""
    packed = id_hash_bytes(entry_ids)
    expected = b"".join(
        reference_fnv1a32(f"{BLOOM_SALT}:{i}").to_bytes(4, "little")
        + (reference_djb2(f"{i}:{BLOOM_SALT}") or 1).to_bytes(4, "little")
        for i in entry_ids
    )
    assert packed == expected
    assert b"".join(id_hash_bytes([i]) for i in entry_ids) == expected


def test_a_summary_from_packed_hashes_equals_of_ids() -> None:
    entry_ids = [f"doc{n}_d_0_{n:x}" for n in range(2500)]
    packed = id_hash_bytes(entry_ids[:1000]) + id_hash_bytes(entry_ids[1000:])
    assert BloomSummary.from_hash_bytes(packed) == BloomSummary.of_ids(entry_ids)
    assert BloomSummary.from_hash_bytes(b"") == BloomSummary.of_ids([])
    with pytest.raises(ValueError, match="whole"):
        BloomSummary.from_hash_bytes(packed[:-3])


# -- wire form ---------------------------------------------------------------------------------


def test_wire_round_trip() -> None:
    summary = BloomSummary.of_ids([f"doc_d_0_{n}" for n in range(25)])
    wire = summary.to_wire()
    assert set(wire) == {"version", "totalIds", "bitCount", "hashCount", "salt", "bitsetBase64"}
    assert base64.b64decode(str(wire["bitsetBase64"])) == summary.bitset
    assert BloomSummary.from_wire(wire) == summary


def test_unknown_version_means_maybe() -> None:
    wire = BloomSummary.of_ids([]).to_wire() | {"version": "bloom-v9"}
    assert BloomSummary.from_wire(wire).might_contain("anything")


def _wire(**changes: object) -> dict[str, object]:
    return BloomSummary.of_ids(["doc_d_0_a"]).to_wire() | changes


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "bloom",
        {"version": BLOOM_VERSION},
        _wire(bitsetBase64="***"),
        _wire(bitCount=65),  # bitset length no longer matches
        _wire(totalIds=-1),
        _wire(hashCount=True),
        _wire(hashCount=65),
        _wire(salt=7),
        _wire(salt="s" * 257),
    ],
)
def test_malformed_wire_summaries_are_refused(bad: object) -> None:
    with pytest.raises(EntryFormatError):
        BloomSummary.from_wire(bad)
