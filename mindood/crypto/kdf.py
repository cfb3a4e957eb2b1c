"""PBKDF2-HMAC-SHA256, the password KDF, and the iteration counts it runs with.

Counts follow the reference (reference-formats §1.2): new encryptions use 310,000 iterations;
a stored count is trusted only down to a floor of 60,000 so that a tampered blob cannot make an
attacker's guesses cheap. We also cap stored counts at 10,000,000 (the reference does not) so that
a tampered blob cannot make us spin for minutes.

Why a process-wide switch rather than a config object passed in: the count is needed deep inside
identity, KeyBag and key-export code, and it must be the *same* in every layer of one process. The
only legitimate reason to go below the floor is a test suite (310,000 iterations cost ~0.2 s, and
a suite derives hundreds of keys), so lowering it is a separate, explicitly named test switch:

* :func:`set_test_pbkdf2_iterations` (or the :func:`lowered_pbkdf2_iterations` context manager)
  sets a count that both new encryptions and stored-count resolution use, floor removed;
* :func:`apply_test_pbkdf2_iterations_from_env` reads ``MINDOOD_TEST_PBKDF2_ITERATIONS`` and
  applies it, for a test harness that starts the daemon in a subprocess; the library itself never
  reads that variable, so setting it in production has no effect.

Operators may *raise* the count for new encryptions with ``MINDOOD_PBKDF2_ITERATIONS``; values
below the floor are raised to it, as in the reference.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from mindood.crypto._codec import utf8
from mindood.errors import KeyFormatError

DEFAULT_PBKDF2_ITERATIONS = 310_000
MIN_PBKDF2_ITERATIONS = 60_000
#: Stored counts above this are rejected as malformed (about 6 s of work here).
MAX_PBKDF2_ITERATIONS = 10_000_000
#: Length of derived AES-256 keys.
DERIVED_KEY_LENGTH = 32

ITERATIONS_ENV = "MINDOOD_PBKDF2_ITERATIONS"
TEST_ITERATIONS_ENV = "MINDOOD_TEST_PBKDF2_ITERATIONS"

_test_iterations: int | None = None


def set_test_pbkdf2_iterations(iterations: int | None) -> None:
    """Test-only: use ``iterations`` (may be below the floor) for every PBKDF2; None restores."""
    global _test_iterations
    if iterations is not None:
        if isinstance(iterations, bool) or not isinstance(iterations, int):
            raise TypeError("iterations must be an int")
        if not 1 <= iterations <= MAX_PBKDF2_ITERATIONS:
            raise ValueError(f"iterations must be in 1..{MAX_PBKDF2_ITERATIONS}")
    _test_iterations = iterations


def get_test_pbkdf2_iterations() -> int | None:
    """The active test override, or None in normal operation."""
    return _test_iterations


@contextmanager
def lowered_pbkdf2_iterations(iterations: int) -> Iterator[None]:
    """Test-only context manager around :func:`set_test_pbkdf2_iterations`."""
    previous = _test_iterations
    set_test_pbkdf2_iterations(iterations)
    try:
        yield
    finally:
        set_test_pbkdf2_iterations(previous)


def apply_test_pbkdf2_iterations_from_env() -> int | None:
    """Test-only: apply ``MINDOOD_TEST_PBKDF2_ITERATIONS`` if set; returns the count applied.

    Call it explicitly from a test harness entry point; nothing in mindood calls it on its own.
    """
    raw = os.environ.get(TEST_ITERATIONS_ENV)
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{TEST_ITERATIONS_ENV} must be an integer, got {raw!r}") from None
    set_test_pbkdf2_iterations(value)
    return value


def pbkdf2_iterations() -> int:
    """The iteration count for new encryptions (test switch, then env override, then default)."""
    if _test_iterations is not None:
        return _test_iterations
    raw = os.environ.get(ITERATIONS_ENV)
    if raw:
        try:
            value = int(raw.strip())
        except ValueError:
            return DEFAULT_PBKDF2_ITERATIONS
        return min(max(value, MIN_PBKDF2_ITERATIONS), MAX_PBKDF2_ITERATIONS)
    return DEFAULT_PBKDF2_ITERATIONS


def resolve_stored_iterations(stored: int | float | None) -> int:
    """The count to decrypt a stored blob with: ``max(60000, floor(stored))``.

    Missing or non-finite counts mean the default. With the test switch on, the floor is 1 so that
    blobs written under the switch decrypt. Counts above the cap raise :class:`KeyFormatError`.
    """
    if stored is None or isinstance(stored, bool) or not isinstance(stored, int | float):
        return DEFAULT_PBKDF2_ITERATIONS
    if isinstance(stored, float):
        if not math.isfinite(stored):
            return DEFAULT_PBKDF2_ITERATIONS
        stored = math.floor(stored)
    floor = 1 if _test_iterations is not None else MIN_PBKDF2_ITERATIONS
    count = max(floor, stored)
    if count > MAX_PBKDF2_ITERATIONS:
        raise KeyFormatError(f"stored PBKDF2 iteration count {count} exceeds the maximum")
    return count


def pbkdf2_sha256(
    password: bytes, salt: bytes, iterations: int, length: int = DERIVED_KEY_LENGTH
) -> bytes:
    """Raw PBKDF2-HMAC-SHA256 (RFC 8018) over bytes; every derivation in mindood runs here.

    Why ``cryptography`` and not ``hashlib.pbkdf2_hmac``: the same bytes, but hashlib goes
    through the system OpenSSL 3.0, whose per-iteration overhead made 310,000 iterations cost
    0.17 s here against 0.05-0.06 s with ``cryptography``'s bundled OpenSSL (measured side by
    side on the 2-core machine); it releases the GIL too, so derivations in worker threads
    overlap. Password-bound operations pay several of these (one per sealed key, the format's
    salts), so this is most of their cost.
    """
    if iterations < 1:
        raise ValueError("iterations must be positive")
    return PBKDF2HMAC(SHA256(), length, salt, iterations).derive(password)


def derive_key(password: str, salt: bytes, iterations: int) -> bytes:
    """A 32-byte AES-256 key from a text password (UTF-8 as ``TextEncoder`` encodes it)."""
    return pbkdf2_sha256(utf8(password), salt, iterations)
