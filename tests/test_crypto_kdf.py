"""PBKDF2 known answers and the iteration-count policy (reference-formats §1.2)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import pytest

from mindood.crypto import kdf
from mindood.crypto._codec import utf8
from mindood.errors import KeyFormatError


@pytest.fixture
def real_pbkdf2() -> Iterator[None]:
    """Switch the test override off for one test, whatever the suite set, then restore it."""
    previous = kdf.get_test_pbkdf2_iterations()
    kdf.set_test_pbkdf2_iterations(None)
    try:
        yield
    finally:
        kdf.set_test_pbkdf2_iterations(previous)


# Published PBKDF2-HMAC-SHA256 vectors: the widely used RFC 6070-style set for SHA-256
# (P="password", S="salt") and the two vectors of RFC 7914 section 11.
@pytest.mark.parametrize(
    ("password", "salt", "iterations", "length", "expected"),
    [
        (
            b"password",
            b"salt",
            1,
            32,
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
        ),
        (
            b"password",
            b"salt",
            2,
            32,
            "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43",
        ),
        (
            b"password",
            b"salt",
            4096,
            32,
            "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
        ),
        (
            b"passwd",
            b"salt",
            1,
            64,
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
            "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
        ),
        (
            b"Password",
            b"NaCl",
            80000,
            64,
            "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
            "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
        ),
    ],
)
def test_pbkdf2_sha256_known_answers(
    password: bytes, salt: bytes, iterations: int, length: int, expected: str
) -> None:
    assert kdf.pbkdf2_sha256(password, salt, iterations, length).hex() == expected


def test_derive_key_encodes_password_as_utf8() -> None:
    assert kdf.derive_key("password", b"salt", 2) == bytes.fromhex(
        "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"
    )
    assert kdf.derive_key("pässwörd", b"s", 3) == kdf.pbkdf2_sha256("pässwörd".encode(), b"s", 3)


def test_utf8_matches_textencoder_for_surrogates() -> None:
    # A lone surrogate becomes U+FFFD (EF BF BD) as in TextEncoder, instead of raising.
    assert utf8("a\ud800b") == b"a\xef\xbf\xbdb"
    # A surrogate pair spelled as two code points is one astral character in JavaScript.
    assert utf8("\ud83d\ude00") == "\U0001f600".encode()
    assert utf8("plain ü") == "plain ü".encode()


def test_constants_match_reference() -> None:
    assert kdf.DEFAULT_PBKDF2_ITERATIONS == 310_000
    assert kdf.MIN_PBKDF2_ITERATIONS == 60_000


def test_new_encryptions_use_default_without_override(
    real_pbkdf2: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(kdf.ITERATIONS_ENV, raising=False)
    assert kdf.pbkdf2_iterations() == 310_000


def test_env_override_is_raised_to_floor(
    real_pbkdf2: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(kdf.ITERATIONS_ENV, "1000")
    assert kdf.pbkdf2_iterations() == 60_000
    monkeypatch.setenv(kdf.ITERATIONS_ENV, "500000")
    assert kdf.pbkdf2_iterations() == 500_000
    monkeypatch.setenv(kdf.ITERATIONS_ENV, "not a number")
    assert kdf.pbkdf2_iterations() == 310_000


def test_test_env_variable_is_ignored_unless_applied(
    real_pbkdf2: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(kdf.ITERATIONS_ENV, raising=False)
    monkeypatch.setenv(kdf.TEST_ITERATIONS_ENV, "10")
    assert kdf.pbkdf2_iterations() == 310_000
    assert kdf.resolve_stored_iterations(10) == 60_000
    assert kdf.apply_test_pbkdf2_iterations_from_env() == 10
    assert kdf.pbkdf2_iterations() == 10
    assert kdf.resolve_stored_iterations(10) == 10


def test_apply_from_env_without_variable_changes_nothing(
    real_pbkdf2: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(kdf.TEST_ITERATIONS_ENV, raising=False)
    assert kdf.apply_test_pbkdf2_iterations_from_env() is None
    assert kdf.get_test_pbkdf2_iterations() is None


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (310_000, 310_000),
        (1_000_000, 1_000_000),
        (60_000, 60_000),
        (59_999, 60_000),
        (1, 60_000),
        (0, 60_000),
        (-5, 60_000),
        (123_456.9, 123_456),
        (None, 310_000),
        (math.nan, 310_000),
        (math.inf, 310_000),
        (-math.inf, 310_000),
    ],
)
def test_resolve_stored_iterations(real_pbkdf2: None, stored: float | None, expected: int) -> None:
    assert kdf.resolve_stored_iterations(stored) == expected


def test_resolve_stored_iterations_rejects_absurd_counts(real_pbkdf2: None) -> None:
    with pytest.raises(KeyFormatError):
        kdf.resolve_stored_iterations(kdf.MAX_PBKDF2_ITERATIONS + 1)
    with pytest.raises(KeyFormatError):
        kdf.resolve_stored_iterations(1e300)


def test_lowered_context_manager_restores_previous(real_pbkdf2: None) -> None:
    with kdf.lowered_pbkdf2_iterations(7):
        assert kdf.pbkdf2_iterations() == 7
        assert kdf.resolve_stored_iterations(3) == 3
        with kdf.lowered_pbkdf2_iterations(9):
            assert kdf.pbkdf2_iterations() == 9
        assert kdf.pbkdf2_iterations() == 7
    assert kdf.get_test_pbkdf2_iterations() is None


@pytest.mark.parametrize("bad", [0, -1, kdf.MAX_PBKDF2_ITERATIONS + 1])
def test_test_switch_rejects_out_of_range(real_pbkdf2: None, bad: int) -> None:
    with pytest.raises(ValueError):
        kdf.set_test_pbkdf2_iterations(bad)
    assert kdf.get_test_pbkdf2_iterations() is None


@pytest.mark.parametrize(
    ("password", "salt", "iterations", "length"),
    [(b"", b"s", 1, 32), (b"pw", bytes(range(256)) * 3, 1_000, 32), ("ü".encode(), b"", 7, 64)],
)
def test_pbkdf2_sha256_gives_hashlibs_bytes(
    password: bytes, salt: bytes, iterations: int, length: int
) -> None:
    # The derivation moved from hashlib to cryptography for speed; sealed blobs depend on
    # every byte staying the same, including for an empty password or salt.
    expected = hashlib.pbkdf2_hmac("sha256", password, salt, iterations, dklen=length)
    assert kdf.pbkdf2_sha256(password, salt, iterations, length) == expected
