"""HTTP client transport (aiohttp) for the reference's HTTP sync API: bytes in, bytes out.

One ``HttpOrigin`` per server origin (``https://host[:port]``, or ``http://`` for loopback and
tests) owns one ``aiohttp.ClientSession``: connections are pooled across every store and the
change feed. It knows nothing of the API (``protocol.http`` does); it bounds what a server can
cost us: response bodies are read up to a limit (after decompression, so a compressed bomb stops
at the limit too), every request has a timeout, redirects are not followed (the reference client
follows only same-origin ones; none of its routes redirects), and transport failures surface as
``HttpTransportError`` (an ``OSError``) or ``TimeoutError``, never as aiohttp's own types.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

#: Largest response body read into memory (a getEntries batch; the server's own JSON limit is 5 MB).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class HttpTransportError(OSError):
    """The request got no usable answer (refused, reset, TLS failure, body over the limit)."""


@dataclass(frozen=True, slots=True)
class HttpClientLimits:
    max_response_bytes: int = MAX_RESPONSE_BYTES
    #: Seconds for one request, connect to last byte.
    request_timeout: float = 120.0
    connect_timeout: float = 15.0
    #: Seconds an open event stream may stay silent (the reference sends a heartbeat every 30 s).
    stream_idle_timeout: float = 90.0


def split_origin(url: str) -> tuple[str, str]:
    """``(origin, base path)`` of a server URL; ``ValueError`` unless it is http(s) with a host."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) server URL: {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("a server URL carries no query, fragment or credentials")
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    content_type: str
    body: bytes


class _Stream:
    def __init__(
        self, response: aiohttp.ClientResponse, limits: HttpClientLimits, origin: HttpOrigin
    ) -> None:
        self._response = response
        self._limits = limits
        self._origin = origin

    @property
    def status(self) -> int:
        return self._response.status

    async def read_body(self) -> bytes:
        return await _read_bounded(self._response, 64 * 1024)

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while True:
            try:
                async with asyncio.timeout(self._limits.stream_idle_timeout):
                    data = await content.readany()
            except aiohttp.ClientError as exc:
                raise HttpTransportError(f"event stream broke: {exc}") from exc
            if not data:
                return
            self._origin.bytes_received += len(data)
            yield data


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in response.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > limit:
                raise HttpTransportError(f"response body over the limit of {limit} bytes")
            parts.append(chunk)
    except aiohttp.ClientError as exc:
        raise HttpTransportError(f"reading the response failed: {exc}") from exc
    return b"".join(parts)


class HttpOrigin:
    """``protocol.http.client.HttpFetcher`` over aiohttp, for one origin."""

    def __init__(
        self,
        origin: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: HttpClientLimits | None = None,
    ) -> None:
        self._origin = origin.rstrip("/")
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._limits = limits or HttpClientLimits()
        self._session: aiohttp.ClientSession | None = None
        #: Body bytes sent and received (after decompression), for status and benchmarks.
        self.bytes_sent = 0
        self.bytes_received = 0

    @property
    def origin(self) -> str:
        return self._origin

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._limits.connect_timeout)
            self._session = aiohttp.ClientSession(
                timeout=timeout,
                connector=aiohttp.TCPConnector(limit=8, ssl=self._ssl),
                auto_decompress=True,
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> _Response:
        try:
            async with asyncio.timeout(self._limits.request_timeout):
                async with self._client().request(
                    method,
                    self._origin + path,
                    params=dict(query) if query else None,
                    headers=dict(headers) if headers else None,
                    data=body,
                    allow_redirects=False,
                ) as response:
                    data = await _read_bounded(response, self._limits.max_response_bytes)
                    self.bytes_sent += len(body or b"")
                    self.bytes_received += len(data)
                    return _Response(response.status, response.content_type, data)
        except aiohttp.ClientError as exc:
            raise HttpTransportError(f"{method} {path}: {exc}") from exc

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[_Stream]:
        wanted = {"Accept": "text/event-stream", **(headers or {})}
        try:
            async with asyncio.timeout(self._limits.request_timeout):
                response = await self._client().get(
                    self._origin + path,
                    params=dict(query) if query else None,
                    headers=wanted,
                    allow_redirects=False,
                )
        except aiohttp.ClientError as exc:
            raise HttpTransportError(f"GET {path}: {exc}") from exc
        try:
            yield _Stream(response, self._limits, self)
        finally:
            response.close()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
