"""Cross-origin access for web apps: which origins a browser may let call the HTTP API.

A MindooDB app served from its own origin (a web client on ``https://app.example.com``) talks
to a sync server on another; the browser lets it read the answers only if the server names
that origin. As the reference server (``MINDOODB_CORS_ORIGIN``), nothing is allowed unless
configured, and then only ``GET``/``POST``/``PUT``/``DELETE`` with the ``Content-Type`` and
``Authorization`` headers: tokens travel in ``Authorization``, never in cookies, so no
credentials mode is offered. ``*`` allows every origin.

A listed origin is echoed back (with ``Vary: Origin`` so caches keep answers apart); any other
gets no CORS header and its browser refuses the response. A preflight (``OPTIONS`` with
``Access-Control-Request-Method``) is answered here with 204, never reaching the API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

ANY = "*"
METHODS = "GET,POST,PUT,DELETE"
HEADERS = "Content-Type,Authorization"
#: How long a browser may reuse a preflight's answer (seconds).
PREFLIGHT_MAX_AGE = 600


def check_origin(origin: str) -> str:
    """``origin`` as a browser sends it (``scheme://host[:port]``, no path), or ValueError."""
    if origin == ANY:
        return origin
    parts = urlsplit(origin)
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{origin!r} has a bad port") from None
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """The allowed origins (lowercased ``scheme://host[:port]``, or ``*``); empty: none."""

    origins: frozenset[str] = frozenset()

    @classmethod
    def of(cls, origins: Sequence[str]) -> CorsPolicy:
        return cls(frozenset(check_origin(o) for o in origins))

    @property
    def enabled(self) -> bool:
        return bool(self.origins)

    def is_preflight(self, method: str, headers: Mapping[str, str]) -> bool:
        """Whether to answer the request here (headers lowercased)."""
        return self.enabled and method == "OPTIONS" and "access-control-request-method" in headers

    def response_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The CORS headers for an answer to a request with ``headers`` (lowercased)."""
        if not self.enabled:
            return {}
        if ANY in self.origins:
            return {"Access-Control-Allow-Origin": ANY}
        out = {"Vary": "Origin"}
        origin = headers.get("origin", "")
        if origin.lower() in self.origins:
            out["Access-Control-Allow-Origin"] = origin
        return out

    def preflight_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        out = self.response_headers(headers)
        if "Access-Control-Allow-Origin" in out:
            out["Access-Control-Allow-Methods"] = METHODS
            out["Access-Control-Allow-Headers"] = HEADERS
            out["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return out
