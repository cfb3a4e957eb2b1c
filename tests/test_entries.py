"""Entry formats: ids, fingerprints, signing bytes, the msgpack codec and tamper detection."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import struct
import uuid
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import codec
from store.codec import (
    CodecLimits,
    decode_entry,
    decode_metadata,
    encode_entry,
    encode_metadata,
    entry_from_wire,
    entry_to_wire,
)
from store.entry import AttachmentRef, EntryMetadata, EntryType, StoreEntry, content_hash
from store.errors import EntryFormatError, EntryIntegrityError, EntrySignatureError
from store.ids import (
    attachment_chunk_id,
    deps_fingerprint,
    doc_entry_doc_id,
    doc_entry_hash,
    doc_entry_id,
    generate_doc_id,
    is_generated_doc_id,
    parse_attachment_chunk_id,
    parse_doc_entry_id,
    uuid7,
)
from store.signing import check_entry, signing_bytes
from tests.entries import Author, tampered

AUTHOR = Author()


# -- ids -----------------------------------------------------------------------------------------


def test_deps_fingerprint_is_sha256_prefix_of_sorted_comma_join() -> None:
    # SHA-256("abc") = ba7816bf... (FIPS 180-2 example)
    assert deps_fingerprint(["abc"]) == "ba7816bf"
    expected = hashlib.sha256(b"a1,b2,c3").hexdigest()[:8]
    assert deps_fingerprint(["c3", "a1", "b2"]) == expected
    assert deps_fingerprint([]) == "0"


def test_doc_entry_id_round_trips_even_with_underscores_in_doc_id() -> None:
    entry_id = doc_entry_id("my_custom_doc", ["abc"], "f" * 64)
    assert entry_id == f"my_custom_doc_d_ba7816bf_{'f' * 64}"
    parsed = parse_doc_entry_id(entry_id)
    assert (parsed.doc_id, parsed.deps_fingerprint, parsed.automerge_hash) == (
        "my_custom_doc",
        "ba7816bf",
        "f" * 64,
    )
    assert parse_doc_entry_id(doc_entry_id("d1", [], "h")).deps_fingerprint == "0"


def test_a_checked_doc_id_and_own_hash_build_the_same_id() -> None:
    for deps in ([], ["ab" * 32], ["cd" * 32, "ab" * 32]):
        for change in ("f" * 64, "snapshot-0190a3b4-0000-7000-8000-000000000000"):
            assert doc_entry_id("d1", deps, change, checked=True) == doc_entry_id(
                "d1", deps, change
            )
    for doc_id in ("x" * 201, "bad id", ""):
        with pytest.raises(EntryFormatError):
            doc_entry_id(doc_id, [], "f" * 64)


@pytest.mark.parametrize(
    ("shortcut", "field"), [(doc_entry_hash, "automerge_hash"), (doc_entry_doc_id, "doc_id")]
)
@given(st.lists(st.sampled_from(["_", "d", "_d_", "0", "a", "z", "_d_0_", "\n"]), max_size=12))
def test_id_shortcuts_split_as_the_full_parse(
    shortcut: Callable[[str], str], field: str, parts: list[str]
) -> None:
    """Each shortcut agrees with the pattern on every id, odd ones included, or raises alike."""
    entry_id = "".join(parts)
    try:
        expected = getattr(parse_doc_entry_id(entry_id), field)
    except EntryFormatError:
        with pytest.raises(EntryFormatError):
            shortcut(entry_id)
        return
    assert shortcut(entry_id) == expected


def test_chunk_id_round_trips() -> None:
    attachment = uuid7()
    entry_id = attachment_chunk_id("doc_1", attachment, "abc123")
    parsed = parse_attachment_chunk_id(entry_id)
    assert (parsed.doc_id, parsed.attachment_id, parsed.chunk_id) == ("doc_1", attachment, "abc123")
    with pytest.raises(EntryFormatError):
        attachment_chunk_id("doc", "has_underscore", "c")


@pytest.mark.parametrize("bad", ["", "no-marker-here", "x_a_b_c", "_d_0_h", "d_d_XY_h"])
def test_parsing_a_non_doc_entry_id_is_refused(bad: str) -> None:
    with pytest.raises(EntryFormatError):
        parse_doc_entry_id(bad)


@pytest.mark.parametrize("bad_doc_id", ["", "a b", "é", "tab\there", "x" * 600])
def test_ids_that_cannot_be_stored_safely_are_refused(bad_doc_id: str) -> None:
    with pytest.raises(EntryFormatError):
        doc_entry_id(bad_doc_id, [], "h")


def test_generated_doc_ids_are_objectids_with_optional_prefix() -> None:
    ids = {generate_doc_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(is_generated_doc_id(i) and len(i) == 24 for i in ids)
    prefixed = generate_doc_id("contact")
    assert prefixed.startswith("contact_") and is_generated_doc_id(prefixed)
    with pytest.raises(EntryFormatError):
        generate_doc_id("Bad-Prefix")


def test_uuid7_has_version_variant_and_timestamp() -> None:
    value = uuid.UUID(uuid7(now_ms=0x0123456789AB))
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert value.int >> 80 == 0x0123456789AB


# -- signing bytes -------------------------------------------------------------------------------


def _str(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">I", len(raw)) + raw


def test_signing_bytes_known_answer() -> None:
    meta = EntryMetadata(
        entry_type=EntryType.DOC_CHANGE,
        id="d_d_0_h1",
        content_hash="c" * 64,
        doc_id="d",
        dependency_ids=("p1", "p2"),
        created_at=1_700_000_000_123,
        created_by_public_key="PEM",
        decryption_key_id="default",
        original_size=10,
        encrypted_size=38,
        attachment_refs=(AttachmentRef("b", "lb", 7), AttachmentRef("a", "la", 5)),
    )
    expected = (
        b"\x01"
        + _str("doc_change")
        + _str("d_d_0_h1")
        + _str("d")
        + _str("default")
        + struct.pack(">q", 1_700_000_000_123)
        + struct.pack(">I", 2)
        + _str("p1")
        + _str("p2")
        + _str("c" * 64)
        + _str("PEM")
        # attachment refs, sorted by attachment id
        + struct.pack(">I", 2)
        + _str("a")
        + _str("la")
        + struct.pack(">q", 5)
        + _str("b")
        + _str("lb")
        + struct.pack(">q", 7)
    )
    assert signing_bytes(meta) == expected
    # Without attachment refs the block is absent entirely (reference layout).
    plain = dataclasses.replace(meta, attachment_refs=())
    assert b"\x00\x00\x00\x02\x00\x00\x00\x01a" not in signing_bytes(plain)
    assert len(signing_bytes(plain)) == len(expected) - (4 + 2 * (5 + 6 + 8))


def test_signed_entry_verifies_and_survives_the_codec() -> None:
    entry = AUTHOR.entry(attachment_refs=[AttachmentRef("att", "chunk", 3)])
    check_entry(entry)
    check_entry(decode_entry(encode_entry(entry)))


_FIELD_CHANGES: dict[str, Any] = {
    "entry_type": EntryType.DOC_DELETE,
    "doc_id": "otherdoc",
    "dependency_ids": ("x_d_0_y",),
    "created_at": 1,
    "decryption_key_id": "named",
    "snapshot_head_hashes": ("h",),
    "snapshot_head_entry_ids": ("x_d_0_y",),
    "attachment_refs": (AttachmentRef("a", "b", 1),),
}


def test_fields_outside_the_reference_layout_are_advisory() -> None:
    """The reference signs neither sizes nor the entry version; a relay that changes them
    alters nothing a reader relies on (the ciphertext is covered by its hash)."""
    entry = AUTHOR.entry(doc_id="thedoc")
    check_entry(tampered(entry, original_size=999, entry_version=3))


@pytest.mark.parametrize("field", sorted(_FIELD_CHANGES))
def test_tampering_any_metadata_field_is_detected(field: str) -> None:
    entry = AUTHOR.entry(doc_id="thedoc")
    with pytest.raises(EntryIntegrityError):
        check_entry(tampered(entry, **{field: _FIELD_CHANGES[field]}))


def test_tampering_id_content_hash_author_and_sizes_is_detected() -> None:
    entry = AUTHOR.entry(doc_id="thedoc")
    other = Author()
    meta = entry.metadata
    forged_id = doc_entry_id("thedoc", [], "0" * 64)
    cases = [
        tampered(entry, id=forged_id),
        tampered(entry, content_hash="0" * 64),
        tampered(entry, encrypted_size=meta.encrypted_size + 1),
        tampered(entry, created_by_public_key=other.public_pem),
        tampered(entry, metadata_signature=bytes(64)),
        tampered(entry, metadata_signature=entry.metadata.metadata_signature[:63]),
        tampered(entry, metadata_signature=b""),
    ]
    for case in cases:
        with pytest.raises(EntryIntegrityError):
            check_entry(case)


@pytest.mark.parametrize("bit", [0, 7, 100, 511])
def test_one_flipped_ciphertext_bit_is_detected(bit: int) -> None:
    entry = AUTHOR.entry()
    data = bytearray(entry.encrypted_data)
    data[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(EntryIntegrityError, match="contentHash"):
        check_entry(StoreEntry(entry.metadata, bytes(data)))
    # Re-hashing the forged payload moves the failure to the signature.
    rehashed = dataclasses.replace(entry.metadata, content_hash=content_hash(bytes(data)))
    with pytest.raises(EntrySignatureError):
        check_entry(StoreEntry(rehashed, bytes(data)))


def test_a_signature_by_another_key_is_refused() -> None:
    entry = AUTHOR.entry()
    forger = Author()
    resigned = forger.sign(entry.metadata, entry.encrypted_data)  # by the forger, claims AUTHOR
    with pytest.raises(EntrySignatureError):
        check_entry(resigned)


def test_without_metadata_signature_the_legacy_one_counts_only_below_the_floor() -> None:
    entry = AUTHOR.entry(created_at=1_000)
    legacy = tampered(entry, metadata_signature=b"", entry_version=0)
    check_entry(legacy, required_since=None)  # a tenant with no floor checks the ciphertext
    check_entry(legacy, required_since=2_000)  # a legacy entry from before the floor
    with pytest.raises(EntrySignatureError, match="no metadataSignature"):
        check_entry(legacy, required_since=500)
    with pytest.raises(EntrySignatureError, match="no metadataSignature"):
        check_entry(tampered(legacy, entry_version=2), required_since=2_000)  # versioned: "now"
    with pytest.raises(EntrySignatureError, match="legacy signature"):
        check_entry(tampered(legacy, signature=bytes(64)), required_since=None)


def test_an_entry_of_the_earlier_mindood_layout_is_refused_clearly() -> None:
    wire = entry_to_wire(AUTHOR.entry())
    meta = wire[0]
    old = [1, *meta[1:12], *meta[13:]]  # format 1 had no metadataSignature field
    with pytest.raises(EntryFormatError, match="format 1"):
        entry_from_wire([old, wire[1]])


# -- codec ---------------------------------------------------------------------------------------


def test_codec_round_trips_every_field() -> None:
    entry = AUTHOR.entry(
        entry_type=EntryType.DOC_SNAPSHOT,
        deps=["a_d_0_b"],
        attachment_refs=[AttachmentRef("x", "y", 42)],
    )
    meta = dataclasses.replace(
        entry.metadata,
        snapshot_head_hashes=("h1", "h2"),
        snapshot_head_entry_ids=("a_d_0_b",),
        receipt_order=17,
    )
    full = StoreEntry(meta, entry.encrypted_data)
    assert decode_entry(encode_entry(full)) == full
    assert decode_metadata(encode_metadata(meta)) == meta
    chunk = AUTHOR.chunk("doc", "att1", b"payload")
    assert decode_entry(encode_entry(chunk)) == chunk


def test_codec_refuses_oversized_payloads_and_records() -> None:
    limits = CodecLimits(max_payload_bytes=1024)
    big = AUTHOR.entry(payload=b"x" * 2048)
    with pytest.raises(EntryFormatError):
        decode_entry(encode_entry(big), limits)
    with pytest.raises(EntryFormatError):
        decode_entry(b"\x00" * (limits.max_record_bytes + 1), limits)


def test_codec_refuses_trailing_bytes_and_unknown_format_tags() -> None:
    encoded = encode_entry(AUTHOR.entry())
    with pytest.raises(EntryFormatError):
        decode_entry(encoded + b"\x00")
    wire = entry_to_wire(AUTHOR.entry())
    wire[0][0] = 3
    with pytest.raises(EntryFormatError, match="format tag"):
        decode_entry(msgpack.packb(wire, use_bin_type=True))


def _replacement_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(1 << 64), max_value=(1 << 64) - 1),
        st.floats(allow_nan=True),
        st.text(max_size=20),
        st.binary(max_size=20),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )


_GOOD_WIRE = entry_to_wire(AUTHOR.entry(attachment_refs=[AttachmentRef("a", "b", 1)]))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(min_value=0, max_value=17), value=_replacement_values())
def test_wrong_field_types_give_only_format_errors(index: int, value: Any) -> None:
    meta = list(_GOOD_WIRE[0])
    meta[index] = value
    try:
        packed = msgpack.packb([meta, _GOOD_WIRE[1]], use_bin_type=True)
    except (OverflowError, TypeError, ValueError):
        return  # not representable in msgpack at all
    try:
        decoded = decode_entry(packed)
    except EntryFormatError:
        return
    # Accepted only if the replacement happened to be valid for that field.
    assert isinstance(decoded, StoreEntry)


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_random_bytes_give_only_format_errors(data: bytes) -> None:
    for decoder in (decode_entry, decode_metadata):
        with contextlib.suppress(EntryFormatError):
            decoder(data)


@settings(max_examples=300)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_mutated_encodings_give_only_format_errors(position: int, byte: int) -> None:
    encoded = bytearray(encode_entry(AUTHOR.entry(payload=b"p" * 32)))
    encoded[position % len(encoded)] = byte
    with contextlib.suppress(EntryFormatError):
        decode_entry(bytes(encoded))


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=300))
def test_truncated_encodings_are_refused(cut: bytes) -> None:
    encoded = encode_entry(AUTHOR.entry(payload=b"q" * 40))
    end = len(cut) % len(encoded)
    with pytest.raises(EntryFormatError):
        decode_entry(encoded[:end])


@given(
    doc=st.text(alphabet="ad_0f", min_size=1, max_size=12),
    rest=st.text(alphabet="ad_0f", min_size=0, max_size=12),
)
def test_the_doc_id_fast_path_agrees_with_the_id_parser(doc: str, rest: str) -> None:
    """The shortcut in consistency checks answers exactly as parsing the id would."""
    from store.ids import parse_doc_entry_id
    from store.signing import _names_doc

    entry_id = f"{doc}_d_{rest}"
    try:
        expected = parse_doc_entry_id(entry_id).doc_id == doc
    except EntryFormatError:
        expected = None
    try:
        answer: bool | None = _names_doc(entry_id, doc)
    except EntryFormatError:
        answer = None
    assert answer == expected


_PLAIN_WIRE = entry_to_wire(AUTHOR.entry())


def test_a_plain_record_takes_the_fast_path_and_a_record_with_refs_does_not() -> None:
    plain, with_refs = (
        msgpack.unpackb(msgpack.packb(wire[0], use_bin_type=True), raw=False)
        for wire in (_PLAIN_WIRE, _GOOD_WIRE)
    )
    fast = codec._plain_metadata(plain, codec.DEFAULT_LIMITS)
    assert fast is not None and fast == codec._checked_metadata(plain, codec.DEFAULT_LIMITS)
    assert codec._plain_metadata(with_refs, codec.DEFAULT_LIMITS) is None


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(index=st.integers(min_value=1, max_value=18), value=_replacement_values())
def test_the_plain_metadata_fast_path_agrees_with_the_field_checks(index: int, value: Any) -> None:
    for good in (_PLAIN_WIRE[0], _GOOD_WIRE[0]):
        meta = list(good)
        meta[index] = value
        try:
            meta = msgpack.unpackb(msgpack.packb(meta, use_bin_type=True), raw=False)
        except (OverflowError, TypeError, ValueError):
            continue  # not representable in msgpack at all
        fast = codec._plain_metadata(meta, codec.DEFAULT_LIMITS)
        try:
            checked = codec._checked_metadata(meta, codec.DEFAULT_LIMITS)
        except EntryFormatError:
            assert fast is None  # whatever the field checks refuse, the fast path refuses
            continue
        assert fast is None or fast == checked
