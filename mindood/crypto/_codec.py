"""Small encoding helpers shared by the crypto modules.

They pin down the two places where Python and the TypeScript reference could silently disagree:
base64 (standard alphabet, padded, strict on input) and turning a password into bytes (the
reference uses ``TextEncoder``, which maps lone surrogates to U+FFFD instead of failing).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from mindood.errors import KeyFormatError

_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def b64encode(data: bytes) -> str:
    """Standard, padded base64 as ``btoa``/``Buffer.toString("base64")`` write it."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, what: str = "base64 value") -> bytes:
    """Decode standard base64, raising :class:`KeyFormatError` on anything else.

    Rejects non-strings, characters outside the alphabet (whitespace included) and bad padding.
    """
    if not isinstance(text, str):
        raise KeyFormatError(f"{what} must be a base64 string, got {type(text).__name__}")
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise KeyFormatError(f"{what} is not base64 (non-ASCII characters)") from None
    if not _B64_ALPHABET.issuperset(raw):
        raise KeyFormatError(f"{what} is not base64 (characters outside the alphabet)")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"{what} is not valid base64 (bad length or padding)") from None


def utf8(text: str) -> bytes:
    """UTF-8 bytes of ``text`` exactly as JavaScript's ``TextEncoder`` would produce them.

    A JavaScript string is UTF-16: surrogate pairs form one character and lone surrogates become
    U+FFFD. Round-tripping through UTF-16 reproduces both rules, so a password containing odd
    code points derives the same key here as in the reference.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        utf16 = text.encode("utf-16-le", "surrogatepass")
        return utf16.decode("utf-16-le", "replace").encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def loads_json(data: bytes | str, what: str) -> Any:
    """Parse strict JSON (no NaN/Infinity), raising :class:`KeyFormatError` on failure."""
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise KeyFormatError(f"{what} is not valid JSON: {exc}") from None


def dumps_json(value: Any) -> bytes:
    """Compact JSON as ``JSON.stringify`` writes it (no spaces), encoded to bytes.

    Non-ASCII is escaped (``\\uXXXX``), which every JSON parser reads back identically.
    """
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


def optional_int(value: object, what: str) -> int | None:
    """A JSON number that must be an integer (JS numbers arrive as int or integral float)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise KeyFormatError(f"{what} must be a number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    raise KeyFormatError(f"{what} must be an integer, got {value!r}")
