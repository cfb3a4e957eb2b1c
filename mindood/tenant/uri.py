"""``mdb://`` URIs: small JSON payloads people pass around by chat, mail or QR code (§7).

Form: ``mdb://<type>/<base64url(UTF-8 JSON)>`` without padding; the JSON is an object with an
integer version ``v >= 1``. A URI arrives from outside, typed or pasted by a person, so decoding
is strict and bounded: every defect raises :class:`InvalidUriError` (never a bare ``ValueError``
or a JSON library error), sizes are capped before any work, non-canonical base64 is refused
(two spellings of one payload would make URIs hard to compare) and so are duplicate JSON keys
(which parsers resolve differently).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mindood.errors import InvalidUriError

SCHEME = "mdb://"
JOIN_REQUEST = "join-request"
JOIN_RESPONSE = "join-response"
#: Every type the reference defines; only the first two are produced here so far.
KNOWN_URI_TYPES = frozenset(
    {
        JOIN_REQUEST,
        JOIN_RESPONSE,
        "key-distribution",
        "app-distribution",
        "sync-setup-policy",
        "doc-history-purge",
    }
)
#: Longest URI accepted (a v3 join response with a few key versions is ~4 KB).
MAX_URI_LENGTH = 64 * 1024
#: Deepest JSON nesting accepted in a payload.
MAX_JSON_DEPTH = 16
#: Largest version number accepted (anything bigger is garbage, not a future format).
MAX_VERSION = 1_000_000

_TYPE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True, slots=True)
class MindooUri:
    """A decoded URI: its type and its JSON payload (always an object with ``v``)."""

    type: str
    payload: dict[str, Any]

    @property
    def version(self) -> int:
        version = self.payload["v"]
        assert isinstance(version, int)
        return version


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64url_decode(text: str) -> bytes:
    if not _BASE64URL.match(text) or len(text) % 4 == 1:
        raise InvalidUriError("URI payload is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidUriError("URI payload is not base64url") from None
    if _b64url_encode(data) != text:
        raise InvalidUriError("URI payload is not canonical base64url")
    return data


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidUriError(f"URI payload repeats the key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise InvalidUriError(f"URI payload uses the non-JSON constant {name}")


def _check_depth(value: object) -> None:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidUriError(f"URI payload nests deeper than {MAX_JSON_DEPTH} levels")
            children = current.values() if isinstance(current, dict) else current
            stack.extend((child, depth + 1) for child in children)


def check_version(payload: Mapping[str, Any]) -> int:
    """The payload's ``v``: an integer (not a boolean or float) in ``1..MAX_VERSION``."""
    version = payload.get("v")
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidUriError("URI payload needs an integer version 'v'")
    if not 1 <= version <= MAX_VERSION:
        raise InvalidUriError(f"URI payload version {version} is out of range")
    return version


def _check_type(uri_type: str) -> None:
    if not isinstance(uri_type, str) or not _TYPE.match(uri_type):
        raise InvalidUriError("URI type must be lowercase letters, digits and '-'")
    if uri_type not in KNOWN_URI_TYPES:
        raise InvalidUriError(f"unknown mdb:// URI type {uri_type!r}")


def encode_uri(uri_type: str, payload: Mapping[str, Any]) -> str:
    """``mdb://<type>/<base64url(JSON)>`` for a payload object carrying ``v``."""
    _check_type(uri_type)
    if not isinstance(payload, Mapping):
        raise InvalidUriError("URI payload must be a JSON object")
    check_version(payload)
    body = json.dumps(dict(payload), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    uri = f"{SCHEME}{uri_type}/{_b64url_encode(body.encode('utf-8'))}"
    if len(uri) > MAX_URI_LENGTH:
        raise InvalidUriError(f"URI would be longer than {MAX_URI_LENGTH} characters")
    return uri


def decode_uri(text: object, *, expected_type: str | None = None) -> MindooUri:
    """Parse and check a URI; surrounding whitespace (as pasted) is ignored.

    With ``expected_type`` a URI of another type is refused, so a join response pasted where a
    request is expected gets a clear message instead of a confusing field error.
    """
    if not isinstance(text, str):
        raise InvalidUriError(f"an mdb:// URI must be a string, got {type(text).__name__}")
    if len(text) > MAX_URI_LENGTH:
        raise InvalidUriError(f"URI is longer than {MAX_URI_LENGTH} characters")
    text = text.strip()
    if not text.startswith(SCHEME):
        raise InvalidUriError("not an mdb:// URI")
    uri_type, slash, body = text[len(SCHEME) :].partition("/")
    if not slash or not body:
        raise InvalidUriError("mdb:// URI must be mdb://<type>/<payload>")
    _check_type(uri_type)
    if expected_type is not None and uri_type != expected_type:
        raise InvalidUriError(f"expected an mdb://{expected_type} URI, got mdb://{uri_type}")
    raw = _b64url_decode(body)
    try:
        payload = json.loads(
            raw.decode("utf-8"), object_pairs_hook=_unique_object, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidUriError("URI payload is not UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise InvalidUriError("URI payload must be a JSON object")
    _check_depth(payload)
    check_version(payload)
    return MindooUri(uri_type, payload)
