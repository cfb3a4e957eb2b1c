"""AES-256-GCM payload and attachment-chunk formats (reference-formats §1.5, §1.6)."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from mindood.crypto import aead
from mindood.errors import DecryptionError, InvalidKeyError, KeyNotFoundError, MindoodError

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def test_payload_layout_is_iv_ciphertext_tag() -> None:
    plaintext = b"hello mindoodb"
    blob = aead.encrypt_payload(KEY, plaintext)
    assert len(blob) == 12 + len(plaintext) + 16
    iv, rest = blob[:12], blob[12:]
    # Independent decryption with cryptography's AESGCM and no AAD proves the layout.
    assert AESGCM(KEY).decrypt(iv, rest, None) == plaintext


def test_decrypts_blob_assembled_by_hand() -> None:
    iv = bytes.fromhex("000102030405060708090a0b")
    blob = iv + AESGCM(KEY).encrypt(iv, b"assembled by hand", None)
    assert aead.decrypt_payload(KEY, blob) == b"assembled by hand"


def test_payload_iv_is_random() -> None:
    first = aead.encrypt_payload(KEY, b"same")
    second = aead.encrypt_payload(KEY, b"same")
    assert first[:12] != second[:12]
    assert aead.decrypt_payload(KEY, first) == aead.decrypt_payload(KEY, second) == b"same"


def test_empty_plaintext_round_trips() -> None:
    blob = aead.encrypt_payload(KEY, b"")
    assert len(blob) == 28
    assert aead.decrypt_payload(KEY, blob) == b""


def test_wrong_key_raises_decryption_error() -> None:
    blob = aead.encrypt_payload(KEY, b"secret")
    with pytest.raises(DecryptionError):
        aead.decrypt_payload(OTHER_KEY, blob)


@pytest.mark.parametrize("length", [0, 1, 12, 27])
def test_too_short_payload_raises(length: int) -> None:
    with pytest.raises(DecryptionError):
        aead.decrypt_payload(KEY, bytes(length))


@pytest.mark.parametrize("bad_key", [b"", bytes(16), bytes(31), bytes(33)])
def test_wrong_key_size_is_a_caller_error(bad_key: bytes) -> None:
    with pytest.raises(InvalidKeyError):
        aead.encrypt_payload(bad_key, b"x")
    with pytest.raises(InvalidKeyError):
        aead.decrypt_payload(bad_key, bytes(40))


def test_deterministic_attachment_layout_and_iv() -> None:
    plaintext = b"chunk data " * 100
    blob = aead.encrypt_attachment_chunk(KEY, plaintext)
    assert blob[0] == 0x01
    iv = blob[1:13]
    assert iv == hashlib.sha256(plaintext).digest()[:12]
    assert len(blob) == 1 + 12 + len(plaintext) + 16
    assert AESGCM(KEY).decrypt(iv, blob[13:], None) == plaintext
    assert aead.decrypt_attachment_chunk(KEY, blob) == plaintext


def test_identical_chunks_give_identical_ciphertext() -> None:
    chunk = os.urandom(1000)
    assert aead.encrypt_attachment_chunk(KEY, chunk) == aead.encrypt_attachment_chunk(KEY, chunk)
    # ...but not across keys or contents.
    assert aead.encrypt_attachment_chunk(KEY, chunk) != aead.encrypt_attachment_chunk(
        OTHER_KEY, chunk
    )
    assert aead.encrypt_attachment_chunk(KEY, chunk) != aead.encrypt_attachment_chunk(
        KEY, chunk + b"x"
    )


def test_random_mode_attachment() -> None:
    blob = aead.encrypt_attachment_chunk(KEY, b"abc", deterministic=False)
    assert blob[0] == 0x00
    assert blob != aead.encrypt_attachment_chunk(KEY, b"abc", deterministic=False)
    assert aead.decrypt_attachment_chunk(KEY, blob) == b"abc"


def test_attachment_unknown_mode_and_truncation() -> None:
    blob = bytearray(aead.encrypt_attachment_chunk(KEY, b"abc"))
    blob[0] = 0x02
    with pytest.raises(DecryptionError, match="mode"):
        aead.decrypt_attachment_chunk(KEY, bytes(blob))
    for length in (0, 1, 13, 28):
        with pytest.raises(DecryptionError):
            aead.decrypt_attachment_chunk(KEY, bytes([1]) + bytes(max(0, length - 1)))


def test_decrypt_with_any_tries_versions_in_order() -> None:
    blob = aead.encrypt_payload(OTHER_KEY, b"rotated")
    assert aead.decrypt_with_any([KEY, OTHER_KEY], blob) == b"rotated"
    assert aead.decrypt_with_any([OTHER_KEY], blob) == b"rotated"
    with pytest.raises(DecryptionError):
        aead.decrypt_with_any([KEY], blob)
    with pytest.raises(KeyNotFoundError):
        aead.decrypt_with_any([], blob)
    chunk = aead.encrypt_attachment_chunk(OTHER_KEY, b"att")
    assert aead.decrypt_attachment_chunk_with_any([KEY, OTHER_KEY], chunk) == b"att"
    with pytest.raises(DecryptionError):
        aead.decrypt_attachment_chunk_with_any([KEY], chunk)


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=200), bit=st.integers(min_value=0))
def test_any_flipped_bit_is_detected(plaintext: bytes, bit: int) -> None:
    for encrypt, decrypt in (
        (aead.encrypt_payload, aead.decrypt_payload),
        (aead.encrypt_attachment_chunk, aead.decrypt_attachment_chunk),
    ):
        blob = bytearray(encrypt(KEY, plaintext))
        position = bit % (len(blob) * 8)
        if encrypt is aead.encrypt_attachment_chunk and position == 0:
            continue  # mode 0x01 -> 0x00: covered by test_mode_byte_only_describes_the_iv
        blob[position // 8] ^= 1 << (position % 8)
        with pytest.raises(DecryptionError):
            decrypt(KEY, bytes(blob))


def test_mode_byte_only_describes_the_iv() -> None:
    # The mode byte is outside GCM (as in the reference): switching 0x01 <-> 0x00 only changes
    # how the IV is said to have been chosen, never the plaintext that comes out.
    blob = bytearray(aead.encrypt_attachment_chunk(KEY, b"data"))
    blob[0] = 0x00
    assert aead.decrypt_attachment_chunk(KEY, bytes(blob)) == b"data"


@settings(max_examples=200, deadline=None)
@given(plaintext=st.binary(max_size=500))
def test_round_trip_property(plaintext: bytes) -> None:
    assert aead.decrypt_payload(KEY, aead.encrypt_payload(KEY, plaintext)) == plaintext
    chunk = aead.encrypt_attachment_chunk(KEY, plaintext)
    assert aead.decrypt_attachment_chunk(KEY, chunk) == plaintext


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=200))
def test_random_bytes_only_raise_typed_errors(blob: bytes) -> None:
    for decrypt in (aead.decrypt_payload, aead.decrypt_attachment_chunk):
        with pytest.raises(MindoodError):
            decrypt(KEY, blob)
    with pytest.raises(MindoodError):
        aead.decrypt_with_any([KEY, OTHER_KEY], blob)


def test_a_payload_cipher_speaks_the_payload_format_both_ways() -> None:
    key = aead.new_symmetric_key()
    cipher = aead.PayloadCipher(key)
    blob = cipher.encrypt(b"entry bytes")
    assert aead.decrypt_payload(key, blob) == b"entry bytes"
    assert cipher.decrypt(aead.encrypt_payload(key, b"other")) == b"other"
    assert cipher.encrypt(b"x")[: aead.IV_LENGTH] != blob[: aead.IV_LENGTH]  # a fresh IV each
    with pytest.raises(DecryptionError):
        aead.PayloadCipher(aead.new_symmetric_key()).decrypt(blob)
    with pytest.raises(DecryptionError):
        cipher.decrypt(blob[: aead.MIN_PAYLOAD_LENGTH - 1])
    flipped = bytearray(blob)
    flipped[-1] ^= 1
    with pytest.raises(DecryptionError):
        cipher.decrypt(bytes(flipped))
    with pytest.raises(InvalidKeyError):
        aead.PayloadCipher(b"short")


@pytest.mark.parametrize("versions", [1, 3])
def test_payload_keys_answer_as_decrypt_with_any(versions: int) -> None:
    """One version takes a shortcut to its cipher; it must fail and succeed alike."""
    keys = [os.urandom(32) for _ in range(versions)]
    keys_obj = aead.PayloadKeys(keys)
    blob = aead.encrypt_payload(keys[-1], b"hello")
    assert keys_obj.decrypt(blob) == aead.decrypt_with_any(keys, blob) == b"hello"
    for bad in (aead.encrypt_payload(os.urandom(32), b"x"), b"short"):
        with pytest.raises(DecryptionError) as got:
            keys_obj.decrypt(bad)
        with pytest.raises(DecryptionError) as want:
            aead.decrypt_with_any(keys, bad)
        assert str(got.value) == str(want.value)
